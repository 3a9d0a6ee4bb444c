//! Per-layer widths under a global budget: the cost of a model as a function
//! of its widths ([`CostModel`]), per-layer loss curves ([`LossCurve`]) and
//! the allocation that minimises their sum within the budget ([`allocate`]).
//!
//! # The allocation
//!
//! The squeezed model's cost is a sum over *segments* (a producer and the
//! unit-wise layers after it, up to the next producer), and the cost of a
//! segment depends on the widths on both of its sides: a conv's weights are
//! `k_out x k_in x taps`. A layer's loss, on the other hand, is read off its
//! own curve. Minimising `sum_l loss_l(k_l)` subject to
//! `sum_l cost_l(k_{l-1}, k_l) <= limit` over a grid of widths per layer is
//! a dynamic programme along the chain whose state is the previous layer's
//! width and the budget spent so far (costs rounded *up* to `BINS` steps of
//! the budget, so the programme never overspends). Its result is then
//! refined one unit at a time: while some layer can grow by one unit within
//! the budget, the one whose interpolated curve gains the most per unit of
//! cost grows. The result never exceeds the budget, and no single unit more
//! fits into it.
//!
//! With a width [`Multiple`] `M`, the grid widths are rounded up to
//! multiples of `M` (losses read off the curve there) and the refinement
//! grows a producer to its next multiple at a time, so every width is a
//! multiple of `M` or the producer's full width, and the budget still holds.

use std::collections::BTreeMap;

use serde::Serialize;
use sq_capture::{capture, Frontier, Stats, FRONTIER_MEMORY};
use sq_data::{Dataset, Preprocess};
use sq_linalg::Spectrum;
use sq_models::{Layer, Model};

use crate::budget::Resource;
use crate::compress::Settings;
use crate::error::{Error, Result};
use crate::multiple::Multiple;
use crate::sensitivity::{measured_curves, variance_curves, Allocator};

/// Steps the budget is divided into by the dynamic programme: costs are
/// rounded up to `limit / BINS`, so at most `producers / BINS` of the budget
/// (0.4% for VGG-16) is left for the unit-by-unit refinement to fill.
const BINS: usize = 4000;

/// The loss of squeezing one producer alone to each of a grid of widths:
/// `points` are `(k, loss)` for strictly increasing `k`, the last at the
/// full width.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossCurve {
    /// The producer's name.
    pub name: String,
    /// The producer's original width.
    pub width: usize,
    /// `(k, loss)` at every grid width, ascending in `k`, ending at `width`.
    pub points: Vec<(usize, f64)>,
}

impl LossCurve {
    /// A curve of producer `name` (`width` units) through `points`; fails
    /// unless the widths increase strictly from at least 1 to `width` and
    /// every loss is finite.
    pub fn new(name: impl Into<String>, width: usize, points: Vec<(usize, f64)>) -> Result<Self> {
        let name = name.into();
        let valid = points.first().is_some_and(|&(k, _)| k >= 1)
            && points.last().is_some_and(|&(k, _)| k == width)
            && points.windows(2).all(|p| p[0].0 < p[1].0)
            && points.iter().all(|(_, loss)| loss.is_finite());
        if !valid {
            return Err(Error::InvalidCurve(name));
        }
        Ok(Self { name, width, points })
    }

    /// The loss at width `k`, linear between grid points; at most `width`.
    pub fn loss_at(&self, k: usize) -> f64 {
        let i = self.points.partition_point(|&(g, _)| g < k);
        match (i.checked_sub(1).map(|j| self.points[j]), self.points.get(i)) {
            (_, Some(&(g, loss))) if g == k => loss,
            (Some((k0, l0)), Some(&(k1, l1))) => l0 + (l1 - l0) * (k - k0) as f64 / (k1 - k0) as f64,
            // Below the grid the curve is extended flat, above it ends at 0 loss.
            (None, Some(&(_, loss))) => loss,
            (_, None) => self.points.last().map_or(0.0, |p| p.1),
        }
    }
}

