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

/// The normalisation of `model`'s inputs, `(mean, std)`: from the
/// checkpoint's metadata (`normalize_mean`, `normalize_std`), or `given`
/// (for example by the user) for a checkpoint whose metadata has none.
///
/// # Errors
///
/// [`Error::NoNormalization`] if neither has one; [`Error::NormalizationTwice`]
/// if both do: the one given would be ignored.
pub fn normalization(model: &Model, given: Option<(Vec<f32>, Vec<f32>)>) -> Result<(Vec<f32>, Vec<f32>)> {
    match (recorded_normalization(model)?, given) {
        (Some((mean, std)), Some(_)) => Err(Error::NormalizationTwice { mean, std }),
        (Some(stats), None) | (None, Some(stats)) => Ok(stats),
        (None, None) => Err(Error::NoNormalization),
    }
}

/// The normalisation `model`'s checkpoint records in its metadata
/// (`normalize_mean`, `normalize_std`), if any.
pub fn recorded_normalization(model: &Model) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    let meta: HashMap<String, String> = model.metadata().clone().into_iter().collect();
    Ok(Preprocess::from_metadata(&meta)?)
}

/// The preprocessing `model` expects for `data`: the [`normalization`]
/// of its metadata or `given`, and padding from the image size to the
/// model's input size.
pub fn preprocess_for(model: &Model, data: &Dataset, given: Option<(Vec<f32>, Vec<f32>)>) -> Result<Preprocess> {
    let (mean, std) = normalization(model, given)?;
    let classes = model.output_shape().units();
    if classes != data.num_classes() {
        return Err(Error::Mismatch {
            message: format!(
                "the model's classifier has {classes} outputs but {} has {} classes",
                data.name(),
                data.num_classes()
            ),
        });
    }
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
    check_padding((h, w), (mh, mw), &format!("{}'s images", data.name()))?;
    Ok(Preprocess::new(mean, std, (h, w), (mh, mw))?)
}

/// Checks that images of `image_hw` (described as `images` in the error)
/// reach the model's input `input_hw` with a plausible border: at most
/// max(2, side/8) pixels a side. More means the model was trained on
/// other images, and padding would only hide that.
pub fn check_padding(image_hw: (usize, usize), input_hw: (usize, usize), images: &str) -> Result<()> {
    let ((h, w), (mh, mw)) = (image_hw, input_hw);
    let pads = [mh.checked_sub(h), mw.checked_sub(w)];
    if pads.iter().any(|pad| pad.is_some_and(|pad| pad / 2 > max_pad(h.min(w)))) {
        return Err(Error::Mismatch {
            message: format!(
                "the model's input is {mh}x{mw} (implied by its first classifier layer's input features) but {images} are {h}x{w}: \
                 padding them would add more than {} pixels a side, so the model was not trained on these images",
                max_pad(h.min(w))
            ),
        });
    }
    Ok(())
}

/// The widest border [`preprocess_for`] adds to each side of an image of
/// the given side: an eighth of it, at least 2 pixels. 28x28 Fashion-MNIST
/// images may grow to 32x32, never to 8192x8192.
fn max_pad(side: usize) -> usize {
    (side / 8).max(2)
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
    if data.is_empty() {
        return Err(Error::Mismatch { message: format!("{} has no images to evaluate", data.name()) });
    }
    let start = Instant::now();
    let mut correct = 0;
    let mut done = 0;
    for x in pre.batches(data, batch) {
        let logits = model.forward(&x?)?;
        let rows = logits.to_vec2::<f32>()?;
        if let Some(bad) = rows.iter().position(|row| row.iter().any(|v| !v.is_finite())) {
            return Err(Error::NonFiniteOutput { image: done + bad });
        }
        let predictions = logits.argmax(1)?.to_vec1::<u32>()?;
        let labels = &data.labels()[done..done + predictions.len()];
        correct += predictions.iter().zip(labels).filter(|(p, l)| **p == u32::from(**l)).count();
        done += predictions.len();
        progress(done);
    }
    Ok(Evaluation { images: data.len(), correct, seconds: start.elapsed().as_secs_f64() })
}

