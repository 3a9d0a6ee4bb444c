//! Top-1 accuracy and throughput of a model on a dataset.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::Tensor;
use serde::Serialize;

use crate::dataset::{Dataset, Preprocess};
use crate::error::{Error, Result};
use crate::model::{ActShape, Model};

/// The outcome of running a model over a dataset.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Images whose highest logit is the true label.
    pub correct: usize,
    /// Wall-clock seconds spent in preprocessing and inference.
    pub seconds: f64,
}

impl Evaluation {
    /// Top-1 accuracy as a fraction in `0..=1`.
    pub fn top1(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.correct as f64 / self.images as f64
        }
    }
    /// Throughput.
    pub fn images_per_sec(&self) -> f64 {
        self.images as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// The preprocessing `model` expects for `data`: normalisation from the
/// checkpoint's metadata (`normalize_mean`, `normalize_std`) when present,
/// else `fallback` (for example given by the user); padding from the image size and the
/// model's input size.
pub fn preprocess_for(model: &Model, data: &Dataset, fallback: Option<(Vec<f32>, Vec<f32>)>) -> Result<Preprocess> {
    let meta: HashMap<String, String> = model.metadata().clone().into_iter().collect();
    let (mean, std) = match Preprocess::from_metadata(&meta)?.or(fallback) {
        Some(stats) => stats,
        None => return Err(Error::NoNormalization),
    };
    let (c, h, w) = data.image_shape();
    let ActShape::Map { c: mc, h: mh, w: mw } = model.input_shape() else {
        return Err(Error::Input { expected: model.input_shape().to_string(), found: vec![c, h, w] });
    };
    if mc != c {
        return Err(Error::Input {
            expected: format!("{mc} channels ({})", model.input_shape()),
            found: vec![c, h, w],
        });
    }
    Ok(Preprocess::new(mean, std, (h, w), (mh, mw))?)
}

/// Class predictions (argmax of the logits) for a batch.
pub fn predict(model: &Model, x: &Tensor) -> Result<Vec<u32>> {
    Ok(model.forward(x)?.argmax(1)?.to_vec1::<u32>()?)
}

/// Runs `model` over all of `data` in batches of `batch` images and counts
/// correct top-1 predictions. `progress` is called with the number of
/// images done after every batch (for a progress bar).
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    pre: &Preprocess,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Evaluation> {
    let start = Instant::now();
    let mut correct = 0;
    let mut done = 0;
    for x in pre.batches(data, batch) {
        let predictions = predict(model, &x?)?;
        let labels = &data.labels()[done..done + predictions.len()];
        correct += predictions.iter().zip(labels).filter(|(p, l)| **p == u32::from(**l)).count();
        done += predictions.len();
        progress(done);
    }
    Ok(Evaluation { images: data.len(), correct, seconds: start.elapsed().as_secs_f64() })
}
