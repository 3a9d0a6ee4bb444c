//! `cargo xtask reproduce vgg16|resnet18`: the paper's table and global budgets, measured in one run.
//!
//! Two kinds of rows, for a ResNet each both inside the residual blocks only
//! and with the residual streams squeezed too:
//! * **the paper's rule**: every producer keeps `k(tau)` units of the
//!   statistics of the already-squeezed prefix, for each `--taus`; the
//!   baselines (qr, L1 with and without compensation) run at exactly the
//!   method's widths, so they differ only in which units are kept;
//! * **global budgets**: for each `--budgets` (e.g. `params:4.9x`) and each
//!   `--allocators`, per-layer widths chosen on training images only
//!   (`uniform`: one tau for every layer; `measured`: least KL divergence on
//!   the validation slice), then the method at those widths. With the
//!   streams, they are squeezed first at `--stream` and the budget (relative
//!   to the original) is allocated over the rest.
//!
//! Every model is evaluated on the test split, and timed interleaved with
//! the original in the same process.
//!
//! Then a **deployment check** of the headline models (the smallest and the
//! fastest within 0.5 pp; without one, the information-based row that lost
//! the least): each is squeezed again with every width rounded up to a
//! multiple of `--round` (the same budget, so a global budget is still
//! met), and both versions are exported to ONNX and timed against the
//! original's export in tract, a second engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use indicatif::MultiProgress;
use rayon::prelude::*;
use serde_json::json;
use sq_data::{Dataset, DatasetSpec, Preprocess, Split};
use sq_export::tract::TractModel;
use sq_export::{to_onnx, Batch, ExportOptions};
use sq_models::checkpoint::{self, StorageDtype};
use sq_models::eval::{evaluate, preprocess_for};
use sq_models::transform::fold_batchnorm;
use sq_models::Model;
use sq_pipeline::{
    compress_links, total_cost, Allocator, ModelBudget, Multiple, Outcome, Profile, Settings, StreamOutcome, Widths,
};
use sq_report::progress;
use sq_rewrite::Compensation;
use sq_select::{Budget, Strategy, Tau};

use crate::latency::{interleaved, interleaved_with, median, Pair};
use crate::report::{Machine, Original, Results, Row, Tract, PAPER_RULE};
use crate::stopwatch::Stopwatch;

/// What a reproduction runs on, and its defaults.
pub struct Subject {
    /// Short name, for file names and the default output folder (`vgg16`).
    name: &'static str,
    /// Name in tables (`VGG-16`).
    title: &'static str,
    /// The reference checkpoint, relative to the repository root.
    weights: &'static str,
    /// The default global budgets.
    budgets: &'static [&'static str],
    /// Whether the paper's VGG-16 figures are the comparison.
    paper: bool,
}

/// The paper's network.
pub const VGG16: Subject = Subject {
    name: "vgg16",
    title: "VGG-16",
    weights: "data/vgg16_bn_fashion_mnist.safetensors",
    budgets: &["params:3x", "params:4x", "params:4.9x", "flops:2x", "flops:3x", "flops:3.4x"],
    paper: true,
};

/// The reference ResNet-18.
pub const RESNET18: Subject = Subject {
    name: "resnet18",
    title: "ResNet-18",
    weights: "data/resnet18_fashion_mnist.safetensors",
    budgets: &["params:2x", "params:3x", "flops:1.5x", "flops:2x", "flops:2.5x"],
    paper: false,
};

