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
    for _ in 0..warmup {
        a.forward(x)?;
        b.forward(x)?;
    }
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        ta.push(time_ms(a, x)?);
        tb.push(time_ms(b, x)?);
    }
    Ok(Pair { a_ms: median(&mut ta), b_ms: median(&mut tb) })
}

fn time_ms(model: &Model, x: &Tensor) -> Result<f64> {
    let start = Instant::now();
    std::hint::black_box(model.forward(x)?);
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
