//! The statistics half of squeeze: Gram accumulation and eigenvalues.
//!
//! * `gram/*`: adding one batch of 64 images' tapped activations to a
//!   layer's [`Moments`], for the widest map of VGG-16 on 32x32 inputs
//!   (64 channels at 32x32: 65,536 samples of 64 units) and for the deepest
//!   (512 channels at 2x2: 256 samples of 512 units). `accumulate` is the
//!   path capture takes (NCHW tensor -> NHWC copy -> `update_f32`);
//!   `update_f32` times the symmetric `X^T X` product alone, so the
//!   difference is the cost of the layout copy. Throughput is in samples.
//! * `spectrum/*`: `Spectrum::from_covariance` (eigenvalues of a symmetric
//!   matrix) at 512 units (the widest conv layer) and 4096 units (the
//!   classifier's hidden layers), on full-rank covariances of random data.
//!   4096 takes seconds per run, so it is timed with 10 samples.

mod common;

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sq_linalg::{Moments, Spectrum};

/// Images per captured batch.
const BATCH: usize = 64;

fn gram(c: &mut Criterion) {
    let mut group = c.benchmark_group("gram");
    // (channels, side) of a tapped conv activation.
    for (channels, side) in [(64, 32), (512, 2)] {
        let rows = BATCH * side * side;
        let values = common::random_f32(rows * channels, 1);
        let nchw = Tensor::from_slice(&values, (BATCH, channels, side, side), &Device::Cpu).expect("NCHW batch");
        let label = format!("{channels}x{side}x{side}");
        group.throughput(Throughput::Elements(rows as u64));
        // One `Moments` per benchmark, accumulated into across iterations
        // like a capture over many batches.
        let mut moments = Moments::new(channels);
        group.bench_function(BenchmarkId::new("accumulate", &label), |b| {
            b.iter(|| sq_capture::accumulate(&mut moments, black_box(&nchw)).expect("accumulate"))
        });
        // The same values read as NHWC rows: the product alone.
        let mut moments = Moments::new(channels);
        group.bench_function(BenchmarkId::new("update_f32", &label), |b| {
            b.iter(|| moments.update_f32(black_box(&values), rows).expect("update"))
        });
    }
    group.finish();
}

fn spectrum(c: &mut Criterion) {
    let mut group = c.benchmark_group("spectrum");
    for n in [512, 4096] {
        if n > 1024 {
            group.sample_size(10);
        }
        // n + n/8 samples: full rank, X^T X / N computed once.
        let cov = common::random_covariance(n, n + n / 8, 2);
        group.bench_with_input(BenchmarkId::from_parameter(n), &cov, |b, cov| {
            b.iter(|| Spectrum::from_covariance(black_box(cov)).expect("eigenvalues"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = gram, spectrum
}
criterion_main!(benches);
