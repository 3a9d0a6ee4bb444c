//! `squeeze analyze`: how much independent information each layer carries.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use sq_capture::{capture, Stats};
use squeeze::analysis::{analyze, tau_key, LayerReport};
use squeeze::output::write_atomic;

use super::model_args::{CalibrationArgs, DataArgs, ModelArgs};
use squeeze::progress;

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
    taus: Vec<f64>,
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
}

/// Runs `squeeze analyze`.
pub fn run(args: Args) -> Result<()> {
    for &tau in &args.taus {
        anyhow::ensure!(tau > 0.0 && tau <= 1.0, "--taus: {tau} is not in (0, 1]");
    }
    let stats = if args.stats.is_empty() { capture_stats(&args)? } else { merge_files(&args.stats)? };
    if let Some(path) = &args.save_stats {
        stats.save(path)?;
    }
    let reports = analyze(&stats, &args.taus)?;
    print_table(&reports, &args.taus);
    if let Some(path) = &args.json {
        let layers: Vec<_> = reports.iter().map(|r| json!(r)).collect();
        let doc = json!({ "model": args.model.model, "taus": args.taus, "layers": layers });
        write_atomic(path, serde_json::to_string_pretty(&doc)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        squeeze::plot::explained_variance(&reports, path)?;
    }
    Ok(())
}

fn capture_stats(args: &Args) -> Result<Stats> {
    let model = args.model.load()?;
    let (_, data, pre) = args.calibration.load(&args.data, &model)?;
    let bar = progress::bar(data.len(), "capturing", "images");
    let stats = capture(&model, &data, &pre, args.calibration.batch, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(stats)
}

fn merge_files(paths: &[PathBuf]) -> Result<Stats> {
    let mut merged: Option<Stats> = None;
    for path in paths {
        let stats = Stats::load(path)?;
        match merged.as_mut() {
            None => merged = Some(stats),
            Some(m) => m.merge(&stats).with_context(|| format!("merging {}", path.display()))?,
        }
    }
    merged.context("no statistics files given")
}

fn print_table(reports: &[LayerReport], taus: &[f64]) {
    let mut header = format!("{:<14} {:>6} {:>10}", "producer", "n", "samples");
    for &t in taus {
        header += &format!(" {:>14}", format!("k({t})  k/n"));
    }
    header += &format!(" {:>9} {:>5}", "1st comp", "dead");
    println!("{header}");
    for r in reports {
        let mut line = format!("{:<14} {:>6} {:>10}", r.name, r.width, r.samples);
        for &t in taus {
            let k = r.k[&tau_key(t)];
            line += &format!(" {:>14}", format!("{k:>5} {:>6.3}", k as f64 / r.width as f64));
        }
        line += &format!(" {:>8.1}% {:>5}", 100.0 * r.first_component_share, r.dead);
        println!("{line}");
    }
}
