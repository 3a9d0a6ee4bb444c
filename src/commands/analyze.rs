//! `squeeze analyze`: how much independent information each layer carries.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sq_capture::{capture, Stats};
use sq_pipeline::{analyze, LayerReport};
use sq_report::plot::{line_chart_bytes, Axes, Format, Series};
use sq_report::progress;
use sq_select::Tau;

use super::model_args::{CalibrationArgs, DataArgs, Drawn, ModelArgs};
use super::outputs::Plan;

/// Flags of `squeeze analyze`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    calibration: CalibrationArgs,
    /// Retained-variance targets to report k(tau) for.
    #[arg(long, value_delimiter = ',', default_value = "0.9,0.99,0.999")]
    taus: Vec<Tau>,
    /// Write the numbers as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the explained-variance curves to this .svg or .png file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Save the captured statistics (safetensors; mergeable with others).
    #[arg(long)]
    save_stats: Option<PathBuf>,
    /// Analyse these saved statistics (merged, e.g. shards captured
    /// elsewhere) instead of capturing.
    #[arg(long, num_args = 1.., conflicts_with = "save_stats")]
    stats: Vec<PathBuf>,
    /// Replace output files (--json, --plot, --save-stats) that already
    /// exist. Without it they are kept and the command fails before any
    /// work; an input file is never overwritten. All outputs are written
    /// together or not at all.
    #[arg(long)]
    force: bool,
}

/// Runs `squeeze analyze`.
pub fn run(args: Args) -> Result<()> {
    if let Some((_, tau)) = args.taus.iter().enumerate().find(|(i, t)| args.taus[..*i].contains(t)) {
        bail!("--taus lists {tau} twice; give each target once");
    }
    if !args.stats.is_empty() {
        let ignored = [args.data.given(), args.calibration.capture_flags_given()].concat();
        if !ignored.is_empty() {
            bail!(
                "{} would have no effect with --stats: the statistics are read, not captured; drop {}",
                ignored.join(", "),
                if ignored.len() == 1 { "it" } else { "them" }
            );
        }
    }
    let mut plan = Plan::new(args.force);
    plan.input("--model", &args.model.model).inputs("--stats", &args.stats);
    if args.stats.is_empty() {
        plan.inputs_if_present("--dataset", args.data.spec()?.candidate_files());
    }
    for (role, path) in [("--json", &args.json), ("--plot", &args.plot), ("--save-stats", &args.save_stats)] {
        if let Some(path) = path {
            plan.output(role, path);
        }
    }
    let outputs = plan.check()?;
    if let Some(path) = &args.plot {
        Format::of(path).with_context(|| format!("--plot {}", path.display()))?;
    }

    let stats = if args.stats.is_empty() {
        capture_stats(&args)?
    } else {
        let stats = merge_files(&args.stats)?;
        let model = args.model.load()?;
        stats.check_model(&model).with_context(|| {
            format!("--stats {} against --model {}", display_list(&args.stats), args.model.model.display())
        })?;
        args.calibration.check_stats(&stats)?;
        stats
    };
    let reports = analyze(&stats, &args.taus)?;
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(path) = &args.save_stats {
        files.push(("--save-stats", stats.to_bytes(path)?));
    }
    if let Some(_path) = &args.json {
        let layers: Vec<_> = reports.iter().map(|r| json!(r)).collect();
        let doc = json!({ "model": args.model.model, "taus": args.taus, "layers": layers });
        files.push(("--json", serde_json::to_string_pretty(&doc)?.into_bytes()));
    }
    if let Some(path) = &args.plot {
        files.push(("--plot", plot_explained_variance(&reports, path)?));
    }
    outputs.write(&files.iter().map(|(role, bytes)| (*role, bytes.as_slice())).collect::<Vec<_>>())?;
    print_table(&reports, &args.taus);
    Ok(())
}

fn capture_stats(args: &Args) -> Result<Stats> {
    let model = args.model.load()?;
    let Drawn { calib: data, pre, .. } = args.calibration.load(&args.data, &model, 0)?;
    let bar = progress::bar(data.len(), "capturing", "images");
    let stats =
        capture(&model, pre.batches(&data, args.calibration.batch(&model)), |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(stats)
}

fn merge_files(paths: &[PathBuf]) -> Result<Stats> {
    let mut merged: Option<Stats> = None;
    for (i, path) in paths.iter().enumerate() {
        let stats = Stats::load(path)?;
        match merged.as_mut() {
            None => merged = Some(stats),
            Some(m) => m
                .merge(&stats)
                .with_context(|| format!("merging --stats {} into {}", path.display(), display_list(&paths[..i])))?,
        }
    }
    merged.context("no statistics files given")
}

fn display_list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn print_table(reports: &[LayerReport], taus: &[Tau]) {
    let mut header = format!("{:<14} {:>6} {:>10}", "producer", "n", "samples");
    for t in taus {
        header += &format!(" {:>14}", format!("k({t})  k/n"));
    }
    header += &format!(" {:>9} {:>5}", "1st comp", "dead");
    println!("{header}");
    for r in reports {
        let mut line = format!("{:<14} {:>6} {:>10}", r.name, r.width, r.samples);
        for t in taus {
            let k = r.k[&t.to_string()];
            line += &format!(" {:>14}", format!("{k:>5} {:>6.3}", k as f64 / r.width as f64));
        }
        line += &format!(" {:>8.1}% {:>5}", 100.0 * r.first_component_share, r.dead);
        println!("{line}");
    }
}

/// The cumulative explained-variance curves of all producers on one chart:
/// x = fraction of the layer's units (principal components kept), y = share
/// of the variance retained.
fn plot_explained_variance(reports: &[LayerReport], path: &Path) -> Result<Vec<u8>> {
    let series = reports
        .iter()
        .map(|r| {
            let n = r.explained.len().max(1) as f64;
            let mut points = vec![(0.0, 0.0)];
            points.extend(r.explained.iter().enumerate().map(|(i, &y)| ((i + 1) as f64 / n, y)));
            Series { label: format!("{} (n={})", r.name, r.width), points }
        })
        .collect::<Vec<_>>();
    let y_min = reports.iter().filter_map(|r| r.explained.first().copied()).fold(1.0f64, f64::min).clamp(0.0, 0.9);
    let axes = Axes {
        title: "Cumulative explained variance per layer".into(),
        x_label: "fraction of principal components (k / n)".into(),
        y_label: "variance retained".into(),
        x_range: (0.0, 1.0),
        y_range: ((y_min * 10.0).floor() / 10.0, 1.0),
    };
    Ok(line_chart_bytes(&axes, &series, path)?)
}
