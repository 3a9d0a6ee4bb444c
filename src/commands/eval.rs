//! `squeeze eval`: accuracy, size, FLOPs and throughput of a checkpoint.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use sq_data::Split;
use sq_models::eval::{evaluate, fidelity};
use sq_report::progress;

use super::model_args::{positive, unreadable_json, DataArgs, ModelArgs};
use super::outputs::Plan;

/// Flags of `squeeze eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Which split to evaluate on.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Skip the first N images, before --limit. The test split is in file order (sorted paths for a
    /// folder); the training split in the order compress draws it (a seeded shuffle for a folder). With --split train, a slice that no choice
    /// saw: calibration takes the first --calib images, a global budget's validation the last --val.
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Evaluate only the first N images (after --skip, in the same order).
    #[arg(long, value_parser = positive)]
    limit: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    batch: usize,
    /// Also compare with a reference checkpoint (the original of a squeezed model) on the same images:
    /// the share of images both predict alike, and the mean KL divergence of their outputs.
    #[arg(long, value_name = "REFERENCE")]
    against: Option<PathBuf>,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `squeeze eval`.
pub fn run(args: Args) -> Result<()> {
    Plan::new(false)
        .input("--model", &args.model.model)
        .input_opt("--against", args.against.as_deref())
        .inputs_if_present("--dataset", args.data.spec()?.candidate_files())
        .check()?;
    let (model, reference) = match &args.against {
        Some(path) => args.model.load_pair(path).map(|(model, reference)| (model, Some(reference)))?,
        None => (args.model.load()?, None),
    };
    let (spec, mut data) = args.data.load(args.split)?;
    if args.split == Split::Train {
        // As compress draws it, so that --skip passes over exactly its calibration images.
        data = data.in_order(spec.draw_order());
    }
    // Unlabelled images measure only the agreement with a reference.
    let labelled = data.labels().is_some();
    anyhow::ensure!(
        labelled || args.against.is_some(),
        "{spec} has no labels: eval measures accuracy, which needs a labelled dataset (folder:DIR, one sub-folder per \
         class); with --against REFERENCE it measures agreement with the reference alone"
    );
    if args.skip > 0 {
        anyhow::ensure!(
            args.skip < data.len(),
            "--skip {}: the {} split of {spec} has only {} images",
            args.skip,
            args.split,
            data.len()
        );
        data = data.slice(args.skip..data.len());
    }
    if let Some(limit) = args.limit {
        anyhow::ensure!(
            limit <= data.len(),
            "--limit {limit}: only {} images of the {} split of {spec} are left{}",
            data.len(),
            args.split,
            if args.skip > 0 { format!(" after --skip {}", args.skip) } else { String::new() }
        );
    }
    let (readable, skipped) = args.data.first(&data, 0..data.len(), args.limit.unwrap_or(data.len()));
    if readable.len() < data.len() {
        // A copy only when images are left out: the whole split stays as loaded.
        data = data.select(&readable);
    }
    let (pre, reference_pre) = match &reference {
        Some(reference) => {
            let (pre, reference_pre) = args.data.preprocess_pair((&model, reference), &data)?;
            (pre, Some(reference_pre))
        }
        None => (args.data.preprocess(&model, &data)?, None),
    };
    // The comparison first (its output sizes are checked before any image): a reference that does
    // not run fails before the long evaluation.
    let fidelity = match (&reference, &reference_pre, &args.against) {
        (Some(reference), Some(reference_pre), Some(path)) => {
            let bar = progress::bar(data.len(), "comparing", "images");
            let pres = (&pre, reference_pre);
            let f = fidelity(&model, reference, &data, pres, args.batch, |done| bar.set_position(done as u64))
                .with_context(|| format!("comparing with --against {}", path.display()))?;
            bar.finish_and_clear();
            Some(f)
        }
        _ => None,
    };

    let result = if labelled {
        let bar = progress::bar(data.len(), "evaluating", "images");
        let result = evaluate(&model, &data, &pre, args.batch, |done| bar.set_position(done as u64))?;
        bar.finish_and_clear();
        Some(result)
    } else {
        None
    };
    let arch = model.arch_name();
    if args.json {
        let out = json!({
            "model": args.model.model,
            "arch": arch,
            "dataset": spec.to_string(),
            "split": args.split.to_string(),
            "skip": args.skip,
            "top1": result.as_ref().map(|r| r.top1()),
            "top5": result.as_ref().map(|r| r.top5()),
            "correct": result.as_ref().map(|r| r.correct),
            "correct_top5": result.as_ref().map(|r| r.correct_top5),
            "images": data.len(),
            "params": model.param_count(),
            "flops": model.macs(),
            "batch": args.batch,
            "seconds": result.as_ref().map(|r| r.seconds),
            "images_per_sec": result.as_ref().map(|r| r.images_per_sec()),
            "against": args.against,
            "agreement": fidelity.as_ref().map(|f| f.agreement),
            "mean_kl": fidelity.as_ref().map(|f| f.mean_kl),
            "unreadable_skipped": unreadable_json(&skipped),
        });
        println!("{out}");
    } else {
        println!("model     {} ({arch}, input {})", args.model.model.display(), model.input_shape());
        println!("dataset   {spec} {} split, {} images", args.split, data.len());
        if !skipped.is_empty() {
            let files = if skipped.len() == 1 { "file" } else { "files" };
            println!("skipped   {} {files} that do not decode (listed on stderr)", skipped.len());
        }
        if let Some(result) = &result {
            println!("top-1     {:.2}% ({}/{})", 100.0 * result.top1(), result.correct, result.images);
            println!("top-5     {:.2}% ({}/{})", 100.0 * result.top5(), result.correct_top5, result.images);
        }
        println!("params    {}", model.param_count());
        println!("FLOPs     {:.1} M multiply-accumulates per image", model.macs() as f64 / 1e6);
        if let Some(result) = &result {
            println!("speed     {:.1} images/s at batch {}", result.images_per_sec(), args.batch);
        }
        if let (Some(f), Some(path)) = (&fidelity, &args.against) {
            println!(
                "against   {}: same prediction on {:.2}%, mean KL {:.5} nats",
                path.display(),
                100.0 * f.agreement,
                f.mean_kl
            );
        }
    }
    Ok(())
}
