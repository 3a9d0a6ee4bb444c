//! The one-shot pipeline: capture -> select -> plan -> rewrite, layer by layer.
//!
//! `Sequential` mode (the default) squeezes producers first to last, each
//! on statistics captured from the *already-squeezed* prefix, so every
//! layer's reconstruction also corrects what the previous cuts disturbed.
//! It costs one forward pass over the calibration set in total: the
//! activations at the current cut (the "frontier") are kept in memory and
//! advanced layer by layer; after a cut only the kept channels of the
//! frontier are retained, since the unit-wise layers in between commute
//! with deleting units. Peak memory is the largest tapped activation of
//! the calibration set (2000 Fashion-MNIST images through VGG-16: 64 x
//! 32 x 32 floats each, about 0.5 GB).
//!
//! `OnePass` mode captures every producer once on the original model and
//! plans all cuts from those statistics (cheaper in memory, less accurate).

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::Serialize;
use sq_capture::accumulate;
use sq_linalg::Moments;
use sq_models::dataset::{Dataset, Preprocess};
use sq_models::{Layer, Link, Model};
use sq_rewrite::{apply, keep_units, plan, Compensation, Statistics};
use sq_select::{select_layer, Budget, LayerSelection, Selection, Strategy};

/// Where the statistics of each producer come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Each producer's statistics are captured on the already-squeezed prefix.
    #[default]
    Sequential,
    /// All statistics are captured once on the original model.
    OnePass,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sequential" => Ok(Self::Sequential),
            "one-pass" => Ok(Self::OnePass),
            _ => Err(format!("unknown mode `{s}` (expected sequential or one-pass)")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sequential => "sequential",
            Self::OnePass => "one-pass",
        })
    }
}

/// What each consumer's new input is fitted to reproduce, in sequential mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The consumer's current input (after earlier cuts): only the removed
    /// units are reconstructed, as DESIGN.md step 4 states it.
    #[default]
    Current,
    /// The input the consumer read in the original model: each cut also
    /// corrects the error that earlier cuts left in its layer's input. It
    /// costs a second forward pass over the calibration set and statistics
    /// of twice the width (four times the Gram work).
    Original,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "original" => Ok(Self::Original),
            "current" => Ok(Self::Current),
            _ => Err(format!("unknown target `{s}` (expected original or current)")),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Original => "original",
            Self::Current => "current",
        })
    }
}

/// Everything that decides how a model is squeezed.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// How many units each producer keeps (unless `widths` names it).
    pub budget: Budget,
    /// Explicit widths per producer name, overriding `budget` (to compare
    /// strategies at identical widths).
    pub widths: Option<BTreeMap<String, usize>>,
    /// Which units to keep.
    pub strategy: Strategy,
    /// How the consumer makes up for the removed units.
    pub compensation: Compensation,
    /// Where the statistics come from.
    pub mode: Mode,
    /// What the compensation reconstructs (sequential mode; in one-pass
    /// mode the original and current inputs are the same).
    pub target: Target,
    /// Images per forward pass while capturing.
    pub batch: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            budget: Budget::Tau(0.99),
            widths: None,
            strategy: Strategy::Eliminate,
            compensation: Compensation::Lstsq,
            mode: Mode::Sequential,
            target: Target::Current,
            batch: 64,
        }
    }
}

/// What happened to one producer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerOutcome {
    /// Producer name.
    pub name: String,
    /// Units before.
    pub width: usize,
    /// Units kept.
    pub k: usize,
    /// Share of the variance of the consumer's input that the kept units explain.
    pub retained_variance: f64,
    /// Relative error of the consumer's new input against its target
    /// (see [`Target`]), on the calibration data.
    pub relative_error: f64,
    /// Ridge added to solve for the reconstruction (0 unless `C[S,S]` was singular).
    pub ridge: f64,
}

