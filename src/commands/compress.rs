//! `squeeze compress`: squeeze a checkpoint in one shot and write the smaller one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sq_models::checkpoint::{to_bytes, StorageDtype};
use sq_models::Model;
use sq_pipeline::{compress, Mode, Outcome, Settings, Target, Widths};
use sq_report::progress;
use sq_rewrite::Compensation;
use sq_select::{Budget, Strategy, Tau};

use super::model_args::{CalibrationArgs, DataArgs, ModelArgs};
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
    /// Retained-variance target: each producer keeps k(tau) units.
    #[arg(long, default_value = "0.99")]
    tau: Tau,
    /// Which units to keep: eliminate, qr, l1 or random[:SEED].
    #[arg(long = "select", default_value = "eliminate")]
    strategy: Strategy,
    /// How the consumer makes up for removed units: lstsq or none.
    #[arg(long = "compensate", default_value = "lstsq")]
    compensation: Compensation,
    /// sequential (statistics on the squeezed prefix) or one-pass.
    #[arg(long, default_value = "sequential")]
    mode: Mode,
    /// What the compensation reconstructs in sequential mode: the
    /// consumer's input in the original model, or its current input.
    #[arg(long, default_value = "current")]
    target: Target,
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
    let model = args.model.load()?;
    let widths = match &args.widths {
        Some(path) => {
            let widths = load_widths(path)?;
            sq_pipeline::check_widths(&model, &widths).with_context(|| format!("--widths {}", path.display()))?;
            Widths::PerLayer(widths)
        }
        None => Widths::Uniform(Budget::Tau(args.tau)),
    };
    let (spec, calib, pre) = args.calibration.load(&args.data, &model)?;
    let settings = Settings {
        widths,
        strategy: args.strategy,
        compensation: args.compensation,
        mode: args.mode,
        target: args.target,
        batch: args.calibration.batch,
    };
    let bar = progress::bar(model.links().len(), "squeezing", "layers");
    let outcome = compress(&model, &calib, &pre, &settings, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let mut squeezed = outcome.model.clone();
    let meta = squeezed.metadata_mut();
    // The recorded accuracy belonged to the original weights.
    meta.remove("test_accuracy");
    meta.insert("squeezed_from".into(), args.model.model.display().to_string());
    meta.insert("squeeze_settings".into(), serde_json::to_string(&settings)?);
    let dtype = if args.f16 { StorageDtype::F16 } else { StorageDtype::F32 };
    let checkpoint = to_bytes(&squeezed, dtype, &args.output)?;
    let summary = summary(&model, &outcome, &settings, &format!("{spec}"), calib.len(), &args.output, &checkpoint)?;
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

/// The manifest: settings, sizes before/after, per-layer outcome and the replayable selection.
fn summary(
    model: &Model,
    outcome: &Outcome,
    settings: &Settings,
    dataset: &str,
    images: usize,
    output: &Path,
    checkpoint: &[u8],
) -> Result<Value> {
    let bytes = checkpoint.len();
    let (p0, p1) = (model.param_count(), outcome.model.param_count());
    let (f0, f1) = (model.macs(), outcome.model.macs());
    Ok(json!({
        "output": output,
        "bytes": bytes,
        "settings": settings,
        "calibration": { "dataset": dataset, "split": "train", "images": images },
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

/// Per-producer widths from a manifest (`selection.layers[].kept`) or a plain `{name: width}` object.
fn load_widths(path: &Path) -> Result<BTreeMap<String, usize>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let widths = if let Some(layers) = value.pointer("/selection/layers").and_then(Value::as_array) {
        layers
            .iter()
            .map(|l| Some((l.get("name")?.as_str()?.to_string(), l.get("kept")?.as_array()?.len())))
            .collect::<Option<BTreeMap<_, _>>>()
    } else {
        value.as_object().and_then(|o| o.iter().map(|(k, v)| Some((k.clone(), v.as_u64()? as usize))).collect())
    };
    match widths {
        Some(w) if !w.is_empty() => Ok(w),
        _ => bail!("{}: expected a squeeze manifest or an object of layer widths", path.display()),
    }
}
