//! Residual streams: the coupled groups of a ResNet.
//!
//! Between two projections, every block of a ResNet stage reads the same
//! channels and adds its output back into them: the *residual stream*. A
//! stream channel is written by several layers (the stem or the previous
//! stage's projection, and each block's last convolution) and read by
//! several (each block's first convolution, the next stage's projection,
//! `fc`), so it can only be removed from all of them at once, and every
//! reader must make up for it from the tensor it actually reads.
//!
//! [`Model::streams`] finds these groups in the chain; `sq-rewrite`
//! removes a stream's channels and folds a reconstruction into each reader.

use crate::layer::{Layer, Shortcut};
use crate::model::Model;

/// One reader of a residual stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamReader {
    /// The conv or linear layer that reads the stream, or the
    /// [`Layer::Add`] whose projection does.
    pub layer: usize,
    /// The tap point whose input is the tensor this reader reads (for a
    /// projection: the first layer of its block, which reads the same
    /// block input).
    pub tap: usize,
}

/// The channels of one residual stream, and the layers that write and
/// read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The stage whose blocks write the stream (`layer1`), or `stem` when
    /// only the stem does (ResNets whose first block has a projection).
    pub name: String,
    /// Number of channels.
    pub units: usize,
    /// Layers whose output channels are the stream's: convolutions (with
    /// the BatchNorms after them) and [`Layer::Add`]s with a projection.
    pub writers: Vec<usize>,
    /// Layers that read the stream, in order.
    pub readers: Vec<StreamReader>,
}

impl Stream {
    /// The distinct taps of the readers, in order (a block's first conv and
    /// its projection share one).
    pub fn taps(&self) -> Vec<usize> {
        let mut taps: Vec<usize> = self.readers.iter().map(|r| r.tap).collect();
        taps.dedup();
        taps
    }
}

impl Model {
    /// The residual streams of a ResNet, first to last; empty for a model
    /// without residual blocks, and for chains whose blocks do not follow
    /// the ResNet pattern (nested blocks, a block that does not start with
    /// a convolution).
    pub fn streams(&self) -> Vec<Stream> {
        find_streams(self).unwrap_or_default()
    }
}

/// Walks the chain; `None` when it is not a ResNet-shaped chain.
fn find_streams(model: &Model) -> Option<Vec<Stream>> {
    let layers = model.layers();
    let first_fork = layers.iter().position(|l| matches!(l, Layer::Fork))?;
    let stem = (0..first_fork).rev().find(|&i| layers[i].is_linear_operator())?;
    let mut streams = vec![Stream {
        name: String::new(),
        units: model.shape_before(stem + 1).units(),
        writers: vec![stem],
        readers: Vec::new(),
    }];
    let mut i = first_fork;
    while i < layers.len() {
        match &layers[i] {
            Layer::Fork => {
                let first = i + 1;
                if !layers.get(first).is_some_and(Layer::is_linear_operator) {
                    return None;
                }
                let add = (first..layers.len()).find(|&j| matches!(layers[j], Layer::Add(_) | Layer::Fork))?;
                if !matches!(layers[add], Layer::Add(_)) {
                    return None; // a nested block
                }
                let last = (first..add).rev().find(|&j| layers[j].is_linear_operator())?;
                if !layers[last + 1..add].iter().all(Layer::is_unit_wise) {
                    return None;
                }
                let current = streams.last_mut().expect("the stem's stream");
                current.readers.push(StreamReader { layer: first, tap: first });
                if let Layer::Add(Shortcut::Projection { .. }) = layers[add] {
                    current.readers.push(StreamReader { layer: add, tap: first });
                    streams.push(Stream {
                        name: String::new(),
                        units: model.shape_before(add + 1).units(),
                        writers: vec![last, add],
                        readers: Vec::new(),
                    });
                } else {
                    current.writers.push(last);
                }
                i = add + 1;
            }
            layer if layer.is_linear_operator() => {
                // The head: the first conv or linear layer after the last
                // block reads the stream through unit-wise layers only.
                let start = (0..i).rev().find(|&j| matches!(layers[j], Layer::Add(_)))? + 1;
                if !layers[start..i].iter().all(Layer::is_unit_wise) {
                    return None;
                }
                let tap = (start..i).find(|&j| matches!(layers[j], Layer::Flatten)).unwrap_or(i);
                streams.last_mut().expect("the stem's stream").readers.push(StreamReader { layer: i, tap });
                break;
            }
            Layer::Add(_) => return None,
            _ => i += 1,
        }
    }
    for stream in &mut streams {
        let last_writer = *stream.writers.last().expect("every stream has a writer");
        stream.name = match model.name(last_writer).split_once('.') {
            Some((stage, _)) => stage.to_string(),
            None => "stem".to_string(),
        };
    }
    Some(streams.into_iter().filter(|s| !s.readers.is_empty()).collect())
}
