//! The cost of a global budget on the reference VGG-16-BN, next to the
//! capture it starts from.
//!
//! * `allocate/capture`: one pass over the calibration images accumulating
//!   the statistics of every producer (`sq_capture::capture`), which every
//!   allocation and every one-pass squeeze pays.
//! * `allocate/profile/{variance,measured}`: [`Profile::new`], the same
//!   capture plus the per-layer loss curves: from the statistics alone
//!   (`variance`), or measured as the KL divergence of the predictions on
//!   validation images with one producer cut at each grid width
//!   (`measured`, the default allocator: one forward pass of the rest of
//!   the network per producer and width).
//! * `allocate/solve/{params,flops}`: [`Profile::allocate`], the dynamic
//!   programme over the curves that meets a `params:4.9x` or `flops:3.4x`
//!   budget; a profile answers any number of budgets.
//!
//! Calibration: the first 256 training images; validation: the last 64.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sq_data::{DatasetSpec, Split};
use sq_pipeline::{Allocator, Multiple, Profile, Resource, Settings, Widths};

/// Calibration images (first of the training split).
const CALIBRATION: usize = 256;
/// Validation images (last of the training split).
const VALIDATION: usize = 64;

fn allocate(c: &mut Criterion) {
    let model = common::reference_model();
    let (calib, pre) = common::calibration(&model, CALIBRATION);
    let spec: DatasetSpec = "fashion-mnist".parse().expect("the built-in dataset spec parses");
    let train = spec.load(Split::Train).expect("Fashion-MNIST training split");
    let val = train.slice(train.len() - VALIDATION..train.len());
    let settings = Settings { widths: Widths::PerLayer(Default::default()), ..Settings::default() };
    let profile = |allocator| Profile::new(&model, &calib, &val, &pre, &settings, allocator, |_, _| {});

    let mut group = c.benchmark_group("allocate");
    group.sample_size(10);
    group.bench_function("capture", |b| {
        b.iter(|| sq_capture::capture(black_box(&model), pre.batches(&calib, settings.batch), |_| {}).expect("capture"))
    });
    for allocator in [Allocator::Variance, Allocator::Measured] {
        group.bench_function(format!("profile/{allocator}"), |b| b.iter(|| profile(allocator).expect("profile")));
    }
    let measured = profile(Allocator::Measured).expect("profile");
    for (resource, ratio) in [(Resource::Params, 4.9), (Resource::Flops, 3.4)] {
        group.bench_function(format!("solve/{}", resource.as_str()), |b| {
            b.iter(|| measured.allocate(black_box(&model), (resource, ratio), Multiple::ONE).expect("allocation"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = allocate
}
criterion_main!(benches);
