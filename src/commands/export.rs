//! `squeeze export`: write a checkpoint as an ONNX file for deployment.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use sq_data::{Preprocess, PreprocessError};
use sq_export::{Batch, ExportOptions, OPSET};
use sq_models::{ActShape, Model};

use sq_models::eval::recorded_geometry;

use super::model_args::{with_advice, ModelArgs};
use super::outputs::Plan;

/// Flags of `squeeze export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Output ONNX file. An existing file is kept unless --force is given; an input file is never
    /// overwritten.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Replace the output file if it already exists (never the input checkpoint).
    #[arg(long)]
    force: bool,
    /// Batch dimension of the input and output: a number of images, or `dynamic`.
    #[arg(long, default_value = "dynamic")]
    batch: Batch,
    /// Height x width of the images before padding (`28x28`, or `28` for a square); by default the
    /// checkpoint's recorded centre crop, else that of its `dataset` metadata (mnist, fashion-mnist: 28x28;
    /// cifar10: 32x32).
    #[arg(long, value_parser = parse_size)]
    image_size: Option<(usize, usize)>,
    /// Per-channel normalisation mean (comma-separated), for a checkpoint whose metadata has none.
    #[arg(long, value_delimiter = ',', requires = "std")]
    mean: Option<Vec<f32>>,
    /// Per-channel normalisation std (comma-separated), for a checkpoint whose metadata has none.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    std: Option<Vec<f32>>,
}

/// Runs `squeeze export`.
pub fn run(args: Args) -> Result<()> {
    let outputs = Plan::new(args.force).input("--model", &args.model.model).output("-o", &args.output).check()?;
    let model = args.model.load()?;
    let ActShape::Map { c, h, w } = model.input_shape() else {
        bail!("{}: the model's input is a vector of {}, not an image", args.model.model.display(), model.input_shape())
    };
    let preprocess = preprocessing(&model, &args, (h, w))?;
    let (pad, mean, std) = (preprocess.pad(), preprocess.mean().to_vec(), preprocess.std().to_vec());
    let geometry = match preprocess.geometry() {
        g if g.is_identity() => String::new(),
        g => format!("{g} (torchvision's Resize, CenterCrop), then "),
    };
    let options = ExportOptions { batch: args.batch, preprocess: Some(preprocess) };
    let onnx = sq_export::to_onnx(&model, &options)
        .with_context(|| format!("exporting {} to {}", args.model.model.display(), args.output.display()))?;
    outputs.write(&[("-o", &onnx)])?;

    let batch = match args.batch {
        Batch::Fixed(n) => n.to_string(),
        Batch::Dynamic => sq_export::BATCH_DIM.to_string(),
    };
    println!("wrote {} (ONNX opset {OPSET}, BatchNorm folded)", args.output.display());
    println!("input   `{}`: {batch} x {c} x {h} x {w} float32", sq_export::INPUT);
    println!("output  `{}`: {batch} x {}", sq_export::OUTPUT, model.output_shape());
    let list = |values: &[f32]| values.iter().map(f32::to_string).collect::<Vec<_>>().join(", ");
    println!(
        "feed    {geometry}(pixel / 255 - mean [{}]) / std [{}], then {pad} pixels of border on every side",
        list(&mean),
        list(&std)
    );
    Ok(())
}

/// The normalisation from the checkpoint's metadata (or `--mean`/`--std`)
/// and the padding from the image size to the model's input size `input_hw`.
fn preprocessing(model: &Model, args: &Args, input_hw: (usize, usize)) -> Result<Preprocess> {
    let path = args.model.model.display();
    let meta: HashMap<String, String> = model.metadata().clone().into_iter().collect();
    let given = args.mean.clone().zip(args.std.clone());
    let (mean, std) =
        sq_models::eval::normalization(model, given).map_err(with_advice).with_context(|| format!("{path}"))?;
    let geometry = recorded_geometry(model).with_context(|| format!("{path}"))?;
    let dataset = meta.get("dataset").map(String::as_str);
    if let (Some(_), Some((h, w))) = (args.image_size, geometry.crop) {
        bail!("{path}: --image-size would have no effect: the checkpoint records a centre crop of {h}x{w}, the images' size");
    }
    if let (None, Some(side), None) = (args.image_size, geometry.resize, geometry.crop) {
        bail!("{path}: the checkpoint records a resize to {side} without a crop, so the images' size depends on each image; pass --image-size");
    }
    let image_size = args.image_size.or(geometry.crop);
    let Some(image_hw) = image_size.or_else(|| dataset.and_then(dataset_image_size)) else {
        bail!(
            "{path}: the checkpoint's metadata names no dataset of known image size ({}); pass --image-size",
            dataset.unwrap_or("no `dataset` entry")
        )
    };
    let images = match (args.image_size, geometry.crop) {
        (Some(_), _) => "the images of --image-size".to_string(),
        (None, Some(_)) => "the images of its recorded center_crop".to_string(),
        (None, None) => format!("the images of its dataset `{}`", dataset.unwrap_or_default()),
    };
    sq_models::eval::check_padding(image_hw, input_hw, &images).with_context(|| format!("{path}"))?;
    Preprocess::new(mean, std, image_hw, input_hw).and_then(|pre| pre.with_geometry(geometry)).map_err(|e| {
        // Each error names what it comes from: the image size, or the normalisation.
        let source = match e {
            PreprocessError::InputTooSmall { .. } | PreprocessError::UnevenPadding { .. } => images,
            _ => "--mean/--std or the checkpoint's normalize_mean/normalize_std".to_string(),
        };
        anyhow::Error::new(e).context(format!("{path}: {source}"))
    })
}

/// Image size of the datasets squeeze reads, by the name a checkpoint's
/// `dataset` metadata gives them.
fn dataset_image_size(name: &str) -> Option<(usize, usize)> {
    match name {
        "mnist" | "fashion-mnist" => Some((28, 28)),
        "cifar10" => Some((32, 32)),
        _ => None,
    }
}

/// Parses `HxW` or `S` (a square).
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    let size = match s.split_once('x') {
        Some((h, w)) => parse(h).zip(parse(w)),
        None => parse(s).map(|n| (n, n)),
    };
    size.ok_or_else(|| format!("invalid image size `{s}`: expected HxW or a side, e.g. 28x28 or 28"))
}
