//! `cargo xtask reproduce vgg16`: the paper's table, measured in one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use indicatif::MultiProgress;
use rayon::prelude::*;
use serde_json::json;
use sq_models::checkpoint::{self, StorageDtype};
use sq_models::dataset::{Dataset, DatasetSpec, Preprocess, Split};
use sq_models::eval::{evaluate, preprocess_for};
use sq_models::transform::fold_batchnorm;
use sq_models::Model;
use sq_pipeline::{compress, Mode, Outcome, Settings, Widths};
use sq_report::progress;
use sq_rewrite::Compensation;
use sq_select::{Budget, Strategy, Tau};

use crate::latency::{interleaved, median, Pair};
use crate::report::{Machine, Original, Results, Row};

/// Flags of `cargo xtask reproduce vgg16`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint to squeeze (default: the reference VGG-16-BN in data/).
    #[arg(long, conflicts_with = "hf")]
    weights: Option<PathBuf>,
    /// Fetch the checkpoint from the Hugging Face Hub: OWNER/NAME[:FILE] (FILE defaults to model.safetensors).
    #[arg(long)]
    hf: Option<String>,
    /// `fashion-mnist` (data/), `fashion-mnist:DIR`, `mnist:DIR` or `cifar10:DIR`.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Calibration images (first N of the training split) [default: 2000, --quick 256].
    #[arg(long)]
    calib: Option<usize>,
    /// Retained-variance targets [default: 0.99,0.995,0.998,0.999; --quick 0.99,0.999].
    #[arg(long, value_delimiter = ',')]
    taus: Option<Vec<Tau>>,
    /// Evaluate on only the first N test images [default: all; --quick 500].
    #[arg(long)]
    test_limit: Option<usize>,
    /// Smoke test: small calibration and test subsets, two taus, 3 timed runs.
    #[arg(long)]
    quick: bool,
    /// Output directory.
    #[arg(long, default_value = "results/vgg16")]
    out: PathBuf,
    /// Timed runs per model and batch size (after warm-up) [default: 10, --quick 3].
    #[arg(long)]
    runs: Option<usize>,
    /// Normalisation mean, for checkpoints whose metadata has none.
    #[arg(long, value_delimiter = ',', requires = "std")]
    mean: Option<Vec<f32>>,
    /// Normalisation std, for checkpoints whose metadata has none.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    std: Option<Vec<f32>>,
}

/// The baselines compared with the method at the method's widths.
const BASELINES: [(Strategy, Compensation); 3] =
    [(Strategy::Qr, Compensation::Lstsq), (Strategy::L1, Compensation::None), (Strategy::L1, Compensation::Lstsq)];

/// Runs the reproduction.
pub fn run(args: Args) -> Result<()> {
    let calib_n = args.calib.unwrap_or(if args.quick { 256 } else { 2000 });
    let taus = match &args.taus {
        Some(taus) => taus.clone(),
        None => {
            let defaults: &[f64] = if args.quick { &[0.99, 0.999] } else { &[0.99, 0.995, 0.998, 0.999] };
            defaults.iter().map(|&t| Tau::new(t)).collect::<Result<_, _>>()?
        }
    };
    let test_limit = args.test_limit.or(args.quick.then_some(500));
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 10 }).max(1);

    let weights = match (&args.hf, &args.weights) {
        (Some(spec), _) => crate::hub::fetch(spec)?,
        (None, Some(path)) => path.clone(),
        (None, None) => workspace_root().join("data/vgg16_bn_fashion_mnist.safetensors"),
    };
    let original = checkpoint::load(&weights, None)?;
    let spec: DatasetSpec = args.dataset.parse()?;
    let mut calib = spec.load(Split::Train).with_context(|| format!("loading {spec} (train split)"))?;
    calib.truncate(calib_n);
    let mut test = spec.load(Split::Test).with_context(|| format!("loading {spec} (test split)"))?;
    if let Some(limit) = test_limit {
        test.truncate(limit);
    }
    let pre = preprocess_for(&original, &test, args.mean.clone().zip(args.std.clone()))?;
    std::fs::create_dir_all(args.out.join("models")).with_context(|| format!("creating {}", args.out.display()))?;

    eprintln!("original: {} on {} test images", weights.display(), test.len());
    let original_top1 = top1(&original, &test, &pre, "original", &MultiProgress::new())?;
    let inputs = [timing_input(&original, &test, &pre, 1)?, timing_input(&original, &test, &pre, 64)?];
    let original_folded = fold_batchnorm(&original)?;

    let mut rows = Vec::new();
    let mut original_latency: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for &tau in &taus {
        eprintln!("tau {tau}: eliminate+lstsq (the method)");
        let method = squeeze(
            &original,
            &calib,
            &pre,
            Settings { widths: Widths::Uniform(Budget::Tau(tau)), ..Settings::default() },
        )?;
        // All rows of one tau share these widths, hence these shapes and this latency.
        let folded = fold_batchnorm(&method.model)?;
        let mut pairs = Vec::new();
        for (slot, x) in inputs.iter().enumerate() {
            let pair = interleaved(&original_folded, &folded, x, 2, runs)?;
            original_latency[slot].push(pair.a_ms);
            pairs.push(pair);
        }
        let widths: BTreeMap<String, usize> = method.layers.iter().map(|l| (l.name.clone(), l.k)).collect();
        let mut outcomes = vec![(Strategy::Eliminate, Compensation::Lstsq, method)];
        for (strategy, compensation) in BASELINES {
            eprintln!("tau {tau}: {strategy}+{compensation} at the method's widths");
            let settings =
                Settings { widths: Widths::PerLayer(widths.clone()), strategy, compensation, ..Settings::default() };
            outcomes.push((strategy, compensation, squeeze(&original, &calib, &pre, settings)?));
        }
        let mut paths = Vec::new();
        for (strategy, compensation, outcome) in &outcomes {
            let path = args.out.join("models").join(format!("vgg16-tau{tau}-{strategy}-{compensation}.safetensors"));
            checkpoint::save(&outcome.model, &path, StorageDtype::F32)?;
            paths.push(path);
        }
        // The four models of one tau are evaluated concurrently: candle
        // leaves part of each forward pass single-threaded, and two models
        // in flight keep both cores busy.
        let bars = MultiProgress::new();
        let top1s = outcomes
            .par_iter()
            .map(|(strategy, compensation, outcome)| {
                top1(&outcome.model, &test, &pre, &format!("tau{tau}-{strategy}-{compensation}"), &bars)
            })
            .collect::<Result<Vec<f64>>>()?;
        for (((strategy, compensation, outcome), path), top1) in outcomes.iter().zip(&paths).zip(top1s) {
            rows.push(row(&original, original_top1, tau, *strategy, *compensation, outcome, top1, path, &pairs)?);
        }
    }

    let producers: Vec<String> = original.links().iter().map(|l| original.name(l.producer)).collect();
    let results = Results {
        machine: machine(),
        date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into()),
        commit: commit(),
        settings: json!({
            "weights": weights, "dataset": spec.to_string(), "calibration_images": calib.len(),
            "test_images": test.len(), "taus": taus, "timed_runs": runs, "mode": Mode::Sequential, "target": Settings::default().target,
            "latency": "BatchNorm folded into the convs of both models; batch 1 and 64; median of interleaved runs after 2 warm-up runs; rows of one tau share one measurement (identical shapes)",
        }),
        original_widths: original.links().iter().map(|l| l.units()).collect(),
        producers,
        original: Original {
            params: original.param_count(),
            flops: original.macs(),
            bytes: file_size(&weights),
            top1: original_top1,
            latency_b1_ms: median(&mut original_latency[0]),
            latency_b64_ms: median(&mut original_latency[1]),
        },
        headline: Results::pick_headline(&rows),
        rows,
    };
    let json_path = args.out.join("results.json");
    write(&json_path, serde_json::to_string_pretty(&results)?.as_bytes())?;
    let table = results.table_markdown();
    write(&args.out.join("table.md"), table.as_bytes())?;
    results.plot_pareto(&args.out.join("pareto.svg"))?;
    results.plot_widths(&args.out.join("widths.svg"))?;
    println!("{table}");
    println!("wrote {}/{{results.json, table.md, pareto.svg, widths.svg}}", args.out.display());
    Ok(())
}

