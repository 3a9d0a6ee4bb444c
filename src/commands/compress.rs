//! `squeeze compress`: squeeze a checkpoint in one shot and write the smaller one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sq_data::Unreadable;
use sq_models::checkpoint::{to_bytes, StorageDtype};
use sq_models::Model;
use sq_pipeline::{
    check_budget, compress_links, default_validation, squeeze_streams, total_cost, Allocation, Allocator, Mode,
    ModelBudget, Multiple, Objective, Outcome, Profile, Settings, Target, Widths, MAX_VALIDATION, VALIDATION_MACS,
};
use sq_report::progress;
use sq_rewrite::Compensation;
use sq_select::{Budget, Strategy, Tau};

use super::model_args::{given, positive, unreadable_json, CalibrationArgs, DataArgs, Drawn, ModelArgs};
use super::outputs::Plan;

/// The role of the manifest in output planning and its errors.
const MANIFEST: &str = "the manifest (-o with a .json extension)";

/// Flags of `squeeze compress`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    calibration: CalibrationArgs,
    /// How small the squeezed model must be: tau:T (every producer keeps k(T) units), or params:Rx /
    /// flops:Rx (at most 1/R of the original's parameters / multiply-accumulates, with per-layer widths
    /// allocated to lose the least) [default: tau:0.99].
    #[arg(long, conflicts_with_all = ["tau", "widths"])]
    budget: Option<ModelBudget>,
    /// Shorthand for --budget tau:T.
    #[arg(long, conflicts_with = "widths")]
    tau: Option<Tau>,
    /// How a params/flops budget is spread over the layers: measured (least KL divergence of the
    /// predictions on the validation images, one layer cut at a time), variance (least unexplained
    /// variance, no forward passes) or uniform (one tau for every layer, the largest that fits)
    /// [default: measured].
    #[arg(long)]
    allocate: Option<Allocator>,
    /// Validation images for a params/flops budget: the last N of the training split, never the test split
    /// (calibration takes the first --calib). The measured allocator's cost grows linearly with N
    /// [default: 1000, or fewer for a large model (at least 100), so that its forward passes stay
    /// within 64 T multiply-accumulates: 100 for ResNet-50 at 224x224].
    #[arg(long, value_parser = positive)]
    val: Option<usize>,
    /// Which units to keep: eliminate, qr, l1 or random[:SEED].
    #[arg(long = "select", default_value = "eliminate")]
    strategy: Strategy,
    /// What the kept units preserve: input (the variance of what the next layer reads, the paper's
    /// criterion) or output (that variance weighted by how strongly the next layer reads each unit;
    /// --select eliminate only).
    #[arg(long, default_value = "input")]
    objective: Objective,
    /// How the consumer makes up for removed units: lstsq or none.
    #[arg(long = "compensate", default_value = "lstsq")]
    compensation: Compensation,
    /// sequential (statistics on the squeezed prefix) or one-pass.
    #[arg(long, default_value = "sequential")]
    mode: Mode,
    /// What the compensation reconstructs in sequential mode: the
    /// consumer's input in the original model, or its current input [default: current].
    #[arg(long)]
    target: Option<Target>,
    /// After each cut, rescale the next layer's outputs so that their mean and variance on the
    /// calibration images match the original model's (one more forward pass of the original).
    #[arg(long)]
    repair: bool,
    /// Round every kept width up to a multiple of M (or to the layer's full width): SIMD kernels run
    /// channels in blocks, so 40 channels often cost no more than 37. Rounding up never drops a unit the
    /// statistics asked for; a params/flops budget is still met (the allocation works in steps of M).
    #[arg(long, value_name = "M", default_value = "1")]
    round: Multiple,
    /// Also squeeze the residual streams of a ResNet (the channels every block of a stage reads and
    /// writes), each keeping tau:T, fraction:F or width:W of its channels, before the layers inside
    /// the blocks; a params/flops budget then covers both.
    #[arg(long, value_name = "BUDGET")]
    stream: Option<Budget>,
    /// Explicit per-layer widths instead of --tau: a manifest written by an
    /// earlier `squeeze compress`, or a JSON object {"features.0": 28, ...}.
    #[arg(long)]
    widths: Option<PathBuf>,
    /// Store the squeezed weights as float16 (half the bytes).
    #[arg(long)]
    f16: bool,
    /// Output checkpoint; the manifest goes beside it with a .json extension.
    /// Both are written together or not at all. Existing files are kept
    /// unless --force is given; an input file is never overwritten.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Replace output files that already exist (never an input file).
    #[arg(long)]
    force: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `squeeze compress`.