/// Flags of `cargo xtask reproduce vgg16|resnet18`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint to squeeze (default: the reference model in data/).
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
    /// Validation images for the allocation (last N of the training split) [default: as `squeeze compress`
    /// (1000, fewer for a large model), --quick 64].
    #[arg(long)]
    val: Option<usize>,
    /// Retained-variance targets of the paper's rule [default: 0.99,0.995; --quick 0.99].
    #[arg(long, value_delimiter = ',')]
    taus: Option<Vec<Tau>>,
    /// Global budgets [default: vgg16 params:3x,params:4x,params:4.9x,flops:2x,flops:3x,flops:3.4x; resnet18
    /// params:2x,params:3x,flops:1.5x,flops:2x,flops:2.5x; --quick params:4x / params:2x].
    #[arg(long, value_delimiter = ',')]
    budgets: Option<Vec<ModelBudget>>,
    /// How much each residual stream keeps in the global-budget rows that squeeze the streams too
    /// (tau:T, fraction:F or width:W; ResNets only) [default: the method's default tau, 0.99, not tuned on
    /// anything]. The k(tau) rows use their own tau.
    #[arg(long, default_value = "tau:0.99")]
    stream: Budget,
    /// How the global budgets are allocated [default: uniform,measured].
    #[arg(long, value_delimiter = ',', default_value = "uniform,measured")]
    allocators: Vec<Allocator>,
    /// Evaluate on only the first N test images [default: all; --quick 500].
    #[arg(long)]
    test_limit: Option<usize>,
    /// Smoke test: small calibration, validation and test subsets, one tau, one budget, 3 timed runs.
    #[arg(long)]
    quick: bool,
    /// Output directory [default: results/vgg16 or results/resnet18].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Timed runs per model and batch size (after warm-up) [default: 10, --quick 3].
    #[arg(long)]
    runs: Option<usize>,
    /// Width multiple of the deployment check: the headline models squeezed again with every width
    /// rounded up to a multiple of M.
    #[arg(long, value_name = "M", default_value = "8")]
    round: Multiple,
    /// Normalisation mean, for checkpoints whose metadata has none.
    #[arg(long, value_delimiter = ',', requires = "std")]
    mean: Option<Vec<f32>>,
    /// Normalisation std, for checkpoints whose metadata has none.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    std: Option<Vec<f32>>,
    /// Resize every image's shorter side to S pixels first (torchvision's Resize(S)), for checkpoints
    /// whose metadata records no resize.
    #[arg(long, value_name = "S")]
    resize: Option<usize>,
    /// Keep the centre H x W pixels after any resize (torchvision's CenterCrop): `224` or `224x192`.
    #[arg(long, value_name = "H[xW]", value_parser = sq_data::parse_hw)]
    crop: Option<(usize, usize)>,
}

/// The baselines compared with the method at the method's widths.
const BASELINES: [(Strategy, Compensation); 3] =
    [(Strategy::Qr, Compensation::Lstsq), (Strategy::L1, Compensation::None), (Strategy::L1, Compensation::Lstsq)];

/// One squeezed model of the run, before evaluation.
struct Squeezed {
    budget: String,
    allocator: String,
    tau: Option<f64>,
    /// The residual streams' budget (`None`: inside the blocks only).
    stream: Option<Budget>,
    strategy: Strategy,
    compensation: Compensation,
    round: Multiple,
    outcome: Outcome,
}

/// Everything the rows are measured against.
struct Bench<'a> {
    subject: &'a Subject,
    original: &'a Model,
    original_folded: Model,
    original_top1: f64,
    test: &'a Dataset,
    pre: &'a Preprocess,
    inputs: [Tensor; 2],
    runs: usize,
    out: &'a Path,
    /// Latency of the original model, from every interleaved pair.
    original_latency: [Vec<f64>; 2],
    /// The same in tract, from the deployment check.
    original_tract_latency: [Vec<f64>; 2],
    /// The original's export optimised by tract for each timing batch,
    /// built by the first deployment check.
    original_tract: Option<[TractModel; 2]>,
    /// Where the time goes: squeezing, profiling, evaluating, timing.
    clock: Stopwatch,
}

