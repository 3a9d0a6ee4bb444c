//! The editable model description: an ordered chain of layers.
//!
//! A [`Model`] is data, not code: a list of [`Layer`] values plus the input
//! shape and free-form metadata. Nothing is hidden in closures, so model
//! surgery (`sq-rewrite`) can read every tensor and build a new model, and
//! the runner can show any layer's input to a caller through a hook.
//!
//! Layer names are not stored: they follow from the position in the chain
//! exactly as PyTorch's torchvision VGG numbers its `nn.Sequential`s
//! (`features.N` before the flatten, `classifier.N` after it). A model whose
//! BatchNorms were folded away therefore gets the names of the plain VGG
//! automatically, and a checkpoint we write loads in torchvision as is.
//!
//! Running a model goes through an execution plan compiled from the layers
//! on first use and cached (see `plan`): BatchNorm folded into the
//! convolutions, bias and ReLU fused into the GEMM. The description is
//! never edited in place (edits go through [`Model::into_parts`] and
//! [`Model::new`]), so a cached plan always matches its layers.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::plan::{Activation, Plan};

/// Shape of one image's activation between two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActShape {
    /// A feature map: channels x height x width.
    Map {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// A flat vector of features.
    Vector(usize),
}

impl ActShape {
    /// Number of units (channels of a map, entries of a vector).
    pub fn units(&self) -> usize {
        match *self {
            ActShape::Map { c, .. } => c,
            ActShape::Vector(n) => n,
        }
    }
    /// Number of scalars per image.
    pub fn numel(&self) -> usize {
        match *self {
            ActShape::Map { c, h, w } => c * h * w,
            ActShape::Vector(n) => n,
        }
    }
    /// Spatial positions per image (1 for a vector).
    pub fn positions(&self) -> usize {
        match *self {
            ActShape::Map { h, w, .. } => h * w,
            ActShape::Vector(_) => 1,
        }
    }
}

impl fmt::Display for ActShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActShape::Map { c, h, w } => write!(f, "{c}x{h}x{w}"),
            ActShape::Vector(n) => write!(f, "{n}"),
        }
    }
}

/// A producer/consumer pair: the units that `producer` outputs are read by
/// `consumer`, with only unit-wise layers (BatchNorm, ReLU, max-pool,
/// dropout, flatten) in between. These are the places squeeze can cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Index of the conv/linear layer whose output units may be removed.
    pub producer: usize,
    /// Index of the next conv/linear layer, which reads those units.
    pub consumer: usize,
    /// Index of the layer whose *input* is the per-unit tensor the consumer
    /// actually sees: the consumer itself, or the flatten in between (so a
    /// conv producer's units stay channels, one sample per spatial position).
    pub tap: usize,
    /// Shape of the tapped tensor for one image.
    pub shape: ActShape,
}

impl Link {
    /// Number of units the producer outputs.
    pub fn units(&self) -> usize {
        self.shape.units()
    }
    /// The unit-wise layers strictly between producer and consumer.
    pub fn between(&self) -> Range<usize> {
        self.producer + 1..self.consumer
    }
}

/// A feed-forward network as an ordered list of layers.
#[derive(Clone, Debug)]
pub struct Model {
    input: ActShape,
    layers: Vec<Layer>,
    /// `shapes[i]` is the input of layer `i`; the last entry is the output.
    shapes: Vec<ActShape>,
    metadata: BTreeMap<String, String>,
    /// The compiled layers, built on first use; `None` inside when some
    /// layer has no fast kernel. Shared by clones.
    plan: OnceLock<Option<Arc<Plan>>>,
}