/// The parameters or multiply-accumulates of a model as a function of the
/// widths of its producers (in [`Model::links`] order), without building the
/// narrower model.
pub struct CostModel<'m> {
    model: &'m Model,
    /// Producer layer indices, first to last.
    producers: Vec<usize>,
    /// Original widths of the producers.
    widths: Vec<usize>,
    /// `fixed_input[l]`: the units producer `l` reads when they are not
    /// producer `l - 1`'s (the network's input, or a ResNet's residual
    /// stream, which no link narrows); `None` when it reads producer `l - 1`.
    fixed_input: Vec<Option<usize>>,
    /// `spread[l]`: how many inputs of producer `l + 1` each unit of producer
    /// `l` becomes (the positions a flatten in between spreads it over; 1
    /// without a flatten).
    spread: Vec<usize>,
}

impl<'m> CostModel<'m> {
    /// The cost model of `model`'s producer chain.
    pub fn new(model: &'m Model) -> Self {
        let links = model.links();
        let producers: Vec<usize> = links.iter().map(|l| l.producer).collect();
        let spread =
            links.iter().map(|l| if l.tap == l.consumer { 1 } else { model.shape_before(l.tap).positions() }).collect();
        let fixed_input = links
            .iter()
            .enumerate()
            .map(|(l, link)| match l.checked_sub(1).map(|p| &links[p]) {
                Some(previous) if previous.consumer == link.producer => None,
                _ => Some(model.shape_before(link.producer).units()),
            })
            .collect();
        Self { model, producers, widths: links.iter().map(|l| l.units()).collect(), fixed_input, spread }
    }

    /// Original widths of the producers.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The model's `resource` with its producers narrowed to `widths`.
    pub fn total(&self, widths: &[usize], resource: Resource) -> usize {
        let prefix = self.segment(None, self.model.input_shape().units(), 0, resource);
        let prev = |l: usize| if l == 0 { 0 } else { widths[l - 1] };
        prefix + (0..widths.len()).map(|l| self.pair(l, prev(l), widths[l], resource)).sum::<usize>()
    }

    /// The cost of segment `l` (producer `l` and the layers after it, up to
    /// the next producer; `None` for the layers before the first producer)
    /// when it reads `units_in` units and producer `l` writes `k`.
    fn segment(&self, l: Option<usize>, units_in: usize, k: usize, resource: Resource) -> usize {
        let layers = self.model.layers();
        let (start, end) = match l {
            None => (0, self.producers.first().copied().unwrap_or(layers.len())),
            Some(l) => (self.producers[l], self.producers.get(l + 1).copied().unwrap_or(layers.len())),
        };
        let mut units = units_in;
        let mut cost = 0;
        for (i, layer) in layers.iter().enumerate().take(end).skip(start) {
            let out = match layer {
                Layer::Conv2d(_) | Layer::Linear(_) if i == start && l.is_some() => k,
                Layer::Conv2d(_) | Layer::Linear(_) => self.model.shape_before(i + 1).units(),
                Layer::Flatten => units * self.model.shape_before(i).positions(),
                _ => units,
            };
            // A residual block's projection reads the block's input, which
            // no link narrows.
            let units_in = match layer {
                Layer::Add(_) => self.model.block_input(i).map_or(units, |shape| shape.units()),
                _ => units,
            };
            let (params, macs) = layer.cost_at(units_in, out, self.model.shape_before(i + 1).positions());
            cost += match resource {
                Resource::Params => params,
                Resource::Flops => macs,
            };
            units = out;
        }
        cost
    }

    /// The cost of producer `l`'s segment when it is `k` wide and the
    /// producer before it `k_prev` wide (ignored when producer `l` does not
    /// read producer `l - 1`'s units).
    fn pair(&self, l: usize, k_prev: usize, k: usize, resource: Resource) -> usize {
        let units_in = self.fixed_input[l].unwrap_or_else(|| k_prev * self.spread[l - 1]);
        self.segment(Some(l), units_in, k, resource)
    }
}

