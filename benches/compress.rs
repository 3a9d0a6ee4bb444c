//! One full one-shot squeeze of the reference VGG-16-BN, end to end.
//!
//! `sq_pipeline::compress` with the default settings (tau 0.99, eliminate,
//! least-squares compensation, sequential mode) on the first 128 training
//! images: preprocessing, one forward pass over the calibration set advanced
//! layer by layer, Gram accumulation, eigenvalues, selection, solves and
//! rewriting for all 14 producers. This is the cost a user pays once per
//! model; the other benches time its parts. Each run takes seconds, so it is
//! timed with the minimum 10 samples.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sq_pipeline::{compress, Settings};

/// Calibration images.
const CALIBRATION: usize = 128;

fn full(c: &mut Criterion) {
    let model = common::reference_model();
    let (calib, pre) = common::calibration(&model, CALIBRATION);
    let settings = Settings::default();

    let mut group = c.benchmark_group("compress");
    group.sample_size(10);
    group.bench_function(format!("vgg16_bn/{CALIBRATION}"), |b| {
        b.iter(|| compress(black_box(&model), &calib, &pre, &settings, |_, _| {}).expect("compress"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = full
}
criterion_main!(benches);
