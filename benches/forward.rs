//! Inference latency of the reference VGG-16-BN and of its squeezed version.
//!
//! This is the runner's forward pass (`Model::forward`, candle on the CPU)
//! and the "faster" half of squeeze's claim: the same runner, machine,
//! process and batch size for both models, at batch 1 (latency) and batch
//! 64 (throughput). The squeezed model is built once in the setup with the
//! default settings (tau 0.99, eliminate, least-squares compensation,
//! sequential) on the first 256 training images; its parameter and MAC
//! ratios are printed beside the timings.
//!
//! IDs: `forward/original/b1`, `forward/original/b64`, `forward/squeezed/b1`,
//! `forward/squeezed/b64`; throughput is in images per second.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sq_pipeline::{compress, Settings};

/// Calibration images for the squeeze done in the setup.
const CALIBRATION: usize = 256;
/// Batch sizes timed: single-image latency and a throughput batch.
const BATCHES: [usize; 2] = [1, 64];

fn forward(c: &mut Criterion) {
    let original = common::reference_model();
    let (calib, pre) = common::calibration(&original, CALIBRATION);
    let squeezed =
        compress(&original, &calib, &pre, &Settings::default(), |_, _| {}).expect("squeeze the reference model").model;
    eprintln!(
        "squeezed VGG-16 (tau 0.99, {CALIBRATION} images): params {} -> {} ({:.2}x smaller), MACs/image {} -> {} ({:.2}x fewer)",
        original.param_count(),
        squeezed.param_count(),
        original.param_count() as f64 / squeezed.param_count() as f64,
        original.macs(),
        squeezed.macs(),
        original.macs() as f64 / squeezed.macs() as f64,
    );

    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    for (name, model) in [("original", &original), ("squeezed", &squeezed)] {
        for batch in BATCHES {
            let x = common::input_batch(&calib, &pre, batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(name, format!("b{batch}")), &x, |b, x| {
                b.iter(|| model.forward(black_box(x)).expect("forward pass"))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = forward
}
criterion_main!(benches);