/// Widths for every producer that minimise the summed loss of `curves`
/// (one per producer, in link order) with the model's `resource` at most
/// `limit`, each a multiple of `round` or the producer's full width; see
/// the module documentation for the algorithm.
pub fn allocate(
    cost: &CostModel<'_>,
    curves: &[LossCurve],
    resource: Resource,
    limit: usize,
    round: Multiple,
) -> Result<Vec<usize>> {
    let producers = cost.widths().len();
    if curves.len() != producers || curves.iter().zip(cost.widths()).any(|(c, &n)| c.width != n) {
        return Err(Error::CurvesMismatch);
    }
    let fixed = cost.segment(None, cost.model.input_shape().units(), 0, resource);
    let available = limit.checked_sub(fixed).ok_or(Error::Unreachable { limit, smallest: fixed })?;
    let step = (available as f64 / BINS as f64).max(f64::MIN_POSITIVE);
    let bins = |c: usize| (c as f64 / step).ceil() as usize;

    // best[l][j][b]: least loss of producers 0..=l with producer l at its
    // j-th grid width and b bins spent (INFINITY: unreachable).
    let grid: Vec<Vec<(usize, f64)>> = curves.iter().map(|c| rounded_grid(c, round)).collect();
    let mut best: Vec<Vec<Vec<f64>>> = Vec::with_capacity(producers);
    let mut from: Vec<Vec<Vec<u16>>> = Vec::with_capacity(producers);
    for l in 0..producers {
        let mut layer_best = vec![vec![f64::INFINITY; BINS + 1]; grid[l].len()];
        let mut layer_from = vec![vec![0u16; BINS + 1]; grid[l].len()];
        for (j, &(k, loss)) in grid[l].iter().enumerate() {
            if l == 0 {
                let b = bins(cost.pair(0, 0, k, resource));
                if b <= BINS {
                    layer_best[j][b] = loss;
                }
                continue;
            }
            for (i, &(k_prev, _)) in grid[l - 1].iter().enumerate() {
                let c = bins(cost.pair(l, k_prev, k, resource));
                if c > BINS {
                    continue;
                }
                for b in 0..=BINS - c {
                    let candidate = best[l - 1][i][b] + loss;
                    if candidate < layer_best[j][b + c] {
                        layer_best[j][b + c] = candidate;
                        layer_from[j][b + c] = i as u16;
                    }
                }
            }
        }
        best.push(layer_best);
        from.push(layer_from);
    }
    let last = producers - 1;
    let (mut j, mut b) = (0, 0);
    let mut least = f64::INFINITY;
    for (jj, row) in best[last].iter().enumerate() {
        for (bb, &v) in row.iter().enumerate() {
            if v < least {
                (least, j, b) = (v, jj, bb);
            }
        }
    }
    let mut widths = vec![0; producers];
    if least.is_infinite() {
        // Rounding costs up can hide a budget only the smallest widths meet
        // (one unit, or one multiple, per producer: below the grid).
        let smallest: Vec<usize> = curves.iter().map(|c| round.round_up(1, c.width)).collect();
        let smallest_cost = cost.total(&smallest, resource);
        if smallest_cost > limit {
            return Err(Error::Unreachable { limit, smallest: smallest_cost });
        }
        widths = smallest;
    } else {
        for l in (0..producers).rev() {
            widths[l] = grid[l][j].0;
            if l > 0 {
                let i = from[l][j][b] as usize;
                b -= bins(cost.pair(l, grid[l - 1][i].0, grid[l][j].0, resource));
                j = i;
            }
        }
    }
    fill(cost, curves, resource, limit, round, &mut widths);
    Ok(widths)
}

