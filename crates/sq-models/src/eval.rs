//! Top-1 and top-5 accuracy, throughput and fidelity of a model on a
//! dataset, and the preprocessing that makes a dataset's images the model's
//! inputs.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::Tensor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::shape::ActShape;
use sq_data::{Dataset, Geometry, MeanStd, Preprocess};

/// The outcome of running a model over a dataset.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Images whose highest logit is the true label.
    pub correct: usize,
    /// Images whose true label is among the five highest logits (fewer
    /// than five classes: all of them).
    pub correct_top5: usize,
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
    /// Top-5 accuracy as a fraction in `0..=1`.
    pub fn top5(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.correct_top5 as f64 / self.images as f64
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

/// The resize and crop `model`'s checkpoint records in its metadata
/// (`resize`, `center_crop`); the identity if none.
pub fn recorded_geometry(model: &Model) -> Result<Geometry> {
    let meta: HashMap<String, String> = model.metadata().clone().into_iter().collect();
    Ok(Geometry::from_metadata(&meta)?)
}

/// The resize and crop for `model`'s inputs: its metadata's, or `given`
/// for a checkpoint that records none.
///
/// # Errors
///
/// [`Error::GeometryTwice`] if both set one: the one given would be ignored.
pub fn geometry(model: &Model, given: Geometry) -> Result<Geometry> {
    let recorded = recorded_geometry(model)?;
    match (recorded.is_identity(), given.is_identity()) {
        (false, false) => Err(Error::GeometryTwice { recorded }),
        (false, true) => Ok(recorded),
        _ => Ok(given),
    }
}

/// The preprocessing `model` expects for `data`: the [`normalization`]
/// of its metadata or `given.0`, the [`geometry`] of its metadata or
/// `given.1`, then padding from the image size to the model's input size.
/// The image size is the dataset's, or for image files the first file's;
/// every other image must reach the same size (an error names any that
/// does not).
///
/// # Errors
///
/// Besides those of [`normalization`] and [`geometry`]: the dataset has
/// more classes than the classifier has outputs, the model's input channels
/// differ from a stored dataset's, or the images cannot be padded to the
/// model's input.
pub fn preprocess_for(model: &Model, data: &Dataset, given: (Option<MeanStd>, Geometry)) -> Result<Preprocess> {
    let (mean, std) = normalization(model, given.0)?;
    let geometry = geometry(model, given.1)?;
    check_classes(model, data)?;
    let ActShape::Map { c: mc, h: mh, w: mw } = model.input_shape() else {
        let found = data.image_shape().map_or_else(Vec::new, |(c, h, w)| vec![c, h, w]);
        return Err(Error::Input { expected: model.input_shape().to_string(), found });
    };
    if let Some((c, h, w)) = data.image_shape().filter(|&(c, ..)| c != mc) {
        return Err(Error::Input {
            expected: format!("{mc} channels ({})", model.input_shape()),
            found: vec![c, h, w],
        });
    }
    if data.is_empty() {
        return Err(Error::Mismatch { message: format!("{} has no images", data.name()) });
    }
    let stored_hw = data.image_hw(0)?;
    let (h, w) = geometry
        .output_hw(stored_hw)
        .map_err(|reason| Error::Mismatch { message: format!("{}: {reason}", data.describe(0)) })?;
    let images = match data.image_shape() {
        Some(_) => format!("{}'s images", data.name()),
        None if geometry.is_identity() => format!("{}'s images (the first, {}, is)", data.name(), data.describe(0)),
        None => format!("{}'s images after {geometry}", data.name()),
    };
    check_padding((h, w), (mh, mw), &images)?;
    Ok(Preprocess::new(mean, std, (h, w), (mh, mw))?.with_geometry(geometry)?.with_channels(mc))
}

/// Checks that every label of `data` is a class of `model`'s classifier;
/// an unlabelled dataset passes.
fn check_classes(model: &Model, data: &Dataset) -> Result<()> {
    let outputs = model.output_shape().units();
    if data.num_classes() <= outputs {
        return Ok(());
    }
    let first_beyond = match data.class_names().get(outputs) {
        Some(name) => format!(": class folder `{name}` (label {outputs}) and after have no output"),
        None => String::new(),
    };
    Err(Error::Mismatch {
        message: format!(
            "the model's classifier has {outputs} outputs but {} has {} classes{first_beyond}",
            data.name(),
            data.num_classes()
        ),
    })
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
                "the model reads {mh}x{mw} inputs but {images} are {h}x{w}: \
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
    let Some(all_labels) = data.labels() else {
        return Err(Error::Mismatch {
            message: format!("{} has no labels: accuracy needs a labelled dataset (folder:DIR)", data.name()),
        });
    };
    check_classes(model, data)?;
    let start = Instant::now();
    let (mut correct, mut correct_top5) = (0, 0);
    let mut done = 0;
    for x in pre.batches(data, batch) {
        let logits = model.forward(&x?)?;
        let rows = logits.to_vec2::<f32>()?;
        if let Some(bad) = rows.iter().position(|row| row.iter().any(|v| !v.is_finite())) {
            return Err(Error::NonFiniteOutput { image: done + bad });
        }
        let predictions = logits.argmax(1)?.to_vec1::<u32>()?;
        let labels = &all_labels[done..done + predictions.len()];
        correct += predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
        correct_top5 += rows.iter().zip(labels).filter(|(row, &l)| rank(row, l as usize) < 5).count();
        done += predictions.len();
        progress(done);
    }
    Ok(Evaluation { images: data.len(), correct, correct_top5, seconds: start.elapsed().as_secs_f64() })
}

/// The place of `label` in `row` sorted by logit, highest first (0: the
/// top prediction); equal logits rank by index, as argmax breaks ties, so
/// constant logits do not make every class a top-5 hit.
fn rank(row: &[f32], label: usize) -> usize {
    let x = row[label];
    row.iter().enumerate().filter(|&(i, &v)| v > x || (v == x && i < label)).count()
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