impl Model {
    /// Builds a model and checks that consecutive layers fit together.
    pub fn new(input: ActShape, layers: Vec<Layer>, metadata: BTreeMap<String, String>) -> Result<Self> {
        let mut shapes = Vec::with_capacity(layers.len() + 1);
        shapes.push(input);
        for (i, layer) in layers.iter().enumerate() {
            let next = output_shape(layer, shapes[i])
                .map_err(|message| Error::Invalid { layer: layer_name(&layers, i), message })?;
            shapes.push(next);
        }
        Ok(Self { input, layers, shapes, metadata, plan: OnceLock::new() })
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ActShape {
        self.input
    }
    /// Shape of one image's output (the logits).
    pub fn output_shape(&self) -> ActShape {
        *self.shapes.last().expect("shapes has len + 1 entries")
    }
    /// The layers in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// Consumes the model, returning its layers (to edit them and call [`Model::new`]).
    pub fn into_parts(self) -> (ActShape, Vec<Layer>, BTreeMap<String, String>) {
        (self.input, self.layers, self.metadata)
    }
    /// Shape of the input of layer `i` (`i == layers().len()` gives the output).
    pub fn shape_before(&self, i: usize) -> ActShape {
        self.shapes[i]
    }
    /// Free-form string metadata (preprocessing, provenance, squeeze settings).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// Mutable access to the metadata.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// The torchvision-style name of layer `i` (`features.7`, `classifier.3`, `flatten`).
    pub fn name(&self, i: usize) -> String {
        layer_name(&self.layers, i)
    }

    /// Index of the layer with the given name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.layers.len()).find(|&i| self.name(i) == name)
    }

    /// All producer/consumer pairs, first to last. The network's input is
    /// never a producer, and the last conv/linear layer (the classifier's
    /// output) has no consumer, so it is never one either.
    pub fn links(&self) -> Vec<Link> {
        let ops: Vec<usize> = (0..self.layers.len()).filter(|&i| self.layers[i].is_linear_operator()).collect();
        ops.windows(2)
            .map(|pair| {
                let (producer, consumer) = (pair[0], pair[1]);
                let tap =
                    (producer + 1..consumer).find(|&i| matches!(self.layers[i], Layer::Flatten)).unwrap_or(consumer);
                Link { producer, consumer, tap, shape: self.shapes[tap] }
            })
            .collect()
    }

    /// Runs the whole model on a batch `N x C x H x W`, returning `N x classes` logits.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.forward_range(x, 0..self.layers.len())
    }

    /// Runs the whole model like [`Model::forward`] and calls
    /// `hook(i, input)` once for every *tap point* `i` — every layer for
    /// which [`Layer::is_tap_point`] holds (convolution, linear, flatten) —
    /// in increasing order of `i`, just before that layer runs, with the
    /// tensor it reads: `N x C x H x W` or `N x F`, contiguous, exactly what
    /// [`Model::forward_layers`] would feed it. The inputs of other layers
    /// (BatchNorm, ReLU, max-pool, dropout) are not shown: they are fused
    /// into the step that precedes them. Every [`Link::tap`] is a tap point,
    /// so this is all that statistics capture needs. The first error the
    /// hook returns stops the pass and is returned.
    pub fn forward_with<E, F>(&self, x: &Tensor, mut hook: F) -> std::result::Result<Tensor, E>
    where
        E: From<Error>,
        F: FnMut(usize, &Tensor) -> std::result::Result<(), E>,
    {
        self.check_input(x)?;
        let Some(plan) = self.plan() else {
            let mut x = x.clone();
            for (i, layer) in self.layers.iter().enumerate() {
                if layer.is_tap_point() {
                    hook(i, &x)?;
                }
                x = layer.forward(&x).map_err(Error::from)?;
            }
            return Ok(x);
        };
        let x = Activation::from_tensor(x, self.input)?;
        let out = plan.run_with_taps(x, 0..self.layers.len(), |i, input| hook(i, &input.to_tensor()?))?;
        Ok(out.to_tensor()?)
    }

    /// Runs only `layers[range]` on `x`, which must be the input of
    /// `range.start` (`N x shape_before(range.start)`). Used to advance
    /// cached activations from one tap to the next. It runs the execution
    /// plan when each end of the range is `0`, `layers().len()` or a tap
    /// point ([`Layer::is_tap_point`]); any other range runs layer by layer
    /// ([`Model::forward_layers`]), with the same result.
    pub fn forward_range(&self, x: &Tensor, range: Range<usize>) -> Result<Tensor> {
        match self.plan() {
            Some(plan) if !range.is_empty() && plan.is_boundary(range.start) && plan.is_boundary(range.end) => {
                let x = Activation::from_tensor(x, self.shapes[range.start])?;
                plan.run(x, range).to_tensor()
            }
            _ => self.forward_layers(x, range),
        }
    }

    /// Runs `layers[range]` one at a time with candle's operations
    /// ([`Layer::forward`]), without the execution plan: several times
    /// slower, defined for any range. It is the reference that the plan is
    /// tested against, and the fallback for a model with a layer the plan
    /// cannot compile (a grouped or dilated convolution, weights that are
    /// not f32).
    pub fn forward_layers(&self, x: &Tensor, range: Range<usize>) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers[range] {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }

    /// Whether [`Model::forward`] runs the fused execution plan (`false`:
    /// the layer-by-layer fallback of [`Model::forward_layers`]).
    pub fn uses_plan(&self) -> bool {
        self.plan().is_some()
    }

    /// The cached plan, compiled on first use.
    fn plan(&self) -> Option<&Plan> {
        self.plan.get_or_init(|| Plan::build(&self.layers).ok().flatten().map(Arc::new)).as_deref()
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let ok = match (self.input, x.dims()) {
            (ActShape::Map { c, h, w }, [_, xc, xh, xw]) => (c, h, w) == (*xc, *xh, *xw),
            (ActShape::Vector(n), [_, xn]) => n == *xn,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Input { expected: format!("N x {}", self.input), found: x.dims().to_vec() })
        }
    }
}