/// The grid widths of `curve` rounded up to `round` (within the producer's
/// width), without repeats, each with the curve's loss there.
fn rounded_grid(curve: &LossCurve, round: Multiple) -> Vec<(usize, f64)> {
    let mut widths: Vec<usize> = curve.points.iter().map(|&(k, _)| round.round_up(k, curve.width)).collect();
    widths.dedup();
    widths.into_iter().map(|k| (k, curve.loss_at(k))).collect()
}

/// Grows `widths` one step at a time (one unit, or to the next multiple of
/// `round`), always the producer whose curve gains the most per unit of
/// added cost, while some growth fits within `limit`.
fn fill(
    cost: &CostModel<'_>,
    curves: &[LossCurve],
    resource: Resource,
    limit: usize,
    round: Multiple,
    widths: &mut [usize],
) {
    let mut total = cost.total(widths, resource);
    loop {
        let mut choice: Option<(usize, usize, f64, usize)> = None;
        for l in 0..widths.len() {
            let (k, n) = (widths[l], curves[l].width);
            if k >= n {
                continue;
            }
            let next = round.round_up(k + 1, n);
            widths[l] = next;
            let grown = cost.total(widths, resource);
            widths[l] = k;
            if grown > limit {
                continue;
            }
            let gain = (curves[l].loss_at(k) - curves[l].loss_at(next)) / (grown - total).max(1) as f64;
            if choice.is_none_or(|(_, _, g, _)| gain > g) {
                choice = Some((l, next, gain, grown));
            }
        }
        let Some((l, next, _, grown)) = choice else { break };
        widths[l] = next;
        total = grown;
    }
}

/// The widths a global budget gives each producer, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Allocation {
    /// How the widths were chosen.
    pub allocator: Allocator,
    /// Kept units per producer name.
    pub widths: BTreeMap<String, usize>,
    /// For [`Allocator::Uniform`], the common retained-variance target.
    pub tau: Option<f64>,
    /// The curves the widths were chosen on, in link order (none for
    /// [`Allocator::Uniform`]).
    pub curves: Vec<LossCurve>,
    /// The allocation's summed loss on its curves.
    pub predicted_loss: f64,
    /// The resource limited.
    pub resource: Resource,
    /// The most of it the squeezed model may have.
    pub limit: usize,
    /// How much of it the allocated widths have.
    pub cost: usize,
}

/// What allocating any budget on one model needs, computed once: how each
/// producer's loss grows as it narrows, by one [`Allocator`]'s measure.
pub struct Profile {
    allocator: Allocator,
    names: Vec<String>,
    /// The explained-variance spectrum of every producer (for
    /// [`Allocator::Uniform`]; empty otherwise).
    spectra: Vec<Spectrum>,
    /// The loss curve of every producer (empty for [`Allocator::Uniform`]).
    curves: Vec<LossCurve>,
}

impl Profile {
    /// Profiles `model` for `allocator`: statistics of the original model on
    /// the calibration images `calib`, and for [`Allocator::Measured`] loss
    /// curves on the validation images `val`. Every choice made from a
    /// profile looks at training images only. `settings` give the strategy,
    /// compensation and batch size (their widths are not read);
    /// `progress(done, total)` reports the measurement's work as
    /// [`measured_curves`](crate::measured_curves) does.
    pub fn new(
        model: &Model,
        calib: &Dataset,
        val: &Dataset,
        pre: &Preprocess,
        settings: &Settings,
        allocator: Allocator,
        progress: impl FnMut(usize, usize),
    ) -> Result<Profile> {
        if calib.is_empty() {
            return Err(Error::NoCalibration);
        }
        let stats = capture(model, pre.batches(calib, settings.batch), |_| {})?;
        let names = stats.layers().iter().map(|l| l.name.clone()).collect();
        let (spectra, curves) = match allocator {
            Allocator::Uniform => (spectra(&stats)?, Vec::new()),
            Allocator::Variance => (Vec::new(), variance_curves(model, &stats, settings)?),
            Allocator::Measured => {
                if val.is_empty() {
                    return Err(Error::NoValidation);
                }
                let val = Frontier::with_memory(pre.batches(val, settings.batch), FRONTIER_MEMORY)?;
                (Vec::new(), measured_curves(model, &stats, val, settings, progress)?)
            }
        };
        Ok(Profile { allocator, names, spectra, curves })
    }