/// How closely a model follows a reference model (its original) on a
/// dataset, beyond top-1: a model can keep its accuracy and still change
/// many predictions, or keep its predictions and drift in confidence.
#[derive(Clone, Debug, Serialize)]
pub struct Fidelity {
    /// Images compared.
    pub images: usize,
    /// Share of the images on which both models predict the same class.
    pub agreement: f64,
    /// Mean over images of `KL(reference || model)` of their softmax
    /// outputs, in nats: 0 for identical predictions.
    pub mean_kl: f64,
}

/// Runs `model` and `reference` over all of `data` in batches of `batch`
/// images, each preprocessed its own way (`pre` for `model`,
/// `reference_pre` for `reference`: a squeezed model and its original may
/// record different normalisations), and compares their outputs
/// ([`Fidelity`]). `progress` is called with the number of images done
/// after every batch.
///
/// # Errors
///
/// [`Error::Mismatch`] before any image is run if the two models' outputs
/// differ in size or `data` is empty.
pub fn fidelity(
    model: &Model,
    reference: &Model,
    data: &Dataset,
    (pre, reference_pre): (&Preprocess, &Preprocess),
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Fidelity> {
    if data.is_empty() {
        return Err(Error::Mismatch { message: format!("{} has no images to compare on", data.name()) });
    }
    let (outputs, reference_outputs) = (model.output_shape().units(), reference.output_shape().units());
    if outputs != reference_outputs {
        return Err(Error::Mismatch {
            message: format!("the model has {outputs} outputs but the reference has {reference_outputs}"),
        });
    }
    let (mut agree, mut kl, mut done) = (0usize, 0.0f64, 0usize);
    for (x, x_reference) in pre.batches(data, batch).zip(reference_pre.batches(data, batch)) {
        // A non-finite output is named by its index in the whole dataset.
        let at_done = |e: Error| match e {
            Error::NonFiniteOutput { image } => Error::NonFiniteOutput { image: done + image },
            e => e,
        };
        let p = log_softmax(&reference.forward(&x_reference?)?).map_err(at_done).map_err(|e| match e {
            Error::NonFiniteOutput { image } => Error::Mismatch {
                message: format!(
                    "the reference's outputs for image {image} are NaN or infinite (its weights overflow float32 on this input)"
                ),
            },
            e => e,
        })?;
        let q = log_softmax(&model.forward(&x?)?).map_err(at_done)?;
        agree += p.iter().zip(&q).filter(|(p, q)| argmax(p) == argmax(q)).count();
        kl += kl_sum(&p, &q);
        done += p.len();
        progress(done);
    }
    Ok(Fidelity { images: done, agreement: agree as f64 / done as f64, mean_kl: kl / done as f64 })
}

/// Row-wise log-softmax of `N x classes` logits, in f64; non-finite logits
/// are an error naming the row.
pub fn log_softmax(logits: &Tensor) -> Result<Vec<Vec<f64>>> {
    let rows = logits.to_vec2::<f32>()?;
    if let Some(bad) = rows.iter().position(|row| row.iter().any(|v| !v.is_finite())) {
        return Err(Error::NonFiniteOutput { image: bad });
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let log_sum = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
            row.into_iter().map(|v| v as f64 - log_sum).collect()
        })
        .collect())
}

/// `sum over rows of KL(p || q)`, for rows of log-probabilities.
pub fn kl_sum(p: &[Vec<f64>], q: &[Vec<f64>]) -> f64 {
    p.iter().zip(q).map(|(p, q)| p.iter().zip(q).map(|(lp, lq)| lp.exp() * (lp - lq)).sum::<f64>()).sum()
}

/// Index of the largest value (the first of equals).
fn argmax(row: &[f64]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}