pub fn run(args: Args) -> Result<()> {
    let manifest_path = args.output.with_extension("json");
    let outputs = Plan::new(args.force)
        .input("--model", &args.model.model)
        .input_opt("--widths", args.widths.as_deref())
        .inputs_if_present("--dataset", args.data.spec()?.candidate_files())
        .output("-o", &args.output)
        .output(MANIFEST, &manifest_path)
        .check()?;
    let widths_file = match &args.widths {
        Some(path) => Some(load_widths(path)?),
        None => None,
    };
    let model = args.model.load()?;
    if let (Some(file), Some(path)) = (&widths_file, &args.widths) {
        check_written_for(&model, file, path)?;
    }
    let budget = match (args.budget, args.tau) {
        (Some(budget), _) => budget,
        (None, Some(tau)) => ModelBudget::Tau(tau),
        (None, None) => ModelBudget::Tau("0.99".parse()?),
    };
    let global = match (&args.widths, budget) {
        (None, ModelBudget::Ratio { resource, ratio }) => Some((resource, ratio)),
        _ => None,
    };
    let allocator = args.allocate.unwrap_or(Allocator::Measured);
    if global.is_none() {
        let ignored = given(&[("--allocate", args.allocate.is_some()), ("--val", args.val.is_some())]);
        if !ignored.is_empty() {
            bail!(
                "{} would have no effect: only a params/flops --budget allocates widths on validation images",
                ignored.join(" and ")
            );
        }
    } else if allocator != Allocator::Measured && args.val.is_some() {
        bail!("--val would have no effect: --allocate {allocator} reads no validation images (only measured does)");
    }
    let widths = match (widths_file, budget) {
        (Some(file), _) => Widths::PerLayer(file.widths),
        (None, ModelBudget::Tau(tau)) => Widths::Uniform(Budget::Tau(tau)),
        (None, ModelBudget::Ratio { .. }) => Widths::PerLayer(BTreeMap::new()), // allocated below
    };
    if args.target.is_some() && (args.mode == Mode::OnePass || args.compensation == Compensation::None) {
        bail!(
            "--target {} would have no effect with {}: there the target is not a choice",
            args.target.unwrap_or(Target::Current),
            if args.mode == Mode::OnePass { "--mode one-pass" } else { "--compensate none" }
        );
    }
    let mut settings = Settings {
        widths,
        strategy: args.strategy,
        objective: args.objective,
        compensation: args.compensation,
        mode: args.mode,
        target: args.target.unwrap_or(Target::Current),
        batch: args.calibration.batch(&model),
        repair: args.repair,
        round: args.round,
        stream: args.stream,
    };
    settings.check(&model).with_context(|| match &args.widths {
        Some(path) => format!("{} with --widths {}", args.model.model.display(), path.display()),
        None => args.model.model.display().to_string(),
    })?;
    let validation = match global {
        Some(_) if allocator == Allocator::Measured => args.val.unwrap_or_else(|| {
            let n = default_validation(&model);
            if n < MAX_VALIDATION {
                eprintln!(
                    "--val {n}: on this model, {MAX_VALIDATION} validation images would take the measured \
                     allocator past {} T multiply-accumulates (--val N to choose)",
                    VALIDATION_MACS / 1_000_000_000_000
                );
            }
            n
        }),
        _ => 0,
    };
    let Drawn { spec, calib, val, pre, skipped } = args.calibration.load(&args.data, &model, validation)?;
    let streams = model.streams().len();
    let bar = progress::bar(streams, "squeezing", "residual streams");
    let streamed = squeeze_streams(&model, &calib, &pre, &settings, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let allocation = match global {
        Some((resource, ratio)) => {
            // The budget is relative to the original, streams included.
            let limit = (total_cost(&model, resource) as f64 / ratio).floor() as usize;
            check_budget(&streamed.model, resource, limit, settings.round)
                .with_context(|| format!("--budget {budget} with --round {}", settings.round))?;
            // Counted in multiply-accumulates: the passes after early layers cost the most.
            let bar = progress::bar(0, "allocating", "GMAC");
            let profile = Profile::new(&streamed.model, &calib, &val, &pre, &settings, allocator, |done, total| {
                progress::set_giga(&bar, done, total)
            })?;
            bar.finish_and_clear();
            let chosen = profile.allocate_within(&streamed.model, resource, limit, settings.round)?;
            settings.widths = Widths::PerLayer(chosen.widths.clone());
            Some(chosen)
        }
        None => None,
    };
    let bar = progress::bar(model.links().len(), "squeezing", "layers");
    let outcome = compress_links(streamed, &calib, &pre, &settings, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let mut squeezed = outcome.model.clone();
    let meta = squeezed.metadata_mut();
    // The recorded accuracy belonged to the original weights.
    meta.remove("test_accuracy");
    meta.insert("squeezed_from".into(), args.model.model.display().to_string());
    // The preprocessing it was squeezed with, flags included: the output evaluates with no flags.
    meta.extend(pre.metadata());
    meta.insert("squeeze_settings".into(), serde_json::to_string(&settings)?);
    let dtype = if args.f16 { StorageDtype::F16 } else { StorageDtype::F32 };
    let checkpoint = to_bytes(&squeezed, dtype, &args.output)?;
    let run = Run {
        // Explicit widths are the budget: the file they came from is recorded instead.
        budget: args.widths.is_none().then_some(budget),
        widths_file: args.widths.as_deref(),
        storage: if args.f16 { "f16" } else { "f32" },
        allocation: allocation.as_ref(),
        dataset: spec.to_string(),
        draw_order: spec.draw_order().to_string(),
        calibration: calib.len(),
        validation: val.len(),
        skipped: &skipped,
        output: &args.output,
        bytes: checkpoint.len(),
    };
    let summary = summary(&model, &outcome, &settings, &run)?;
    let manifest = serde_json::to_string_pretty(&summary)?;
    outputs.write(&[("-o", &checkpoint), (MANIFEST, manifest.as_bytes())])?;

    if args.json {
        println!("{summary}");
    } else {
        print_report(&model, &outcome);
        println!("wrote {} and {}", args.output.display(), manifest_path.display());
    }
    Ok(())
}

/// What one run was asked for and looked at, for the manifest: the
/// budget (or the `--widths` file) and its allocation, the calibration images
/// (first of the training split) and the validation images (last of it), and
/// what was written, in which precision.
struct Run<'a> {
    budget: Option<ModelBudget>,
    widths_file: Option<&'a Path>,
    storage: &'static str,
    allocation: Option<&'a Allocation>,
    dataset: String,
    draw_order: String,
    calibration: usize,
    validation: usize,
    /// Files passed over by `--skip-unreadable`.
    skipped: &'a [Unreadable],
    output: &'a Path,
    bytes: usize,
}

/// The manifest: settings, sizes before/after, per-layer outcome and the replayable selection.
fn summary(model: &Model, outcome: &Outcome, settings: &Settings, run: &Run<'_>) -> Result<Value> {
    let (p0, p1) = (model.param_count(), outcome.model.param_count());
    let (f0, f1) = (model.macs(), outcome.model.macs());
    Ok(json!({
        "output": run.output,
        "bytes": run.bytes,
        "budget": run.budget,
        "widths_file": run.widths_file,
        "storage": run.storage,
        "settings": settings,
        "calibration": { "dataset": run.dataset, "split": "train", "images": run.calibration, "from": "start", "order": run.draw_order },
        "validation": { "dataset": run.dataset, "split": "train", "images": run.validation, "from": "end", "order": run.draw_order },
        "unreadable_skipped": unreadable_json(run.skipped),
        "allocation": run.allocation,
        "params": { "before": p0, "after": p1, "ratio": p0 as f64 / p1 as f64 },
        "flops": { "before": f0, "after": f1, "ratio": f0 as f64 / f1 as f64 },
        "layers": outcome.layers,
        "selection": outcome.selection,
    }))
}

fn print_report(model: &Model, outcome: &Outcome) {
    println!("{:<14} {:>6} {:>6} {:>9} {:>10}", "producer", "n", "k", "retained", "rel. err");
    for l in &outcome.layers {
        println!(
            "{:<14} {:>6} {:>6} {:>8.2}% {:>10.4}",
            l.name,
            l.width,
            l.k,
            100.0 * l.retained_variance,
            l.relative_error
        );
    }
    let (p0, p1) = (model.param_count(), outcome.model.param_count());
    let (f0, f1) = (model.macs(), outcome.model.macs());
    println!("params  {p0} -> {p1} ({:.2}x smaller)", p0 as f64 / p1 as f64);
    println!(
        "FLOPs   {:.1}M -> {:.1}M multiply-accumulates per image ({:.2}x fewer)",
        f0 as f64 / 1e6,
        f1 as f64 / 1e6,
        f0 as f64 / f1 as f64
    );
}

/// The largest `--widths` file read: 16 MiB of JSON.
const MAX_WIDTHS: sq_io::Cap = sq_io::Cap { bytes: 16 << 20, what: "a widths file" };

/// Widths read from a `--widths` file.
struct WidthsFile {
    /// Kept units per producer (or residual stream).
    widths: BTreeMap<String, usize>,
    /// For a manifest, the width each layer had in the model it was written for.
    original: BTreeMap<String, usize>,
}

/// Per-producer widths from a manifest (`selection.layers[].kept`) or a plain `{name: width}` object,
/// read strictly: a layer named twice, a width that is not a whole number, a kept list with repeats or
/// with a unit beyond the layer's recorded width are errors naming the file and the layer.
fn load_widths(path: &Path) -> Result<WidthsFile> {
    let shown = format!("--widths {}", path.display());
    let bytes = sq_io::read_input(path, MAX_WIDTHS).with_context(|| format!("{shown}: cannot read it"))?;
    let value = sq_io::parse_json(&bytes).with_context(|| format!("{shown}: not valid JSON"))?;
    let mut entries: Vec<(String, usize)> = Vec::new();
    let mut original = BTreeMap::new();
    if let Some(layers) = value.pointer("/selection/layers") {
        let layers = layers.as_array().with_context(|| format!("{shown}: `selection.layers` is not a list"))?;
        for (i, layer) in layers.iter().enumerate() {
            let name = layer
                .get("name")
                .and_then(Value::as_str)
                .with_context(|| format!("{shown}: entry {i} of `selection.layers` has no `name`"))?;
            let kept = layer
                .get("kept")
                .and_then(Value::as_array)
                .with_context(|| format!("{shown}: layer `{name}` has no `kept` list"))?;
            let mut units: Vec<u64> =
                kept.iter().map(Value::as_u64).collect::<Option<_>>().with_context(|| {
                    format!("{shown}: layer `{name}`: `kept` must list unit indices (whole numbers)")
                })?;
            units.sort_unstable();
            if units.windows(2).any(|w| w[0] == w[1]) {
                bail!("{shown}: layer `{name}`: `kept` lists a unit twice");
            }
            let width = layer
                .get("width")
                .and_then(Value::as_u64)
                .with_context(|| format!("{shown}: layer `{name}` has no `width` (its number of units)"))?;
            if let Some(beyond) = units.iter().find(|&&u| u >= width) {
                bail!("{shown}: layer `{name}`: `kept` lists unit {beyond}, but the layer has {width} units");
            }
            original.insert(name.to_owned(), width as usize);
            entries.push((name.to_owned(), units.len()));
        }
    } else if let Some(object) = value.as_object() {
        for (name, width) in object {
            let width = width
                .as_u64()
                .and_then(|w| usize::try_from(w).ok())
                .with_context(|| format!("{shown}: layer `{name}`: the width {width} is not a whole number"))?;
            entries.push((name.clone(), width));
        }
    } else {
        bail!("{shown}: expected a squeeze manifest or an object of layer widths {{\"features.0\": 28, ...}}");
    }
    let mut widths = BTreeMap::new();
    for (name, width) in entries {
        if widths.insert(name.clone(), width).is_some() {
            bail!("{shown}: layer `{name}` is listed twice");
        }
    }
    if widths.is_empty() {
        bail!("{shown}: it names no layer");
    }
    Ok(WidthsFile { widths, original })
}

/// Checks that a manifest given as `--widths` was written for a model whose
/// layers have `model`'s widths (its unit indices would mean nothing otherwise).
fn check_written_for(model: &Model, file: &WidthsFile, path: &Path) -> Result<()> {
    let links: Vec<(String, usize)> = model.links().iter().map(|l| (model.name(l.producer), l.units())).collect();
    let streams = model.streams().into_iter().map(|s| (s.name, s.units));
    for (name, units) in links.into_iter().chain(streams) {
        if let Some(&recorded) = file.original.get(&name) {
            if recorded != units {
                bail!(
                    "--widths {}: it was written for a model whose `{name}` has {recorded} units; --model's has {units}",
                    path.display()
                );
            }
        }
    }
    Ok(())
}
