//! Inference speed of the reference VGG-16-BN and of its squeezed version,
//! on the runner's execution plan, on the old layer-by-layer path, and in a
//! second engine that runs offline, tract.
//!
//! * **plan**: `Model::forward`, the fused execution plan (BatchNorm folded,
//!   tiled im2col + gemm, bias and ReLU fused, channel-last activations).
//! * **candle layers**: `Model::forward_layers` on the BatchNorm-folded
//!   model, i.e. candle's `conv2d`, `relu`, `max_pool2d` and `matmul` one
//!   layer at a time: the runner as it was before the plan, deployed the
//!   way `cargo xtask reproduce` times it.
//! * **tract**: the model exported to ONNX (`sq_export::to_onnx`, fixed
//!   batch) and optimised by tract 0.22 for that batch, on tract's default
//!   of one thread: what a user deploying the exported file with tract gets.
//!
//! The squeezed model is built once in the setup with the default settings
//! (tau 0.99, eliminate, least-squares compensation, sequential) on the
//! first 256 training images. One run first prints a side-by-side table of
//! images/s at batch 1 and 64, each engine in a block of its own rounds with
//! the two models *interleaved* (each model once per round, median over
//! rounds, as the PyTorch script in `benches/peers/` measures its engines)
//! so that the ratios survive a noisy, shared machine, then runs criterion
//! on the same configurations.
//!
//! Criterion IDs: `forward/{original,squeezed}/b{1,64}` (plan),
//! `forward-layers/{original,squeezed}/b{1,64}` (candle) and
//! `forward-tract/...`; throughput in images per second. See `benches/README.md` for the PyTorch comparison.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use criterion::{BenchmarkId, Criterion, Throughput};
use sq_export::tract::TractModel;
use sq_export::{to_onnx, Batch, ExportOptions};
use sq_models::transform::fold_batchnorm;
use sq_models::Model;
use sq_pipeline::{compress, Settings};

/// Calibration images for the squeeze done in the setup.
const CALIBRATION: usize = 256;
/// Batch sizes timed: single-image latency and a throughput batch.
const BATCHES: [usize; 2] = [1, 64];
/// Rounds of the interleaved side-by-side measurement, per batch size.
const ROUNDS: [usize; 2] = [40, 8];

/// One model, as the plan runs it, as the old path ran it and in tract.
struct Subject {
    name: &'static str,
    model: Model,
    /// BatchNorm folded into the convolutions, for the candle path.
    folded: Model,
    /// The ONNX export optimised by tract, one per entry of [`BATCHES`].
    tract: Vec<TractModel>,
}

/// The ways of running a model that the bench compares.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    CandleLayers,
    Plan,
    Tract,
}

impl Path {
    const ALL: [Path; 3] = [Path::CandleLayers, Path::Plan, Path::Tract];
}

impl Subject {
    fn new(name: &'static str, model: Model) -> Self {
        let folded = fold_batchnorm(&model).expect("fold BatchNorm");
        let tract = BATCHES
            .iter()
            .map(|&batch| {
                let onnx = to_onnx(&model, &ExportOptions { batch: Batch::Fixed(batch), ..Default::default() })
                    .expect("export to ONNX");
                TractModel::from_bytes(&onnx, batch).expect("tract loads the export")
            })
            .collect();
        Self { name, model, folded, tract }
    }

    /// Runs `x`, the batch of size `BATCHES[batch]`, through `path`.
    fn run(&self, path: Path, batch: usize, x: &Tensor) -> Tensor {
        match path {
            Path::Plan => self.model.forward(x).expect("forward pass"),
            Path::CandleLayers => self.folded.forward_layers(x, 0..self.folded.layers().len()).expect("forward pass"),
            Path::Tract => self.tract[batch].run(x).expect("tract run"),
        }
    }
}

