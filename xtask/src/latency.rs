//! Wall-clock latency of two models measured side by side.
//!
//! The machine is shared and noisy, so the two models run interleaved
//! (A B A B ...) after a warm-up, and each is summarised by its median: slow
//! phases of the machine hit both alike, and the ratio stays meaningful.

use std::time::Instant;

use anyhow::Result;
use candle_core::Tensor;
use serde::Serialize;
use sq_models::Model;

/// Median latencies of a pair of models on the same input, in milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Pair {
    /// Median latency of the first model.
    pub a_ms: f64,
    /// Median latency of the second model.
    pub b_ms: f64,
}

impl Pair {
    /// How many times faster the second model is.
    pub fn speedup(&self) -> f64 {
        self.a_ms / self.b_ms
    }
}

/// Runs `a` and `b` on `x` alternately, `warmup` times each unmeasured,
/// then `runs` times each measured; returns the medians.
pub fn interleaved(a: &Model, b: &Model, x: &Tensor, warmup: usize, runs: usize) -> Result<Pair> {
    interleaved_with(|| Ok(a.forward(x).map(drop)?), || Ok(b.forward(x).map(drop)?), warmup, runs)
}

/// The same for any two runs, e.g. the two models in another engine.
pub fn interleaved_with(
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
    warmup: usize,
    runs: usize,
) -> Result<Pair> {
    for _ in 0..warmup {
        a()?;
        b()?;
    }
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        ta.push(time_ms(&mut a)?);
        tb.push(time_ms(&mut b)?);
    }
    Ok(Pair { a_ms: median(&mut ta), b_ms: median(&mut tb) })
}

fn time_ms(run: &mut impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    run()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// Median of a non-empty sample.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