/// Runs the reproduction of `subject`.
pub fn run(args: Args, subject: &Subject) -> Result<()> {
    let clock = Stopwatch::start();
    let out = args.out.clone().unwrap_or_else(|| Path::new("results").join(subject.name));
    let calib_n = args.calib.unwrap_or(if args.quick { 256 } else { 2000 });
    let taus = match &args.taus {
        Some(taus) => taus.clone(),
        None => {
            let defaults: &[f64] = if args.quick { &[0.99] } else { &[0.99, 0.995] };
            defaults.iter().map(|&t| Tau::new(t)).collect::<Result<_, _>>()?
        }
    };
    let budgets = match &args.budgets {
        Some(budgets) => budgets.clone(),
        None => {
            let defaults: &[&str] = if args.quick { &subject.budgets[..1] } else { subject.budgets };
            defaults.iter().map(|b| b.parse()).collect::<Result<_, _>>()?
        }
    };
    let test_limit = args.test_limit.or(args.quick.then_some(500));
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 10 }).max(1);
    // Everything that can be refused from the flags alone is, before any work.
    if let Some(budget) = budgets.iter().find(|b| matches!(b, ModelBudget::Tau(_))) {
        anyhow::bail!("--budgets {budget}: a global budget is params:Rx or flops:Rx (use --taus for the paper's rule)");
    }
    anyhow::ensure!(calib_n > 0, "--calib 0: the method needs calibration images");
    anyhow::ensure!(
        args.val != Some(0) || args.allocators.is_empty(),
        "--val 0: the global budgets need validation images"
    );
    anyhow::ensure!(test_limit != Some(0), "--test-limit 0: accuracy needs test images");
    let spec: DatasetSpec = args.dataset.parse().with_context(|| format!("--dataset {}", args.dataset))?;

    let weights = match (&args.hf, &args.weights) {
        (Some(spec), _) => crate::hub::fetch(spec)?,
        (None, Some(path)) => path.clone(),
        (None, None) => workspace_root().join(subject.weights),
    };
    check_outputs(&out, &weights)?;
    let original = checkpoint::load(&weights, None)?;
    let val_n = args.val.unwrap_or_else(|| if args.quick { 64 } else { sq_pipeline::default_validation(&original) });
    match sq_pipeline::check_samples(&original, calib_n) {
        // The smoke run is small on purpose: say what that costs and go on.
        Err(e @ sq_pipeline::Error::TooFewSamples { .. }) if args.quick => eprintln!("warning: --quick: {e}"),
        result => result.context("--calib")?,
    }
    let train = spec.load(Split::Train).with_context(|| format!("loading {spec} (train split)"))?;
    anyhow::ensure!(
        calib_n.checked_add(val_n).is_some_and(|n| n <= train.len()),
        "--calib {calib_n} and --val {val_n} overlap: the training split has {} images",
        train.len()
    );
    let train = train.in_order(spec.draw_order());
    let calib = train.slice(0..calib_n);
    let val = train.slice(train.len() - val_n..train.len());
    drop(train);
    let mut test = spec.load(Split::Test).with_context(|| format!("loading {spec} (test split)"))?;
    if let Some(limit) = test_limit {
        test.truncate(limit);
    }
    let geometry = sq_data::Geometry { resize: args.resize, crop: args.crop };
    let pre = preprocess_for(&original, &test, (args.mean.clone().zip(args.std.clone()), geometry))?;
    // Rows with the residual streams squeezed too, for a model that has them.
    let has_streams = !original.streams().is_empty();

    eprintln!("original: {} on {} test images", weights.display(), test.len());
    let mut bench = Bench {
        subject,
        original: &original,
        original_folded: fold_batchnorm(&original)?,
        original_top1: top1(&original, &test, &pre, "original", &MultiProgress::new())?,
        test: &test,
        pre: &pre,
        inputs: [timing_input(&original, &test, &pre, 1)?, timing_input(&original, &test, &pre, 64)?],
        runs,
        out: &out,
        original_latency: [Vec::new(), Vec::new()],
        original_tract_latency: [Vec::new(), Vec::new()],
        original_tract: None,
        clock,
    };
    let mut rows = Vec::new();

    for &tau in &taus {
        eprintln!("tau {tau}: the paper's rule, {} and baselines", method_name());
        let budget = ModelBudget::Tau(tau);
        let settings = method(Widths::Uniform(Budget::Tau(tau)));
        let squeezed = bench.clock.time("squeeze", || squeeze(&original, &calib, &pre, settings))?;
        let widths: BTreeMap<String, usize> = squeezed.layers.iter().map(|l| (l.name.clone(), l.k)).collect();
        let mut group = vec![paper(budget, tau, squeezed)];
        for (strategy, compensation) in BASELINES {
            let settings = Settings { strategy, compensation, ..method(Widths::PerLayer(widths.clone())) };
            let outcome = bench.clock.time("squeeze", || squeeze(&original, &calib, &pre, settings))?;
            group.push(Squeezed { strategy, compensation, ..paper(budget, tau, outcome) });
        }
        rows.extend(bench.measure(group)?);
        if has_streams {
            eprintln!("tau {tau}: the paper's rule on every producer and every residual stream");
            let stream = Some(Budget::Tau(tau));
            let settings = Settings { stream, ..method(Widths::Uniform(Budget::Tau(tau))) };
            let squeezed = bench.clock.time("squeeze", || squeeze(&original, &calib, &pre, settings))?;
            rows.extend(bench.measure(vec![Squeezed { stream, ..paper(budget, tau, squeezed) }])?);
        }
    }

    let stream_variants: Vec<Option<Budget>> = if has_streams { vec![None, Some(args.stream)] } else { vec![None] };
    let mut profiles = Vec::new();
    for &stream in &stream_variants {
        // The budget is spread over the links of the model with its streams squeezed (if they are).
        let settings = Settings { stream, ..method_settings() };
        let streamed = bench.clock.time("squeeze", || squeeze_streams(&original, &calib, &pre, &settings))?;
        for &allocator in &args.allocators {
            eprintln!("profiling the model for the {allocator} allocator{}", streams_label(stream));
            let bar = progress::bar(0, "profiling", "GMAC");
            let settings = method(Widths::PerLayer(BTreeMap::new()));
            let profile = bench.clock.time("profile", || {
                Profile::new(&streamed.model, &calib, &val, &pre, &settings, allocator, |done, total| {
                    progress::set_giga(&bar, done, total)
                })
            })?;
            bar.finish_and_clear();
            for &budget in &budgets {
                let ModelBudget::Ratio { resource, ratio } = budget else {
                    unreachable!("tau budgets are refused before any work")
                };
                let limit = (total_cost(&original, resource) as f64 / ratio).floor() as usize;
                let allocation = match profile.allocate_within(&streamed.model, resource, limit, Multiple::ONE) {
                    Ok(allocation) => allocation,
                    Err(e @ sq_pipeline::Error::Unreachable { .. }) => {
                        eprintln!("{budget}, {allocator} allocation{}: skipped, {e}", streams_label(stream));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                eprintln!("{budget}, {allocator} allocation: {:?}", allocation.widths.values().collect::<Vec<_>>());
                let settings = method(Widths::PerLayer(allocation.widths));
                let outcome =
                    bench.clock.time("squeeze", || squeeze_links(streamed.clone(), &calib, &pre, settings))?;
                let (strategy, compensation) = (method_settings().strategy, method_settings().compensation);
                let squeezed = Squeezed {
                    budget: budget.to_string(),
                    allocator: allocator.to_string(),
                    tau: allocation.tau,
                    stream,
                    strategy,
                    compensation,
                    round: Multiple::ONE,
                    outcome,
                };
                rows.extend(bench.measure(vec![squeezed])?);
            }
            profiles.push((allocator, stream, profile));
        }
    }

    for headline in deployment_subjects(&rows) {
        eprintln!(
            "deployment check: {} {} rounded to multiples of {}",
            rows[headline].budget, rows[headline].allocator, args.round
        );
        rows[headline].tract = Some(bench.tract(&rows[headline])?);
        let squeezed =
            bench.clock.time("squeeze", || rounded(&original, &calib, &pre, &profiles, &rows[headline], args.round));
        let squeezed = match squeezed {
            Ok(squeezed) => squeezed,
            // A model too narrow for the multiple: rounding up cannot fit the budget. Say so and go on.
            Err(e)
                if matches!(e.downcast_ref::<sq_pipeline::Error>(), Some(sq_pipeline::Error::Unreachable { .. })) =>
            {
                eprintln!("deployment check: no rounded row for {}: {e}", rows[headline].budget);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut rounded_rows = bench.measure(vec![squeezed])?;
        for row in &mut rounded_rows {
            row.tract = Some(bench.tract(row)?);
        }
        rows.extend(rounded_rows);
    }

    let producers: Vec<String> = original.links().iter().map(|l| original.name(l.producer)).collect();
    let results = Results {
        title: subject.title.to_string(),
        paper: subject.paper,
        machine: machine(),
        date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into()),
        commit: commit(),
        settings: json!({
            "weights": weights, "dataset": spec.to_string(), "calibration_images": calib.len(),
            "validation_images": val.len(), "validation": "the last images of the training split",
            "test_images": test.len(), "taus": taus, "budgets": budgets, "allocators": args.allocators,
            "timed_runs": runs, "method": method_settings(), "round": args.round,
            "latency": "BatchNorm folded into the convs of both models; batch 1 and 64; median of interleaved runs after 2 warm-up runs; rows of one tau share one measurement (identical shapes)",
        }),
        original_widths: original.links().iter().map(|l| l.units()).collect(),
        producers,
        streams: original.streams().iter().map(|s| s.name.clone()).collect(),
        original_stream_widths: original.streams().iter().map(|s| s.units).collect(),
        original: Original {
            params: original.param_count(),
            flops: original.macs(),
            bytes: file_size(&weights),
            top1: bench.original_top1,
            latency_b1_ms: median(&mut bench.original_latency[0]),
            latency_b64_ms: median(&mut bench.original_latency[1]),
            tract_latency_b1_ms: median_of_any(&mut bench.original_tract_latency[0]),
            tract_latency_b64_ms: median_of_any(&mut bench.original_tract_latency[1]),
        },
        smallest: Results::pick(&rows, |r| r.params_ratio),
        fastest: Results::pick(&rows, |r| r.speedup_b64),
        rows,
        timing: bench.clock.reading(),
    };
    write(&out.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    let table = results.table_markdown();
    write(&out.join("table.md"), table.as_bytes())?;
    results.plot_pareto(&out.join("pareto.svg"))?;
    results.plot_widths(&out.join("widths.svg"))?;
    println!("{table}");
    println!("wrote {}/{{results.json, table.md, pareto.svg, widths.svg}}", out.display());
    println!("took {}", results.timing.summary());
    Ok(())
}

/// The method's settings: the pipeline's defaults.
fn method_settings() -> Settings {
    Settings::default()
}

/// The method's settings with the given widths.
fn method(widths: Widths) -> Settings {
    Settings { widths, ..method_settings() }
}

/// `select+compensate` of the method, for messages.
fn method_name() -> String {
    let s = method_settings();
    format!("{}+{}", s.strategy, s.compensation)
}

/// `, residual streams S` for messages, or nothing.
fn streams_label(stream: Option<Budget>) -> String {
    stream.map_or(String::new(), |s| format!(", residual streams {s}"))
}

/// A row of the paper's rule at `tau`, squeezed by the method.
fn paper(budget: ModelBudget, tau: Tau, outcome: Outcome) -> Squeezed {
    let s = method_settings();
    Squeezed {
        budget: budget.to_string(),
        allocator: PAPER_RULE.into(),
        tau: Some(tau.get()),
        stream: None,
        strategy: s.strategy,
        compensation: s.compensation,
        round: Multiple::ONE,
        outcome,
    }
}

/// The rows worth a deployment check: the smallest and the fastest within
/// 0.5 pp or, if no row is, the information-based row that lost the least.
fn deployment_subjects(rows: &[Row]) -> Vec<usize> {
    let mut subjects: Vec<usize> =
        [Results::pick_index(rows, |r| r.params_ratio), Results::pick_index(rows, |r| r.speedup_b64)]
            .into_iter()
            .flatten()
            .collect();
    if subjects.is_empty() {
        let least_drop = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_information_based())
            .min_by(|a, b| a.1.drop_pp.total_cmp(&b.1.drop_pp));
        subjects.extend(least_drop.map(|(i, _)| i));
    }
    subjects.dedup();
    subjects
}

/// `row`'s model squeezed again, the same way and under the same budget,
/// with every width rounded up to a multiple of `round`; a global budget
/// is allocated again in steps of `round`, so it is still met.
fn rounded(
    original: &Model,
    calib: &Dataset,
    pre: &Preprocess,
    profiles: &[(Allocator, Option<Budget>, Profile)],
    row: &Row,
    round: Multiple,
) -> Result<Squeezed> {
    let strategy: Strategy = row.select.parse()?;
    let compensation: Compensation = row.compensate.parse()?;
    let stream: Option<Budget> = row.stream.as_deref().map(str::parse).transpose()?;
    let base = Settings { strategy, compensation, round, stream, ..method_settings() };
    let (outcome, tau) = match row.budget.parse::<ModelBudget>()? {
        ModelBudget::Tau(tau) => {
            let settings = Settings { widths: Widths::Uniform(Budget::Tau(tau)), ..base };
            (squeeze(original, calib, pre, settings)?, Some(tau.get()))
        }
        ModelBudget::Ratio { resource, ratio } => {
            let allocator: Allocator = row.allocator.parse()?;
            let (_, _, profile) = profiles
                .iter()
                .find(|(a, s, _)| *a == allocator && *s == stream)
                .with_context(|| format!("no {allocator} profile for the row of {}", row.budget))?;
            // The streams are rounded too; the links keep their widths, so the profile still fits.
            let streamed = squeeze_streams(original, calib, pre, &base)?;
            let limit = (total_cost(original, resource) as f64 / ratio).floor() as usize;
            let allocation = profile.allocate_within(&streamed.model, resource, limit, round)?;
            let settings = Settings { widths: Widths::PerLayer(allocation.widths), ..base };
            (squeeze_links(streamed, calib, pre, settings)?, allocation.tau)
        }
    };
    Ok(Squeezed {
        budget: row.budget.clone(),
        allocator: row.allocator.clone(),
        tau,
        stream,
        strategy,
        compensation,
        round,
        outcome,
    })
}

/// The median of a sample that may be empty (`None`).
fn median_of_any(values: &mut [f64]) -> Option<f64> {
    (!values.is_empty()).then(|| median(values))
}

/// `model` exported to ONNX for `batch` images and optimised by tract.
fn tract_engine(model: &Model, batch: usize) -> Result<TractModel> {
    let onnx = to_onnx(model, &ExportOptions { batch: Batch::Fixed(batch), ..Default::default() })?;
    Ok(TractModel::from_bytes(&onnx, batch)?)
}

impl Bench<'_> {
    /// Saves, evaluates and times a group of models of identical widths
    /// (hence identical shapes and latency), returning their rows.
    fn measure(&mut self, group: Vec<Squeezed>) -> Result<Vec<Row>> {
        let folded = fold_batchnorm(&group[0].outcome.model)?;
        let mut pairs = Vec::new();
        for (slot, x) in self.inputs.iter().enumerate() {
            let (original, runs) = (&self.original_folded, self.runs);
            let pair = self.clock.time("latency", || interleaved(original, &folded, x, 2, runs))?;
            self.original_latency[slot].push(pair.a_ms);
            pairs.push(pair);
        }
        let mut paths = Vec::new();
        for s in &group {
            let mut name =
                format!("{}-{}-{}-{}-{}", self.subject.name, s.budget, s.allocator, s.strategy, s.compensation);
            if let Some(stream) = s.stream {
                name.push_str(&format!("-streams-{stream}"));
            }
            if s.round != Multiple::ONE {
                name.push_str(&format!("-round{}", s.round));
            }
            let name = name.replace(':', "");
            let path = self.out.join("models").join(format!("{name}.safetensors"));
            checkpoint::save(&s.outcome.model, &path, StorageDtype::F32)?;
            paths.push((name, path));
        }
        // The models of one group are evaluated concurrently: part of each
        // forward pass is single-threaded, and two models in flight keep
        // both cores busy.
        let bars = MultiProgress::new();
        let (test, pre) = (self.test, self.pre);
        let top1s = self.clock.time("evaluate", || {
            group
                .par_iter()
                .zip(&paths)
                .map(|(s, (name, _))| top1(&s.outcome.model, test, pre, name, &bars))
                .collect::<Result<Vec<f64>>>()
        })?;
        Ok(group.iter().zip(&paths).zip(top1s).map(|((s, (_, path)), top1)| self.row(s, top1, path, &pairs)).collect())
    }

    /// The kept widths of `s`'s links (`streams`: of its residual streams,
    /// empty when they were not squeezed), first to last.
    fn widths(&self, s: &Squeezed, streams: bool) -> Vec<usize> {
        let names: Vec<String> = if streams {
            self.original.streams().into_iter().map(|s| s.name).collect()
        } else {
            self.original.links().iter().map(|l| self.original.name(l.producer)).collect()
        };
        s.outcome.layers.iter().filter(|l| names.contains(&l.name)).map(|l| l.k).collect()
    }

    fn row(&self, s: &Squeezed, top1: f64, path: &Path, latency: &[Pair]) -> Row {
        let model = &s.outcome.model;
        Row {
            budget: s.budget.clone(),
            allocator: s.allocator.clone(),
            tau: s.tau,
            select: s.strategy.to_string(),
            compensate: s.compensation.to_string(),
            stream: s.stream.map(|b| b.to_string()),
            widths: self.widths(s, false),
            stream_widths: self.widths(s, true),
            params: model.param_count(),
            params_ratio: self.original.param_count() as f64 / model.param_count() as f64,
            flops: model.macs(),
            flops_ratio: self.original.macs() as f64 / model.macs() as f64,
            bytes: file_size(path),
            top1,
            drop_pp: 100.0 * (self.original_top1 - top1),
            latency_b1_ms: latency[0].b_ms,
            latency_b64_ms: latency[1].b_ms,
            speedup_b1: latency[0].speedup(),
            speedup_b64: latency[1].speedup(),
            checkpoint: path.display().to_string(),
            round: s.round.get(),
            tract: None,
        }
    }

    /// Times the checkpoint of `row` against the original in tract, each
    /// exported to ONNX for batch 1 and 64, interleaved.
    fn tract(&mut self, row: &Row) -> Result<Tract> {
        let start = Instant::now();
        let model = checkpoint::load(Path::new(&row.checkpoint), None)?;
        if self.original_tract.is_none() {
            let [b1, b64] = &self.inputs;
            let engines = [tract_engine(self.original, b1.dims()[0])?, tract_engine(self.original, b64.dims()[0])?];
            self.original_tract = Some(engines);
        }
        let originals = self.original_tract.as_ref().expect("built above");
        let mut pairs = Vec::new();
        for (slot, (x, original)) in self.inputs.iter().zip(originals).enumerate() {
            let squeezed = tract_engine(&model, x.dims()[0])?;
            let pair =
                interleaved_with(|| Ok(original.run(x).map(drop)?), || Ok(squeezed.run(x).map(drop)?), 1, self.runs)?;
            self.original_tract_latency[slot].push(pair.a_ms);
            pairs.push(pair);
        }
        self.clock.add("tract", start.elapsed());
        Ok(Tract {
            latency_b1_ms: pairs[0].b_ms,
            latency_b64_ms: pairs[1].b_ms,
            speedup_b1: pairs[0].speedup(),
            speedup_b64: pairs[1].speedup(),
        })
    }
}

fn squeeze(model: &Model, calib: &Dataset, pre: &Preprocess, settings: Settings) -> Result<Outcome> {
    let streamed = squeeze_streams(model, calib, pre, &settings)?;
    squeeze_links(streamed, calib, pre, settings)
}

/// The residual streams of `model` squeezed as `settings` say (none without a stream budget).
fn squeeze_streams(model: &Model, calib: &Dataset, pre: &Preprocess, settings: &Settings) -> Result<StreamOutcome> {
    let bar = progress::bar(model.streams().len(), "squeezing", "residual streams");
    let streamed = sq_pipeline::squeeze_streams(model, calib, pre, settings, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(streamed)
}

/// The links of a model whose streams are squeezed, squeezed.
fn squeeze_links(streamed: StreamOutcome, calib: &Dataset, pre: &Preprocess, settings: Settings) -> Result<Outcome> {
    let bar = progress::bar(streamed.model.links().len(), "squeezing", "layers");
    let outcome = compress_links(streamed, calib, pre, &settings, |done, _| bar.set_position(done as u64))?;
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

/// The files of the output directory (refreshed on every run: the
/// committed results are regenerated in place), checked before any work:
/// each can be written, none is a FIFO, device or directory, and the
/// checkpoints written to `out/models/` cannot replace the weights read.
fn check_outputs(out: &Path, weights: &Path) -> Result<()> {
    let models = out.join("models");
    std::fs::create_dir_all(&models).with_context(|| format!("--out: creating {}", models.display()))?;
    for name in ["results.json", "table.md", "pareto.svg", "widths.svg"] {
        sq_io::check_writable(&out.join(name)).context("--out")?;
    }
    sq_io::check_writable(&models.join("probe.safetensors")).context("--out")?;
    let weights_dir = weights.canonicalize().ok().and_then(|w| w.parent().map(Path::to_path_buf));
    if weights_dir.is_some() && weights_dir == models.canonicalize().ok() {
        anyhow::bail!(
            "--weights {} lies in {}, where this run writes its checkpoints; move it or choose another --out",
            weights.display(),
            models.display()
        );
    }
    Ok(())
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
