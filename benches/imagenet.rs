//! Inference speed at ImageNet's size: torchvision's `vgg16_bn` and
//! `resnet50` shapes (3x224x224 in, 1000 classes), random weights, on the
//! runner's execution plan, at batch 1 and 32. The peer is PyTorch eager
//! running torchvision's own models on the same machine,
//! `benches/peers/pytorch_imagenet.py`, which times them the same way.
//!
//! Speed does not depend on the weights' values, so no checkpoint is needed:
//! the models come from `sq_models::synthetic` with torchvision's widths.
//! One run first prints images/s with the two models interleaved (each
//! model once per round; median over rounds, best round in brackets), then
//! runs criterion on the same configurations.
//!
//! Criterion IDs: `forward-224/{vgg16_bn,resnet50}/b{1,32}`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput};
use sq_models::synthetic::{ResNetSpec, Stem, VggSpec};
use sq_models::Model;

/// Input side, as torchvision's ImageNet models take it.
const SIDE: usize = 224;
/// Batch sizes timed: single-image latency and a throughput batch.
const BATCHES: [usize; 2] = [1, 32];
/// Rounds of the interleaved measurement, per batch size (a batch of 32
/// VGG-16 images is 0.5 TMAC: seconds on a small machine).
const ROUNDS: [usize; 2] = [10, 3];

/// torchvision's `vgg16_bn`: 13 convs of 64 to 512 channels, a 4096-4096-1000 classifier.
fn vgg16_bn() -> Model {
    let widths = vec![64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512];
    let spec = VggSpec {
        arch: "vgg16_bn".parse().expect("a known VGG"),
        widths,
        in_channels: 3,
        input_side: SIDE,
        classifier: vec![4096, 4096, 1000],
    };
    spec.build(0).expect("build vgg16_bn")
}

/// torchvision's `resnet50`: Bottleneck blocks 3-4-6-3, 64 to 512 planes, the ImageNet stem.
fn resnet50() -> Model {
    let spec = ResNetSpec {
        classes: 1000,
        ..ResNetSpec::uniform("resnet50".parse().expect("a known ResNet"), Stem::ImageNet, 64, 3, SIDE)
    };
    spec.build(0).expect("build resnet50")
}

fn main() {
    let subjects = [("vgg16_bn", vgg16_bn()), ("resnet50", resnet50())];
    let inputs: Vec<Tensor> = BATCHES
        .iter()
        .map(|&batch| {
            let values = common::random_f32(batch * 3 * SIDE * SIDE, batch as u64);
            Tensor::from_vec(values, (batch, 3, SIDE, SIDE), &Device::Cpu).expect("input batch")
        })
        .collect();

    interleaved(&subjects, &inputs);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("forward-224");
    g.sample_size(10);
    for (name, model) in &subjects {
        for (batch, x) in BATCHES.iter().zip(&inputs) {
            g.throughput(Throughput::Elements(*batch as u64));
            g.bench_with_input(BenchmarkId::new(*name, format!("b{batch}")), x, |b, x| {
                b.iter(|| model.forward(black_box(x)).expect("forward pass"))
            });
        }
    }
    g.finish();
    c.final_summary();
}

/// Prints images/s of every (model, batch): each round runs every model
/// once, the median over rounds is the headline and the best round shows
/// what an idle machine gives.
fn interleaved(subjects: &[(&str, Model)], inputs: &[Tensor]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("\n224x224 forward on the plan, {threads} threads, images/s: median of interleaved rounds (best round)");
    for ((batch, x), rounds) in BATCHES.iter().zip(inputs).zip(ROUNDS) {
        for (_, model) in subjects {
            model.forward(x).expect("forward pass"); // warm-up: builds the plan, touches the weights
        }
        let mut seconds = vec![Vec::with_capacity(rounds); subjects.len()];
        for _ in 0..rounds {
            for ((_, model), times) in subjects.iter().zip(&mut seconds) {
                let start = Instant::now();
                black_box(model.forward(x).expect("forward pass"));
                times.push(start.elapsed().as_secs_f64());
            }
        }
        for ((name, model), times) in subjects.iter().zip(&mut seconds) {
            times.sort_by(f64::total_cmp);
            let (median, best) = (*batch as f64 / times[times.len() / 2], *batch as f64 / times[0]);
            eprintln!(
                "squeeze  {name:<9} batch {batch:>2}: {median:8.2} ({best:.2})   {:.1} GMAC/image",
                model.macs() as f64 / 1e9
            );
        }
    }
}
