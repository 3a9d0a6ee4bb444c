//! Per-layer loss curves for the allocation: how much squeezing one
//! producer alone to each of a grid of widths costs.
//!
//! Two measures, both computed from the original model and its statistics
//! (one producer cut at a time, everything else intact), and the paper's
//! rule as the reference allocation:
//!
//! * [`Allocator::Uniform`]: no curve; one `tau` for every producer, the
//!   largest whose widths `k(tau)` meet the budget.
//! * [`Allocator::Variance`]: the share of the variance (of the consumer's
//!   input, or of its output for the output objective) that the kept units
//!   cannot explain, from the statistics alone. Free, but blind to how much
//!   each layer matters for the network's output: a global threshold on
//!   discarded variance per unit of cost.
//! * [`Allocator::Measured`]: the mean KL divergence between the original
//!   model's predictions and those of the model with only that producer cut
//!   and compensated, on validation images (training images held out from
//!   calibration). Costs forward passes of the network after the producer,
//!   from activations cached at its input.

use serde::{Deserialize, Serialize};
use sq_capture::{Frontier, Stats};
use sq_models::eval::{kl_sum, log_softmax};
use sq_models::{LayerCost, Model};
use sq_rewrite::{apply, plan, Statistics};
use sq_select::Budget;

use crate::allocate::LossCurve;
use crate::compress::Settings;
use crate::error::{Error, Result};

/// Fractions of a producer's width at which its loss is measured (the full
/// width, loss 0, is always added). Dense at the small end, where the late,
/// redundant layers of a network end up, and spread over the rest.
const GRID: [f64; 13] = [0.02, 0.04, 0.0625, 0.09, 0.125, 0.1875, 0.25, 0.3125, 0.375, 0.5, 0.625, 0.75, 0.875];

/// How a global budget is spread over the producers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// One retained-variance target for every producer (the paper's rule),
    /// the largest that meets the budget.
    Uniform,
    /// Least summed unexplained variance share, from the statistics only.
    Variance,
    /// Least summed KL divergence of the predictions on validation
    /// images, measured one producer at a time.
    #[default]
    Measured,
}

serde_plain::derive_fromstr_from_deserialize!(Allocator, |e| -> Error { Error::Parse(e.to_string()) });
serde_plain::derive_display_from_serialize!(Allocator);

/// The grid widths of a producer of `n` units, ascending, ending at `n`.
pub fn grid(n: usize) -> Vec<usize> {
    let mut widths: Vec<usize> = GRID.iter().map(|f| ((f * n as f64).ceil() as usize).clamp(1, n)).collect();
    widths.push(n);
    widths.dedup();
    widths
}

/// The validation images [`Allocator::Measured`] reads unless told
/// otherwise: [`MAX_VALIDATION`], or fewer on a large model, so that its
/// forward passes stay within [`VALIDATION_MACS`] multiply-accumulates, but
/// never fewer than [`MIN_VALIDATION`]. The reference models at 32x32 keep
/// 1000; torchvision's `resnet50` at 224x224 reads 100 (87 T
/// multiply-accumulates instead of 865 T: its `--budget flops:2x` squeeze
/// with 1000 calibration images took 42 minutes on two cores).
pub fn default_validation(model: &Model) -> usize {
    (VALIDATION_MACS / measured_macs_per_image(model).max(1)).clamp(MIN_VALIDATION, MAX_VALIDATION)
}

/// The most validation images [`default_validation`] gives.
pub const MAX_VALIDATION: usize = 1000;

/// The fewest validation images [`default_validation`] gives: below this
/// the mean divergence of a cut varies too much from image to image to
/// rank cuts reliably.
pub const MIN_VALIDATION: usize = 100;

/// The multiply-accumulates [`default_validation`] sizes the measured
/// allocator's work to: 64 T, about 11 minutes on two AVX2 cores at the
/// 99 G per second its passes reach on the reference VGG-16 (32x32), 26
/// at the 41 G per second of a ResNet-50 at 224x224.
pub const VALIDATION_MACS: usize = 64_000_000_000_000;

/// Multiply-accumulates the measured allocator spends per validation image
/// on `model`: one pass of the network from each producer on, at every grid
/// width below the producer's full width.
pub fn measured_macs_per_image(model: &Model) -> usize {
    let costs = model.layer_costs();
    model.links().iter().map(|link| (grid(link.units()).len() - 1) * macs_from(&costs, link.producer)).sum()
}

/// Multiply-accumulates per image of the layers from `first` on.
fn macs_from(costs: &[LayerCost], first: usize) -> usize {
    costs[first..].iter().map(|c| c.macs).sum()
}

/// Unexplained-variance curves of every producer in `stats` (captured on
/// `model`), for the strategy of `settings`.
pub fn variance_curves(model: &Model, stats: &Stats, settings: &Settings) -> Result<Vec<LossCurve>> {
    let links = model.links();
    links
        .iter()
        .zip(stats.layers())
        .map(|(link, layer)| {
            let cov = layer.moments.covariance()?;
            let points = grid(link.units())
                .into_iter()
                .map(|k| Ok((k, 1.0 - settings.select(model, link, &cov, Budget::Width(k))?.retained_variance())))
                .collect::<Result<Vec<_>>>()?;
            LossCurve::new(layer.name.clone(), link.units(), points)
        })
        .collect()
}

/// Measured curves: for every producer and grid width, the mean KL
/// divergence from the original model's predictions on `val` (the
/// validation images at the model's input, [`Frontier::with_memory`] so
/// that memory does not grow with them) of the model with only that producer squeezed (strategy and
/// compensation of `settings`, planned on `stats`). `progress(done, total)`
/// counts the multiply-accumulates of the passes made, out of
/// [`measured_macs_per_image`] times the validation images, after each
/// width: the passes after early producers cost far more than those after
/// late ones.
pub fn measured_curves(
    model: &Model,
    stats: &Stats,
    val: Frontier,
    settings: &Settings,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<LossCurve>> {
    let links = model.links();
    let costs = model.layer_costs();
    let reference = val.flows().map(|flow| Ok(log_softmax(&model.forward(&flow?.x)?)?)).collect::<Result<Vec<_>>>()?;
    let val_images: usize = reference.iter().map(|p| p.len()).sum();
    let (mut done, total) = (0, measured_macs_per_image(model) * val_images);
    let end = model.layers().len();
    let mut frontier = val;
    let mut curves = Vec::with_capacity(links.len());
    for (link, layer) in links.iter().zip(stats.layers()) {
        frontier.advance(model, link.producer)?;
        let cov = layer.moments.covariance()?;
        let pass = val_images * macs_from(&costs, link.producer);
        let mut points = Vec::new();
        for k in grid(link.units()) {
            if k == link.units() {
                points.push((k, 0.0));
                continue;
            }
            let selection = settings.select(model, link, &cov, Budget::Width(k))?;
            let patch =
                plan(link, &layer.name, selection.kept(), Statistics::Current(&layer.moments), settings.compensation)?;
            let cut = apply(model, &patch)?;
            let mut divergence = 0.0;
            for (flow, p) in frontier.flows().zip(&reference) {
                let q = log_softmax(&cut.forward_flow(flow?.into_owned(), link.producer..end)?.x)?;
                divergence += kl_sum(p, &q);
            }
            points.push((k, divergence / val_images.max(1) as f64));
            done += pass;
            progress(done, total);
        }
        curves.push(LossCurve::new(layer.name.clone(), link.units(), points)?);
    }
    Ok(curves)
}
