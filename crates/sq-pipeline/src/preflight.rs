//! Cheap checks before any work: whether the calibration set can give every
//! producer meaningful statistics, whether explicit widths fit the model, and
//! whether a global budget can be met at all.
//! They read only the model's shapes and a count, so a command can fail in
//! milliseconds instead of after minutes of capture.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sq_capture::Stats;
use sq_models::Model;

use crate::allocate::CostModel;
use crate::budget::Resource;
use crate::error::{Error, Result};
use crate::multiple::Multiple;

/// A producer whose statistics would come from too few samples.
///
/// A tap of `n` units needs at least `n + 1` samples (images x spatial
/// positions) for its covariance to have full rank `n`: centring costs one
/// degree of freedom. With fewer, the covariance has rank below `n`, every
/// `k(tau)` is capped by that rank, "retained variance" reads 100% for
/// units that merely were not seen to vary, and the least-squares
/// compensation is fitted to noise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shortfall {
    /// Producer name.
    pub layer: String,
    /// Its number of units `n`.
    pub width: usize,
    /// Samples it gets (images x positions per image).
    pub samples: u64,
    /// Spatial positions per image at its tap (1 for a vector).
    pub positions: usize,
    /// The fewest images that give it `n + 1` samples.
    pub images_needed: u64,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} units) gets {} samples ({} per image) but needs {}: at least {} images",
            self.layer,
            self.width,
            self.samples,
            self.positions,
            self.width + 1,
            self.images_needed
        )
    }
}

/// The producers of `model` that `images` calibration images leave with
/// a rank-deficient covariance (see [`Shortfall`]), first to last.
pub fn shortfalls(model: &Model, images: usize) -> Vec<Shortfall> {
    model
        .links()
        .iter()
        .filter_map(|link| {
            let positions = link.shape.positions();
            let samples = (images as u64).saturating_mul(positions as u64);
            shortfall(model.name(link.producer), link.units(), positions, samples)
        })
        .collect()
}

/// The layers of captured or loaded statistics whose covariance is rank
/// deficient (see [`Shortfall`]).
pub fn stats_shortfalls(stats: &Stats) -> Vec<Shortfall> {
    stats
        .layers()
        .iter()
        .filter_map(|l| shortfall(l.name.clone(), l.moments.dim(), l.positions_per_image, l.moments.count()))
        .collect()
}

fn shortfall(layer: String, width: usize, positions: usize, samples: u64) -> Option<Shortfall> {
    let needed = width as u64 + 1;
    let positions = positions.max(1);
    (samples < needed).then(|| Shortfall {
        layer,
        width,
        samples,
        positions,
        images_needed: needed.div_ceil(positions as u64),
    })
}

/// The layers that need the most images, three at most, and how many more there are.
pub(crate) fn summary(layers: &[Shortfall]) -> String {
    let mut worst: Vec<&Shortfall> = layers.iter().collect();
    worst.sort_by_key(|s| std::cmp::Reverse(s.images_needed));
    let mut text = worst.iter().take(3).map(|s| s.to_string()).collect::<Vec<_>>().join("; ");
    if layers.len() > 3 {
        text += &format!("; and {} more layers", layers.len() - 3);
    }
    text
}

/// [`shortfalls`] as an error: `Ok` when every producer of `model` gets
/// enough samples from `images` calibration images, else
/// [`Error::TooFewSamples`] naming each layer and the images needed.
pub fn check_samples(model: &Model, images: usize) -> Result<()> {
    into_result(shortfalls(model, images))
}

/// [`stats_shortfalls`] as an error, like [`check_samples`].
pub fn check_stats_samples(stats: &Stats) -> Result<()> {
    into_result(stats_shortfalls(stats))
}

fn into_result(layers: Vec<Shortfall>) -> Result<()> {
    if layers.is_empty() {
        return Ok(());
    }
    let images_needed = layers.iter().map(|s| s.images_needed).max().unwrap_or(0);
    Err(Error::TooFewSamples { layers, images_needed })
}

/// Checks explicit per-layer widths against `model` before any work: every
/// producer has a width, every width names a producer or a residual stream
/// (streams without a width stay whole), and each lies in `1..=n` (a width
/// above a layer's size is an error, not a silent clamp).
pub fn check_widths(model: &Model, widths: &BTreeMap<String, usize>) -> Result<()> {
    let producers: Vec<(String, usize)> = model.links().iter().map(|l| (model.name(l.producer), l.units())).collect();
    let streams: Vec<(String, usize)> = model.streams().into_iter().map(|s| (s.name, s.units)).collect();
    let known = producers.iter().chain(&streams);
    if let Some(unknown) = widths.keys().find(|name| !known.clone().any(|(p, _)| p == *name)) {
        return Err(Error::UnknownProducer {
            name: unknown.clone(),
            producers: known.map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", "),
        });
    }
    let required = producers.into_iter().map(|(name, n)| (name, n, true));
    let optional = streams.into_iter().map(|(name, n)| (name, n, false));
    for (name, n, required) in required.chain(optional) {
        match widths.get(&name) {
            None if required => return Err(Error::MissingWidth(name)),
            Some(&k) if k == 0 || k > n => return Err(Error::WidthOutOfRange { layer: name, width: k, units: n }),
            _ => {}
        }
    }
    Ok(())
}

/// Checks, from `model`'s shapes alone, that some widths meet a global
/// budget of `limit` units of `resource`: the smallest widths any
/// allocation considers (one unit per producer, or one multiple of `round`
/// where the producer is wider) must fit. Fails in microseconds what an
/// allocation would otherwise find only after profiling every layer.
///
/// # Errors
///
/// [`Error::Unreachable`] with the smallest reachable cost.
pub fn check_budget(model: &Model, resource: Resource, limit: usize, round: Multiple) -> Result<()> {
    let cost = CostModel::new(model);
    let smallest: Vec<usize> = cost.widths().iter().map(|&n| round.round_up(1, n)).collect();
    let smallest = cost.total(&smallest, resource);
    if smallest > limit {
        return Err(Error::Unreachable { limit, smallest });
    }
    Ok(())
}
