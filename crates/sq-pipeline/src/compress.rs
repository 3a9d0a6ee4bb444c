//! The one-shot squeeze: capture -> select -> plan -> rewrite, producer by producer.
//!
//! [`Mode::Sequential`] (the default) squeezes producers first to last, each
//! on statistics captured from the *already-squeezed* prefix, so every
//! layer's reconstruction also corrects what the previous cuts disturbed.
//! It costs one forward pass over the calibration set in total: the
//! activations at the current cut are kept and advanced layer by layer
//! ([`sq_capture::Frontier`]): in memory up to
//! [`sq_capture::FRONTIER_MEMORY`] (2000 Fashion-MNIST images through
//! VGG-16 take 64 x 32 x 32 floats each, about 0.5 GB), in an anonymous
//! temporary file beyond, so memory does not grow with the calibration set.
//!
//! [`Mode::OnePass`] captures every producer once on the original model
//! ([`sq_capture::capture`]) and plans all cuts from those statistics
//! (cheaper in memory, less accurate).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sq_capture::{capture, Frontier, LayerStats, FRONTIER_MEMORY};
use sq_data::{Dataset, Preprocess};
use sq_linalg::{Matrix, Moments};
use sq_models::{Link, Model};
use sq_rewrite::{apply, consumer_gram, plan, Compensation, Statistics};
use sq_select::{
    eliminate_for_output, keep_count, retained_output_fraction, select_layer, Budget, LayerSelection, Selection,
    Strategy, Tau,
};

use crate::error::{Error, Result};
use crate::multiple::Multiple;
use crate::stream::{squeeze_streams, stream_budget, StreamOutcome};

/// Where the statistics of each producer come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Each producer's statistics are captured on the already-squeezed prefix.
    #[default]
    Sequential,
    /// All statistics are captured once on the original model.
    OnePass,
}

/// What each consumer's new input is fitted to reproduce, in sequential mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
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

serde_plain::derive_fromstr_from_deserialize!(Mode, |e| -> Error { Error::Parse(e.to_string()) });
serde_plain::derive_display_from_serialize!(Mode);
serde_plain::derive_fromstr_from_deserialize!(Target, |e| -> Error { Error::Parse(e.to_string()) });
serde_plain::derive_display_from_serialize!(Target);

/// What the kept units of a producer should preserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The variance of the consumer's input (the paper's criterion).
    #[default]
    Input,
    /// The variance of the consumer's output: each unit's unexplained
    /// variance weighted by how strongly the consumer reads it
    /// ([`sq_rewrite::consumer_gram`]); backward elimination only.
    Output,
}

serde_plain::derive_fromstr_from_deserialize!(Objective, |e| -> Error { Error::Parse(e.to_string()) });
serde_plain::derive_display_from_serialize!(Objective);

/// How many units each producer keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Widths {
    /// The same per-layer rule for every producer, e.g. `k(tau)`.
    Uniform(Budget),
    /// Exactly this many units for each named producer (a replayed
    /// selection, or widths chosen elsewhere).
    PerLayer(BTreeMap<String, usize>),
}

impl Widths {
    /// The budget of the producer called `name`.
    pub fn budget_for(&self, name: &str) -> Result<Budget> {
        match self {
            Widths::Uniform(budget) => Ok(*budget),
            Widths::PerLayer(widths) => {
                widths.get(name).map(|&k| Budget::Width(k)).ok_or_else(|| Error::MissingWidth(name.to_owned()))
            }
        }
    }
}

