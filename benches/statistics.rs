//! The statistics half of squeeze: capture, Gram accumulation and eigenvalues.
//!
//! * `capture/*`: the statistics of every link of the reference VGG-16-BN
//!   over 256 calibration images (4 batches of 64), against the plain
//!   forward pass over the same batches. First a table of the three timed
//!   interleaved (median of rounds): `forward` (`Model::forward`),
//!   `capture` (`sq_capture::capture`: the runner lends each tapped
//!   activation channel-last, straight into the Gram product) and
//!   `via tensors` (the path capture took before: every tap converted to an
//!   `N x C x H x W` tensor by `Model::forward_with`, then permuted back by
//!   `accumulate`). The capture overhead is `capture / forward`.
//! * `gram/*`: adding one batch of 64 images' tapped activations to a
//!   layer's [`Moments`], for the widest map of VGG-16 on 32x32 inputs
//!   (64 channels at 32x32: 65,536 samples of 64 units) and for the deepest
//!   (512 channels at 2x2: 256 samples of 512 units). `accumulate` is the
//!   path of a candle tensor (NCHW tensor -> NHWC copy -> `update_f32`, as
//!   the sequential frontier takes); `update_f32` times the symmetric
//!   `X^T X` product alone (what `capture` now costs on top of the forward
//!   pass), so the difference is the cost of the layout copy. Throughput is in samples.
//! * `spectrum/*`: `Spectrum::from_covariance` (eigenvalues of a symmetric
//!   matrix) at 512 units (the widest conv layer) and 4096 units (the
//!   classifier's hidden layers), on full-rank covariances of random data.
//!   4096 takes seconds per run, so it is timed with 10 samples.

mod common;

use std::hint::black_box;
use std::time::Duration;

use std::time::Instant;

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

/// Calibration images for the capture benchmark, and its batch size.
const CAPTURE_IMAGES: usize = 256;
/// Rounds of the interleaved capture table.
const CAPTURE_ROUNDS: usize = 8;

fn capture(c: &mut Criterion) {
    let model = common::reference_model();
    let (data, pre) = common::calibration(&model, CAPTURE_IMAGES);
    let batches: Vec<Tensor> = (0..CAPTURE_IMAGES)
        .step_by(BATCH)
        .map(|lo| pre.batch(&data, lo..(lo + BATCH).min(CAPTURE_IMAGES)).expect("preprocess"))
        .collect();
    let links = model.links();
    let forward = || {
        for x in &batches {
            black_box(model.forward(x).expect("forward"));
        }
    };
    let capture = || {
        let batches = batches.iter().cloned().map(Ok::<_, candle_core::Error>);
        black_box(sq_capture::capture(&model, batches, |_| {}).expect("capture"));
    };
    let via_tensors = || {
        let mut moments: Vec<Moments> = links.iter().map(|l| Moments::new(l.units())).collect();
        for x in &batches {
            let out = model.forward_with(x, |i, input| {
                for (m, _) in moments.iter_mut().zip(&links).filter(|(_, l)| l.tap == i) {
                    sq_capture::accumulate(m, input)?;
                }
                Ok::<_, sq_capture::Error>(())
            });
            black_box(out.expect("forward with taps"));
        }
    };
    let configs: [(&str, &dyn Fn()); 3] = [("forward", &forward), ("capture", &capture), ("via tensors", &via_tensors)];
    let mut seconds = vec![Vec::with_capacity(CAPTURE_ROUNDS); configs.len()];
    configs.iter().for_each(|(_, run)| run()); // warm-up: builds the plan
    for _ in 0..CAPTURE_ROUNDS {
        for ((_, run), times) in configs.iter().zip(&mut seconds) {
            let start = Instant::now();
            run();
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let medians: Vec<f64> = seconds
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    eprintln!("\nVGG-16, {CAPTURE_IMAGES} images in batches of {BATCH}: median of {CAPTURE_ROUNDS} interleaved rounds");
    for ((name, _), seconds) in configs.iter().zip(&medians) {
        let rate = CAPTURE_IMAGES as f64 / seconds;
        eprintln!("{name:<12} {rate:>8.1} images/s  {:>5.2}x the forward pass", seconds / medians[0]);
    }
    eprintln!();

    let mut group = c.benchmark_group("capture");
    group.sample_size(10).throughput(Throughput::Elements(CAPTURE_IMAGES as u64));
    for (name, run) in configs {
        group.bench_function(BenchmarkId::new(name.replace(' ', "-"), "vgg16"), |b| b.iter(run));
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
    targets = capture, gram, spectrum
}
criterion_main!(benches);
