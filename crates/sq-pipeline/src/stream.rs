//! Squeezing the residual streams of a ResNet.
//!
//! A stream's channels are written by several layers and read by several
//! (see [`sq_models::Stream`]), so one kept set serves them all. It is
//! chosen on the sum of the covariances at every tap where the stream is
//! read (each centred on its own mean, since every reader gets its own
//! offset), by the same strategy as a link. Each reader then gets its own
//! least-squares reconstruction, fitted to the tensor it actually reads
//! ([`sq_rewrite::plan_stream`]), and the writers lose the removed
//! channels ([`sq_rewrite::apply_stream`]).
//!
//! Streams are squeezed first to last, each on statistics captured from
//! the model with the earlier streams already squeezed: one pass over the
//! calibration set per stream.

use sq_capture::capture_taps;
use sq_data::{Dataset, Preprocess};
use sq_linalg::Matrix;
use sq_models::Model;
use sq_rewrite::{apply_stream, plan_stream};
use sq_select::{keep_count, select_layer, Budget, LayerSelection};

use crate::compress::{LayerOutcome, Settings, Widths};
use crate::error::{Error, Result};
use crate::multiple::Multiple;

/// A model whose residual streams were squeezed, and how.
#[derive(Clone)]
pub struct StreamOutcome {
    /// The model with narrower streams.
    pub model: Model,
    /// The channels each squeezed stream kept, by stream name.
    pub selections: Vec<LayerSelection>,
    /// Per-stream report; `relative_error` is the largest over the readers.
    pub layers: Vec<LayerOutcome>,
}

/// The budget of stream `name` under `settings`: its explicit width in
/// [`Widths::PerLayer`] if there is one, else [`Settings::stream`] (`None`:
/// the stream stays whole).
pub(crate) fn stream_budget(settings: &Settings, name: &str) -> Option<Budget> {
    match &settings.widths {
        Widths::PerLayer(widths) if widths.contains_key(name) => Some(Budget::Width(widths[name])),
        _ => settings.stream,
    }
}

/// Squeezes every residual stream of `model` that `settings` gives a
/// budget (a width in [`Widths::PerLayer`], or [`Settings::stream`]), on
/// the calibration images `calib`. `progress(done, total)` is called after
/// each stream. A model without streams comes back unchanged.
pub fn squeeze_streams(
    model: &Model,
    calib: &Dataset,
    pre: &Preprocess,
    settings: &Settings,
    mut progress: impl FnMut(usize, usize),
) -> Result<StreamOutcome> {
    let streams = model.streams();
    let mut current = model.clone();
    let mut selections = Vec::new();
    let mut layers = Vec::new();
    for (s, stream) in streams.iter().enumerate() {
        let Some(budget) = stream_budget(settings, &stream.name) else {
            continue;
        };
        let at = |e: Error| Error::Layer { layer: stream.name.clone(), source: Box::new(e) };
        let squeeze = || -> Result<(Model, LayerSelection, LayerOutcome)> {
            let moments = capture_taps(&current, pre.batches(calib, settings.batch), &stream.taps())?;
            let n = stream.units;
            let mut sum = vec![0.0; n * n];
            for m in &moments {
                sum.iter_mut().zip(m.covariance()?.as_slice()).for_each(|(s, c)| *s += c);
            }
            let cov = Matrix::from_rows(n, n, sum)?;
            let budget = match settings.round {
                Multiple::ONE => budget,
                round => Budget::Width(round.round_up(keep_count(&cov, &budget)?, n)),
            };
            let selection = select_layer(stream.name.clone(), &cov, budget, settings.strategy, None)?;
            let patch = plan_stream(stream, selection.kept(), &moments, settings.compensation)?;
            let outcome = LayerOutcome {
                name: stream.name.clone(),
                width: stream.units,
                k: selection.k(),
                retained_variance: selection.retained_variance(),
                relative_error: patch.relative_errors.iter().copied().fold(0.0, f64::max),
                ridge: patch.maps.iter().flatten().map(|m| m.ridge).fold(0.0, f64::max),
            };
            Ok((apply_stream(&current, &patch)?, selection, outcome))
        };
        let (next, selection, outcome) = squeeze().map_err(at)?;
        current = next;
        selections.push(selection);
        layers.push(outcome);
        progress(s + 1, streams.len());
    }
    Ok(StreamOutcome { model: current, selections, layers })
}