    /// The measure this profile allocates by.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The loss curves, one per producer (empty for [`Allocator::Uniform`]).
    pub fn curves(&self) -> &[LossCurve] {
        &self.curves
    }

    /// Widths for every producer of `model` (the model profiled) with at
    /// most `1 / ratio` of its `resource`, each a multiple of `round` or the
    /// producer's full width.
    pub fn allocate(&self, model: &Model, (resource, ratio): (Resource, f64), round: Multiple) -> Result<Allocation> {
        let limit = (total_cost(model, resource) as f64 / ratio).floor() as usize;
        self.allocate_within(model, resource, limit, round)
    }

    /// Like [`Profile::allocate`] with the limit given as an amount of
    /// `resource` for the whole model rather than a ratio to `model`'s: for
    /// a model whose residual streams were already squeezed, the limit is
    /// `1 / R` of the original's.
    pub fn allocate_within(
        &self,
        model: &Model,
        resource: Resource,
        limit: usize,
        round: Multiple,
    ) -> Result<Allocation> {
        let cost = CostModel::new(model);
        let (widths, tau) = match self.allocator {
            Allocator::Uniform => {
                let (tau, widths) = uniform_widths(&cost, &self.spectra, resource, limit, round)?;
                (widths, Some(tau))
            }
            Allocator::Variance | Allocator::Measured => (allocate(&cost, &self.curves, resource, limit, round)?, None),
        };
        Ok(Allocation {
            allocator: self.allocator,
            cost: cost.total(&widths, resource),
            predicted_loss: self.curves.iter().zip(&widths).map(|(c, &k)| c.loss_at(k)).sum(),
            widths: self.names.iter().cloned().zip(widths).collect(),
            tau,
            curves: self.curves.clone(),
            resource,
            limit,
        })
    }
}

/// `model`'s parameters or multiply-accumulates.
pub fn total_cost(model: &Model, resource: Resource) -> usize {
    match resource {
        Resource::Params => model.param_count(),
        Resource::Flops => model.macs(),
    }
}

/// The spectrum of every producer's covariance in `stats`.
fn spectra(stats: &Stats) -> Result<Vec<Spectrum>> {
    stats.layers().iter().map(|l| Ok(Spectrum::from_covariance(&l.moments.covariance()?)?)).collect()
}

/// The largest `tau` (to 1e-9) whose widths `k(tau)`, rounded up to
/// `round`, on `spectra` cost at most `limit`, and those widths.
fn uniform_widths(
    cost: &CostModel<'_>,
    spectra: &[Spectrum],
    resource: Resource,
    limit: usize,
    round: Multiple,
) -> Result<(f64, Vec<usize>)> {
    let widths_at = |tau: f64| -> Result<Vec<usize>> {
        spectra.iter().zip(cost.widths()).map(|(s, &n)| Ok(round.round_up(s.k_for(tau)?.max(1), n))).collect()
    };
    let smallest = widths_at(f64::MIN_POSITIVE)?;
    if cost.total(&smallest, resource) > limit {
        return Err(Error::Unreachable { limit, smallest: cost.total(&smallest, resource) });
    }
    let (mut lo, mut hi) = (f64::MIN_POSITIVE, 1.0);
    if cost.total(&widths_at(hi)?, resource) <= limit {
        return Ok((hi, widths_at(hi)?));
    }
    while hi - lo > 1e-9 {
        let mid = 0.5 * (lo + hi);
        if cost.total(&widths_at(mid)?, resource) <= limit {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((lo, widths_at(lo)?))
}