fn main() {
    let original = common::reference_model();
    let (calib, pre) = common::calibration(&original, CALIBRATION);
    let squeezed =
        compress(&original, &calib, &pre, &Settings::default(), |_, _| {}).expect("squeeze the reference model").model;
    let flop_ratio = original.macs() as f64 / squeezed.macs() as f64;
    eprintln!(
        "squeezed VGG-16 (tau 0.99, {CALIBRATION} images): params {} -> {} ({:.2}x smaller), MACs/image {} -> {} ({flop_ratio:.2}x fewer)",
        original.param_count(),
        squeezed.param_count(),
        original.param_count() as f64 / squeezed.param_count() as f64,
        original.macs(),
        squeezed.macs(),
    );
    let subjects = [Subject::new("original", original), Subject::new("squeezed", squeezed)];
    let inputs: Vec<Tensor> = BATCHES.iter().map(|&b| common::input_batch(&calib, &pre, b)).collect();

    side_by_side(&subjects, &inputs, flop_ratio);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    for (group, path) in
        [("forward", Path::Plan), ("forward-layers", Path::CandleLayers), ("forward-tract", Path::Tract)]
    {
        let mut g = c.benchmark_group(group);
        g.sample_size(10);
        for subject in &subjects {
            for (i, (batch, x)) in BATCHES.iter().zip(&inputs).enumerate() {
                g.throughput(Throughput::Elements(*batch as u64));
                g.bench_with_input(BenchmarkId::new(subject.name, format!("b{batch}")), x, |b, x| {
                    b.iter(|| subject.run(path, i, black_box(x)))
                });
            }
        }
        g.finish();
    }
    c.final_summary();
}

/// Prints images/s of every (model, path, batch), timed interleaved: each
/// round runs every configuration of a batch size once. The median over
/// rounds is the headline; the best round shows what an idle machine gives.
fn side_by_side(subjects: &[Subject], inputs: &[Tensor], flop_ratio: f64) {
    let configs: Vec<(&Subject, Path)> = subjects.iter().flat_map(|s| Path::ALL.map(|p| (s, p))).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "\nVGG-16 forward, images/s: median of rounds interleaving the models, one engine at a time \
         (best round); candle and plan on {threads} threads, tract on 1"
    );
    eprintln!(
        "{:<9} {:>5} {:>16} {:>16} {:>16} {:>12} {:>11}",
        "model", "batch", "candle layers", "plan", "tract", "plan/candle", "plan/tract"
    );
    let mut speedups = Vec::new();
    for (i, ((batch, x), rounds)) in BATCHES.iter().zip(inputs).zip(ROUNDS).enumerate() {
        let mut seconds = vec![Vec::with_capacity(rounds); configs.len()];
        // One engine at a time, as `benches/peers/pytorch_vgg16.py` times
        // PyTorch and ONNX Runtime: an engine's threads and cache contents
        // after its own previous run are part of its speed, so engines are
        // not interleaved with each other (the plan's batch-1 median fell by
        // a third between tract and candle runs); the models are.
        for path in Path::ALL {
            let block: Vec<usize> = (0..configs.len()).filter(|&c| configs[c].1 == path).collect();
            for &c in &block {
                configs[c].0.run(path, i, x); // warm-up: builds the plan, touches the weights
            }
            for _ in 0..rounds {
                for &c in &block {
                    let start = Instant::now();
                    black_box(configs[c].0.run(path, i, x));
                    seconds[c].push(start.elapsed().as_secs_f64());
                }
            }
        }
        // Per configuration: (median, best) images/s.
        let rates: Vec<(f64, f64)> = seconds
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                (*batch as f64 / t[t.len() / 2], *batch as f64 / t[0])
            })
            .collect();
        let cell = |(median, best): (f64, f64)| format!("{median:.1} ({best:.1})");
        for (subject, rate) in subjects.iter().zip(rates.chunks_exact(Path::ALL.len())) {
            let (candle, plan, tract) = (rate[0], rate[1], rate[2]);
            eprintln!(
                "{:<9} {batch:>5} {:>16} {:>16} {:>16} {:>11.2}x {:>10.2}x",
                subject.name,
                cell(candle),
                cell(plan),
                cell(tract),
                plan.0 / candle.0,
                plan.0 / tract.0
            );
        }
        // Squeezed over original, medians, for each path (configurations
        // are subject-major: the squeezed model's follow the original's).
        let n = Path::ALL.len();
        let ratio = |path: usize| rates[n + path].0 / rates[path].0;
        speedups.push((batch, ratio(1), ratio(0), ratio(2)));
    }
    for (batch, plan, candle, tract) in speedups {
        eprintln!(
            "squeezed/original at batch {batch}: plan {plan:.2}x, candle layers {candle:.2}x, tract {tract:.2}x \
             (FLOP ratio {flop_ratio:.2}x; plan speedup / FLOP ratio {:.2})",
            plan / flop_ratio
        );
    }
    eprintln!();
}