fn squeeze(model: &Model, calib: &Dataset, pre: &Preprocess, settings: Settings) -> Result<Outcome> {
    let bar = progress::bar(model.links().len(), "squeezing", "layers");
    let outcome = compress(model, calib, pre, &settings, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(outcome)
}

fn top1(model: &Model, test: &Dataset, pre: &Preprocess, label: &str, bars: &MultiProgress) -> Result<f64> {
    let bar = bars.add(progress::bar(test.len(), label, "images"));
    let result = evaluate(model, test, pre, 64, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    eprintln!("{label}: top-1 {:.2}%", 100.0 * result.top1());
    Ok(result.top1())
}

/// The first `n` test images (repeated if the split is smaller), preprocessed.
fn timing_input(model: &Model, test: &Dataset, pre: &Preprocess, n: usize) -> Result<Tensor> {
    let available = test.len().min(n).max(1);
    let x = pre.batch(test, 0..available)?;
    let x = if available < n { Tensor::cat(&vec![x; n.div_ceil(available)], 0)?.narrow(0, 0, n)? } else { x };
    anyhow::ensure!(x.device().same_device(&Device::Cpu), "timing runs on the CPU");
    model.forward(&x).context("the timing input does not fit the model")?;
    Ok(x)
}

#[allow(clippy::too_many_arguments)]
fn row(
    original: &Model,
    original_top1: f64,
    tau: Tau,
    strategy: Strategy,
    compensation: Compensation,
    outcome: &Outcome,
    top1: f64,
    path: &Path,
    latency: &[Pair],
) -> Result<Row> {
    let model = &outcome.model;
    Ok(Row {
        tau,
        select: strategy.to_string(),
        compensate: compensation.to_string(),
        widths: outcome.layers.iter().map(|l| l.k).collect(),
        params: model.param_count(),
        params_ratio: original.param_count() as f64 / model.param_count() as f64,
        flops: model.macs(),
        flops_ratio: original.macs() as f64 / model.macs() as f64,
        bytes: file_size(path),
        top1,
        drop_pp: 100.0 * (original_top1 - top1),
        latency_b1_ms: latency[0].b_ms,
        latency_b64_ms: latency[1].b_ms,
        speedup_b1: latency[0].speedup(),
        speedup_b64: latency[1].speedup(),
        checkpoint: path.display().to_string(),
    })
}

/// The repository root (this crate lives in `xtask/`).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent")
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(sq_io::write_atomic(path, bytes)?)
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn commit() -> String {
    let dir = workspace_root().to_str().unwrap_or(".");
    let hash = command_output("git", &["-C", dir, "rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = command_output("git", &["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{hash}-dirty")
    } else {
        hash
    }
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}