fn layer_name(layers: &[Layer], i: usize) -> String {
    match layers.iter().position(|l| matches!(l, Layer::Flatten)) {
        Some(f) if i == f => "flatten".to_string(),
        Some(f) if i > f => format!("classifier.{}", i - f - 1),
        _ => format!("features.{i}"),
    }
}

/// Shape after `layer` given its input shape, or why they do not fit.
fn output_shape(layer: &Layer, input: ActShape) -> std::result::Result<ActShape, String> {
    let dims = |t: &Tensor| t.dims().to_vec();
    match (layer, input) {
        (Layer::Conv2d(conv), ActShape::Map { c, h, w }) => {
            let wd = dims(conv.weight());
            let (out_c, in_c, k) = (wd[0], wd[1], wd[2]);
            if out_c == 0 || in_c == 0 || k == 0 {
                return Err(format!("has a weight of shape {wd:?}: a layer needs at least one unit in and out"));
            }
            if in_c != c {
                return Err(format!("reads {in_c} channels but its input has {c}"));
            }
            let p = conv.config().padding;
            let s = conv.config().stride;
            if h + 2 * p < k || w + 2 * p < k {
                return Err(format!("kernel {k}x{k} larger than padded input {h}x{w}"));
            }
            Ok(ActShape::Map { c: out_c, h: (h + 2 * p - k) / s + 1, w: (w + 2 * p - k) / s + 1 })
        }
        (Layer::BatchNorm2d(bn), ActShape::Map { c, .. }) => {
            if bn.channels() != c {
                return Err(format!("normalises {} channels but its input has {c}", bn.channels()));
            }
            Ok(input)
        }
        (Layer::MaxPool2d { kernel, stride }, ActShape::Map { c, h, w }) => {
            if h < *kernel || w < *kernel {
                return Err(format!("pool window {kernel} larger than input {h}x{w}"));
            }
            Ok(ActShape::Map { c, h: (h - kernel) / stride + 1, w: (w - kernel) / stride + 1 })
        }
        (Layer::Flatten, shape) => Ok(ActShape::Vector(shape.numel())),
        (Layer::Linear(linear), ActShape::Vector(n)) => {
            let wd = dims(linear.weight());
            if wd[0] == 0 || wd[1] == 0 {
                return Err(format!("has a weight of shape {wd:?}: a layer needs at least one unit in and out"));
            }
            if wd[1] != n {
                return Err(format!("reads {} features but its input has {n}", wd[1]));
            }
            Ok(ActShape::Vector(wd[0]))
        }
        (Layer::Relu | Layer::Dropout, shape) => Ok(shape),
        (layer, shape) => Err(format!("a {} layer cannot read an input of shape {shape}", layer.kind())),
    }
}