/// Everything that decides how a model is squeezed.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// How many units each producer keeps.
    pub widths: Widths,
    /// Which units to keep.
    pub strategy: Strategy,
    /// What the kept units should preserve.
    pub objective: Objective,
    /// How the consumer makes up for the removed units.
    pub compensation: Compensation,
    /// Where the statistics come from.
    pub mode: Mode,
    /// What the compensation reconstructs (sequential mode; in one-pass
    /// mode the original and current inputs are the same).
    pub target: Target,
    /// Images per forward pass while capturing.
    pub batch: usize,
    /// After each cut, rescale every output unit of the consumer so that its
    /// mean and variance on the calibration set match the original model's
    /// (sequential mode).
    pub repair: bool,
    /// Every kept width is rounded up to a multiple of this (or to the
    /// producer's full width), whatever chose it: `k(tau)`, explicit or
    /// allocated widths.
    pub round: Multiple,
    /// How many channels each residual stream of a ResNet keeps, with
    /// uniform widths (`None`: streams stay whole). With per-layer widths a
    /// stream's own entry decides. See [`crate::squeeze_streams`].
    pub stream: Option<Budget>,
}

impl Settings {
    /// Checks, before any work, that these settings fit `model` and that
    /// every one of them has an effect: a setting that would be ignored in
    /// this combination is an error, so that what a manifest records is
    /// what was done. Messages name the settings as the command line's flags do.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for the output objective without the
    /// eliminate strategy, `repair` or `target original` in one-pass mode,
    /// `target original` without compensation, a stream budget for a model
    /// without residual streams or whose per-layer widths already give every
    /// stream its width, settings that residual streams do not follow (a
    /// stream is always squeezed sequentially, on the input objective, by
    /// eliminate or qr, reconstructing its current input), a stream width or
    /// a rounding that leaves every unit in place;
    /// [`check_widths`](crate::check_widths)'s errors for per-layer widths
    /// (an empty map is taken as a placeholder for widths a global budget
    /// allocates later, and not checked).
    pub fn check(&self, model: &Model) -> Result<()> {
        let unsupported = |message: &str| Err(Error::Unsupported(message.to_owned()));
        if self.objective == Objective::Output && self.strategy != Strategy::Eliminate {
            return Err(Error::Unsupported(format!(
                "the output objective needs the eliminate strategy, not {}",
                self.strategy
            )));
        }
        if self.mode == Mode::OnePass && self.repair {
            return unsupported(
                "--repair needs --mode sequential: in one-pass mode every statistic comes from the original model, \
                 so there is no drift to repair",
            );
        }
        if self.mode == Mode::OnePass && self.target == Target::Original {
            return unsupported(
                "--target original has no effect in one-pass mode: there the original and the current inputs are the same",
            );
        }
        if self.compensation == Compensation::None && self.target == Target::Original {
            return unsupported("--target original has no effect with --compensate none: nothing is reconstructed");
        }
        if self.stream.is_some() {
            let streams = model.streams();
            if streams.is_empty() {
                return Err(Error::Unsupported(format!(
                    "--stream has no effect: the model (a {}) has no residual streams",
                    model.arch_name()
                )));
            }
            if let Widths::PerLayer(widths) = &self.widths {
                if streams.iter().all(|s| widths.contains_key(&s.name)) {
                    return unsupported(
                        "--stream has no effect: the per-layer widths already give every residual stream its width",
                    );
                }
            }
            if let Some(Budget::Width(w)) = self.stream {
                if let Some(narrower) = streams.iter().find(|s| s.units < w) {
                    return Err(Error::Unsupported(format!(
                        "--stream width:{w} is wider than the residual stream {} ({} channels)",
                        narrower.name, narrower.units
                    )));
                }
            }
            let keeps_all = match self.stream {
                Some(Budget::Fraction(f)) => f >= 1.0,
                Some(Budget::Width(w)) => streams.iter().all(|s| s.units <= w),
                _ => false,
            };
            if keeps_all {
                return unsupported("--stream keeps every channel of every residual stream: it would have no effect");
            }
        }
        let squeezes_streams = self.stream.is_some()
            || matches!(&self.widths, Widths::PerLayer(w) if model.streams().iter().any(|s| w.contains_key(&s.name)));
        if squeezes_streams {
            let ignored = [
                (self.mode == Mode::OnePass, "--mode one-pass"),
                (self.objective == Objective::Output, "--objective output"),
                (self.target == Target::Original, "--target original"),
                (self.repair, "--repair"),
                (self.strategy == Strategy::L1, "--select l1"),
            ];
            if let Some((_, flag)) = ignored.iter().find(|(set, _)| *set) {
                return Err(Error::Unsupported(format!(
                    "{flag} does not apply to residual streams (each is squeezed sequentially, on the input objective, \
                     by eliminate, qr or random, reconstructing its current input): squeeze the streams without it"
                )));
            }
        }
        if model.links().iter().all(|l| self.round.round_up(1, l.units()) == l.units()) && self.round != Multiple::ONE {
            return Err(Error::Unsupported(format!(
                "--round {} is at least the width of every layer: every unit would be kept",
                self.round
            )));
        }
        if let Widths::PerLayer(widths) = &self.widths {
            if !widths.is_empty() {
                crate::preflight::check_widths(model, widths)?;
            }
        }
        Ok(())
    }