/// A squeezed model and how it was obtained.
pub struct Outcome {
    /// The squeezed model.
    pub model: Model,
    /// Which units each producer kept (replayable).
    pub selection: Selection,
    /// Per-producer report, first to last.
    pub layers: Vec<LayerOutcome>,
}

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// Running or building a model failed.
    #[error(transparent)]
    Model(#[from] sq_models::ModelError),
    /// Capturing statistics failed.
    #[error(transparent)]
    Capture(#[from] sq_capture::CaptureError),
    /// Choosing units failed.
    #[error(transparent)]
    Select(#[from] sq_select::Error),
    /// Rewriting the model failed.
    #[error(transparent)]
    Rewrite(#[from] sq_rewrite::RewriteError),
    /// A linear-algebra step failed.
    #[error(transparent)]
    Linalg(#[from] sq_linalg::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The explicit widths do not cover a producer.
    #[error("no width given for producer `{0}`")]
    MissingWidth(String),
    /// The calibration set is empty.
    #[error("the calibration set is empty")]
    NoCalibration,
}

/// Squeezes `model` in one shot on the calibration images `calib`.
/// `progress(done, total)` is called after each producer.
pub fn compress(
    model: &Model,
    calib: &Dataset,
    pre: &Preprocess,
    settings: &Settings,
    mut progress: impl FnMut(usize, usize),
) -> Result<Outcome, CompressError> {
    if calib.is_empty() {
        return Err(CompressError::NoCalibration);
    }
    let links = model.links();
    let batches = (0..calib.len())
        .step_by(settings.batch.max(1))
        .map(|lo| pre.batch(calib, lo..(lo + settings.batch.max(1)).min(calib.len())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(sq_models::ModelError::from)?;
    let mut current = model.clone();
    let mut selections = Vec::with_capacity(links.len());
    let mut layers = Vec::with_capacity(links.len());
    match settings.mode {
        Mode::Sequential => {
            // Activations at the current cut: of the squeezed prefix, and
            // (for the original target) of the original model.
            let mut frontier = batches;
            let mut reference = (settings.target == Target::Original).then(|| frontier.clone());
            let mut at = 0;
            for (i, link) in links.iter().enumerate() {
                for x in frontier.iter_mut() {
                    *x = current.forward_range(x, at..link.tap)?;
                }
                for y in reference.iter_mut().flatten() {
                    *y = model.forward_range(y, at..link.tap)?;
                }
                at = link.tap;
                let (next, selection, outcome) = match &reference {
                    Some(reference) => {
                        let mut joint = Moments::new(2 * link.units());
                        for (y, x) in reference.iter().zip(&frontier) {
                            accumulate(&mut joint, &Tensor::cat(&[y, x], 1)?)?;
                        }
                        cut(&current, link, Statistics::Joint(&joint), settings)?
                    }
                    None => {
                        let mut moments = Moments::new(link.units());
                        for x in &frontier {
                            accumulate(&mut moments, x)?;
                        }
                        cut(&current, link, Statistics::Current(&moments), settings)?
                    }
                };
                for x in frontier.iter_mut() {
                    *x = keep_units(x, selection.kept())?;
                }
                current = next;
                selections.push(selection);
                layers.push(outcome);
                progress(i + 1, links.len());
            }
        }
        Mode::OnePass => {
            let stats = capture_batches(model, &links, &batches)?;
            for (i, (link, moments)) in links.iter().zip(&stats).enumerate() {
                let (next, selection, outcome) = cut(&current, link, Statistics::Current(moments), settings)?;
                current = next;
                selections.push(selection);
                layers.push(outcome);
                progress(i + 1, links.len());
            }
        }
    }
    Ok(Outcome { model: current, selection: Selection::new(selections)?, layers })
}

/// Moments of every link over preprocessed batches, one forward pass each.
fn capture_batches(model: &Model, links: &[Link], batches: &[Tensor]) -> Result<Vec<Moments>, CompressError> {
    let mut moments: Vec<Moments> = links.iter().map(|l| Moments::new(l.units())).collect();
    for x in batches {
        model.forward_with(x, |i, input| {
            for (m, _) in moments.iter_mut().zip(links).filter(|(_, l)| l.tap == i) {
                accumulate(m, input)?;
            }
            Ok::<_, CompressError>(())
        })?;
    }
    Ok(moments)
}

/// Selects, plans and applies the cut of one link. Units are chosen on the
/// covariance of the consumer's current input.
fn cut(
    model: &Model,
    link: &Link,
    stats: Statistics<'_>,
    settings: &Settings,
) -> Result<(Model, LayerSelection, LayerOutcome), CompressError> {
    let name = model.name(link.producer);
    let budget = match &settings.widths {
        Some(widths) => Budget::Width(*widths.get(&name).ok_or_else(|| CompressError::MissingWidth(name.clone()))?),
        None => settings.budget,
    };
    let norms = matches!(settings.strategy, Strategy::L1)
        .then(|| filter_l1_norms(&model.layers()[link.producer]))
        .transpose()?;
    let n = link.units();
    let cov = match stats {
        Statistics::Current(m) => m.covariance()?,
        Statistics::Joint(m) => {
            m.covariance()?.select(&(n..2 * n).collect::<Vec<_>>(), &(n..2 * n).collect::<Vec<_>>())?
        }
    };
    let selection = select_layer(name.clone(), &cov, budget, settings.strategy, norms.as_deref())?;
    let patch = plan(link, &name, selection.kept(), stats, settings.compensation)?;
    let outcome = LayerOutcome {
        name,
        width: n,
        k: selection.k(),
        retained_variance: selection.retained_variance(),
        relative_error: patch.relative_error,
        ridge: patch.map.as_ref().map_or(0.0, |m| m.ridge),
    };
    Ok((apply(model, &patch)?, selection, outcome))
}

/// L1 norm of each output unit's weights (a conv filter or a linear row).
fn filter_l1_norms(layer: &Layer) -> Result<Vec<f64>, CompressError> {
    let weight = match layer {
        Layer::Conv2d(conv) => conv.weight(),
        Layer::Linear(linear) => linear.weight(),
        _ => unreachable!("links only name conv and linear producers"),
    };
    let out = weight.dims()[0];
    Ok(weight.abs()?.reshape((out, ()))?.sum(1)?.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
}
