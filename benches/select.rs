//! Unit selection on one realistic 512-unit layer: backward elimination
//! (`eliminate`, the default strategy) against forward selection by pivoted
//! Cholesky / QR (`qr`), both keeping 256 units (`512to256`) and keeping
//! k(0.99) units, the width the default budget gives this layer
//! (`512to<k>`, 65 for the reference checkpoint).
//!
//! Elimination is the O(n^3) hand-written loop of rank-one downdates that
//! decides the cost of the selection step for the widest layers; `qr` is
//! the cheaper greedy it is compared with. The covariance is real: the
//! input of the reference VGG-16-BN's `features.40` (the 512 channels of
//! `features.37` after BatchNorm and ReLU, 2x2 positions per image),
//! captured once on the first 256 training images (1,024 samples).
//! A random covariance would be far better conditioned than a trained
//! layer's, which has dead and strongly correlated units.
//!
//! `select-wide` times the same two strategies at n = 4096 (the width of an
//! ImageNet VGG-16's hidden classifier layers), keeping half the units
//! (`4096to2048`), where the `O(n^3)` factorizations decide the cost: the
//! pivoted Cholesky (all of `qr`, and the basis `eliminate` starts from),
//! then for `eliminate` the inverse of the basis' covariance and the
//! downdates. The reference checkpoint's layers are at most 512 wide, so
//! this covariance is synthetic but shaped like a trained layer's
//! ([`common::correlated_covariance`]): 3,000 latent factors of decaying
//! scale plus 1% noise per unit, 64 dead units and 128 units that are exact
//! sums of two others (numerical rank 3,904), from 6,144 samples. One
//! selection takes seconds, so the group takes 10 samples of one call each.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use sq_linalg::{Matrix, Moments, Spectrum};
use sq_select::{select_units, Strategy};

/// The consumer whose input is captured.
const CONSUMER: &str = "features.40";
/// Calibration images for the capture.
const CALIBRATION: usize = 256;
/// Fixed number of units kept (of 512), besides k(0.99).
const KEEP: usize = 256;
/// Width of the synthetic layer of `select-wide`.
const WIDE: usize = 4096;

/// The covariance of the tensor `CONSUMER` reads, over the calibration images.
fn captured_covariance() -> Matrix {
    let model = common::reference_model();
    let (data, pre) = common::calibration(&model, CALIBRATION);
    let consumer = model.index_of(CONSUMER).expect("VGG-16 has features.40");
    let link = model.links().into_iter().find(|l| l.consumer == consumer).expect("features.40 is a consumer");
    let mut moments = Moments::new(link.units());
    for lo in (0..data.len()).step_by(64) {
        let x = pre.batch(&data, lo..(lo + 64).min(data.len())).expect("preprocess");
        let tapped = model.forward_range(&x, 0..link.tap).expect("forward to the tap");
        sq_capture::accumulate(&mut moments, &tapped).expect("accumulate");
    }
    moments.covariance().expect("covariance")
}

fn select(c: &mut Criterion) {
    let cov = captured_covariance();
    let k99 = Spectrum::from_covariance(&cov).and_then(|s| s.k_for(0.99)).expect("spectrum");
    eprintln!("{CONSUMER} input: {} units, k(0.99) = {k99}", cov.rows());

    let mut group = c.benchmark_group("select");
    for keep in [KEEP, k99] {
        for strategy in [Strategy::Eliminate, Strategy::Qr] {
            let id = BenchmarkId::new(strategy.to_string(), format!("{}to{keep}", cov.rows()));
            group.bench_with_input(id, &cov, |b, cov| {
                b.iter(|| select_units(black_box(cov), keep, &strategy, None).expect("selection"))
            });
        }
    }
    group.finish();
}

fn select_wide(c: &mut Criterion) {
    let cov = common::correlated_covariance(WIDE, 3000, 64, 128, WIDE + WIDE / 2, 3);
    let keep = WIDE / 2;
    let mut group = c.benchmark_group("select-wide");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for strategy in [Strategy::Eliminate, Strategy::Qr] {
        let id = BenchmarkId::new(strategy.to_string(), format!("{WIDE}to{keep}"));
        group.bench_with_input(id, &cov, |b, cov| {
            b.iter(|| select_units(black_box(cov), keep, &strategy, None).expect("selection"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = select, select_wide
}
criterion_main!(benches);