    /// Chooses the units `link`'s producer in `model` keeps under `budget`,
    /// on the covariance `cov` of what its consumer reads, by the strategy
    /// and objective of these settings. The retained variance recorded is
    /// the share of the objective's variance (input or output) explained.
    pub(crate) fn select(&self, model: &Model, link: &Link, cov: &Matrix, budget: Budget) -> Result<LayerSelection> {
        let name = model.name(link.producer);
        match self.objective {
            Objective::Input => {
                let norms = match self.strategy {
                    Strategy::L1 => {
                        model.layers()[link.producer].unit_l1_norms().transpose().map_err(sq_models::Error::from)?
                    }
                    _ => None,
                };
                Ok(select_layer(name, cov, budget, self.strategy, norms.as_deref())?)
            }
            Objective::Output => {
                let weight = consumer_gram(model, link)?;
                let k = keep_count(cov, &budget)?;
                let kept = eliminate_for_output(cov, &weight, k)?;
                let retained = retained_output_fraction(cov, &weight, &kept)?;
                Ok(LayerSelection::new(name, link.units(), kept, self.strategy, budget, retained)?)
            }
        }
    }
}

impl Default for Settings {
    /// The method: `k(0.99)` units per producer, backward elimination,
    /// least-squares compensation, sequential, current target.
    fn default() -> Self {
        Self {
            widths: Widths::Uniform(Budget::Tau(Tau::new(0.99).expect("0.99 is a valid tau"))),
            strategy: Strategy::Eliminate,
            objective: Objective::Input,
            compensation: Compensation::Lstsq,
            mode: Mode::Sequential,
            target: Target::Current,
            batch: 64,
            repair: false,
            round: Multiple::ONE,
            stream: None,
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

/// The most bytes one activation of a capture batch may hold (256 MiB),
/// for [`capture_batch`].
pub const BATCH_ACTIVATION_BYTES: usize = 256 << 20;

/// Images per forward pass when capturing or squeezing `model`: 64, or
/// fewer so that the batch's largest activation stays within
/// [`BATCH_ACTIVATION_BYTES`] (20 for VGG-16 at 224x224, whose first
/// convolutions write 12.8 MB per image; 64 for ResNet-50 there, 3.2 MB).
/// The statistics are sums over images, so the batch changes only memory
/// and speed, not the result.
pub fn capture_batch(model: &Model) -> usize {
    let per_image = model.largest_activation() * std::mem::size_of::<f32>();
    (BATCH_ACTIVATION_BYTES / per_image.max(1)).clamp(1, 64)
}

/// Squeezes `model` in one shot on the calibration images `calib`: its
/// residual streams first, if `settings` gives them a budget
/// ([`crate::squeeze_streams`]), then every link ([`compress_links`]).
/// `progress(done, total)` is called after each stream and producer.
pub fn compress(
    model: &Model,
    calib: &Dataset,
    pre: &Preprocess,
    settings: &Settings,
    mut progress: impl FnMut(usize, usize),
) -> Result<Outcome> {
    check_settings(model, calib, settings)?;
    let streams = model.streams().iter().filter(|s| stream_budget(settings, &s.name).is_some()).count();
    let total = streams + model.links().len();
    let streamed = squeeze_streams(model, calib, pre, settings, |done, _| progress(done, total))?;
    compress_links(streamed, calib, pre, settings, |done, _| progress(streams + done, total))
}

/// Squeezes every link of a model whose residual streams
/// [`crate::squeeze_streams`] already squeezed (a model without streams:
/// any model, with an empty [`StreamOutcome`]), producer by producer; the
/// outcome reports the streams and the links. `progress(done, total)` is
/// called after each producer.
pub fn compress_links(
    streamed: StreamOutcome,
    calib: &Dataset,
    pre: &Preprocess,
    settings: &Settings,
    mut progress: impl FnMut(usize, usize),
) -> Result<Outcome> {
    let model = &streamed.model;
    check_settings(model, calib, settings)?;
    let links = model.links();
    let mut source = Source::new(model, calib, pre, settings)?;
    let mut current = model.clone();
    let mut selections = streamed.selections;
    let mut layers = streamed.layers;
    for (i, link) in links.iter().enumerate() {
        let at = |e: Error| Error::Layer { layer: model.name(link.producer), source: Box::new(e) };
        let statistics = source.next(&current, model, link).map_err(at)?;
        let (mut next, selection, outcome) = cut(&current, link, statistics.as_statistics(), settings).map_err(at)?;
        source.keep_units(selection.kept()).map_err(at)?;
        if settings.repair {
            if let Source::Sequential { frontier, reference: Some(reference) } = &source {
                next = repair(model, &next, link, reference, frontier).map_err(at)?;
            }
        }
        current = next;
        selections.push(selection);
        layers.push(outcome);
        progress(i + 1, links.len());
    }
    Ok(Outcome { model: current, selection: Selection::new(selections)?, layers })
}

/// The checks both entry points make before any work.
fn check_settings(model: &Model, calib: &Dataset, settings: &Settings) -> Result<()> {
    if calib.is_empty() {
        return Err(Error::NoCalibration);
    }
    settings.check(model)
}

/// Where each producer's statistics come from (see [`Mode`]).
enum Source {
    /// The calibration set's activations at the current cut, in the
    /// squeezed model and, for [`Target::Original`], in the original one.
    Sequential { frontier: Frontier, reference: Option<Frontier> },
    /// Statistics captured once on the original model, in link order.
    OnePass(std::vec::IntoIter<LayerStats>),
}

/// The statistics one cut is planned from, owned.
enum Measured {
    Current(Moments),
    Joint(Moments),
}

impl Measured {
    fn as_statistics(&self) -> Statistics<'_> {
        match self {
            Measured::Current(m) => Statistics::Current(m),
            Measured::Joint(m) => Statistics::Joint(m),
        }
    }
}

impl Source {
    fn new(model: &Model, calib: &Dataset, pre: &Preprocess, settings: &Settings) -> Result<Self> {
        Ok(match settings.mode {
            Mode::Sequential => {
                let keeps_reference = settings.target == Target::Original || settings.repair;
                // The reference (the original model's activations) shares the memory budget.
                let memory = if keeps_reference { FRONTIER_MEMORY / 2 } else { FRONTIER_MEMORY };
                let frontier = Frontier::with_memory(pre.batches(calib, settings.batch), memory)?;
                let reference = keeps_reference.then(|| frontier.clone());
                Source::Sequential { frontier, reference }
            }
            Mode::OnePass => {
                Source::OnePass(capture(model, pre.batches(calib, settings.batch), |_| {})?.into_layers().into_iter())
            }
        })
    }

    /// The statistics of `link`'s tap, where `current` is the model squeezed
    /// up to (not including) `link` and `original` the unsqueezed one.
    fn next(&mut self, current: &Model, original: &Model, link: &Link) -> Result<Measured> {
        Ok(match self {
            Source::Sequential { frontier, reference } => {
                frontier.advance(current, link.tap)?;
                match reference {
                    Some(reference) => {
                        reference.advance(original, link.tap)?;
                        Measured::Joint(frontier.joint_moments(reference)?)
                    }
                    None => Measured::Current(frontier.moments()?),
                }
            }
            Source::OnePass(layers) => {
                let layer = layers.next().expect("one captured layer per link");
                Measured::Current(layer.moments)
            }
        })
    }

    /// Records that the producer just cut kept only `kept`.
    fn keep_units(&mut self, kept: &[usize]) -> Result<()> {
        if let Source::Sequential { frontier, .. } = self {
            frontier.keep_units(kept)?;
        }
        Ok(())
    }
}

/// Selects, plans and applies the cut of one link. Units are chosen on the
/// covariance of the consumer's current input.
fn cut(
    model: &Model,
    link: &Link,
    stats: Statistics<'_>,
    settings: &Settings,
) -> Result<(Model, LayerSelection, LayerOutcome)> {
    let name = model.name(link.producer);
    let budget = settings.widths.budget_for(&name)?;
    let n = link.units();
    let cov = match stats {
        Statistics::Current(m) => m.covariance()?,
        Statistics::Joint(m) => {
            let current: Vec<usize> = (n..2 * n).collect();
            m.covariance()?.select(&current, &current)?
        }
    };
    let budget = match settings.round {
        Multiple::ONE => budget,
        round => Budget::Width(round.round_up(keep_count(&cov, &budget)?, n)),
    };
    let selection = settings.select(model, link, &cov, budget)?;
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

/// Per-unit mean and variance of the consumer's output of `link`, over all
/// batches of activations at its tap, run through `model`.
fn output_moments(model: &Model, link: &Link, frontier: &Frontier) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut sum: Vec<f64> = Vec::new();
    let mut squares: Vec<f64> = Vec::new();
    let mut count = 0usize;
    for flow in frontier.flows() {
        let y = model.forward_flow(flow?.into_owned(), link.tap..link.consumer + 1)?.x;
        let units = y.dims()[1];
        let per_unit = match y.rank() {
            4 => y.transpose(0, 1).map_err(sq_models::Error::from)?.flatten_from(1).map_err(sq_models::Error::from)?,
            _ => y.t().map_err(sq_models::Error::from)?,
        };
        let rows = per_unit.to_vec2::<f32>().map_err(sq_models::Error::from)?;
        if sum.is_empty() {
            sum = vec![0.0; units];
            squares = vec![0.0; units];
        }
        for (u, row) in rows.iter().enumerate() {
            sum[u] += row.iter().map(|&v| f64::from(v)).sum::<f64>();
            squares[u] += row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
        }
        count += rows.first().map_or(0, Vec::len);
    }
    let n = count.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var = squares.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0)).collect();
    Ok((mean, var))
}

/// Rescales each output unit of `link`'s consumer in `squeezed` so that its
/// mean and variance over the calibration set match `original`'s.
fn repair(original: &Model, squeezed: &Model, link: &Link, reference: &Frontier, current: &Frontier) -> Result<Model> {
    let (mean_o, var_o) = output_moments(original, link, reference)?;
    let (mean_s, var_s) = output_moments(squeezed, link, current)?;
    let scale: Vec<f64> =
        var_o.iter().zip(&var_s).map(|(o, s)| if *s > 1e-12 * o.max(1e-30) { (o / s).sqrt() } else { 1.0 }).collect();
    let shift: Vec<f64> = mean_o.iter().zip(&mean_s).zip(&scale).map(|((o, s), a)| o - a * s).collect();
    Ok(sq_rewrite::rescale_outputs(squeezed, link.consumer, &scale, &shift)?)
}
