//! Flags shared by the subcommands that load a model and a dataset, and the
//! advice the command line adds to library errors.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sq_data::{Dataset, DatasetSpec, Geometry, Preprocess, PreprocessError, Split, Unreadable};
use sq_models::eval::{preprocess_for, recorded_geometry, recorded_normalization};
use sq_models::{Arch, Model};

/// Which checkpoint to load and how.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Safetensors checkpoint with torchvision names: a VGG (features.N.*, classifier.N.*) or a ResNet
    /// (conv1.*, layerN.M.*, fc.*).
    #[arg(long)]
    pub model: PathBuf,
    /// VGG architecture (vgg11/13/16/19, optionally _bn); detected from the keys by default (a ResNet's
    /// always is).
    #[arg(long)]
    pub arch: Option<Arch>,
    /// The model's input size in pixels, `224` or `224x192`, for a checkpoint whose metadata records
    /// none (`input`): a ResNet reads any size (by default 224, or 32 with a CIFAR-style stem); a
    /// VGG's classifier fixes its size, inferred from the classifier unless its pools floor odd sizes.
    #[arg(long, value_name = "H[xW]", value_parser = sq_data::parse_hw)]
    pub input_size: Option<(usize, usize)>,
}

impl ModelArgs {
    /// Loads the checkpoint, at `--input-size` when given.
    pub fn load(&self) -> Result<Model> {
        let model = sq_models::checkpoint::load(&self.model, self.arch.as_ref()).map_err(with_advice)?;
        let Some(hw) = self.input_size else { return Ok(model) };
        if let Some(recorded) = model.metadata().get("input") {
            bail!("--input-size would have no effect: {} records its input size ({recorded})", self.model.display());
        }
        with_input_size(model, hw, &self.model)
    }

    /// Loads the checkpoint and the `reference` it is compared with (whose
    /// layout is read off its own keys: `--arch` describes `--model`).
    /// `--input-size` applies to each that records no input size, and is an
    /// error when both record one.
    pub fn load_pair(&self, reference: &Path) -> Result<(Model, Model)> {
        let model = sq_models::checkpoint::load(&self.model, self.arch.as_ref()).map_err(with_advice)?;
        let against = sq_models::checkpoint::load(reference, None)
            .map_err(with_advice)
            .with_context(|| format!("--against {}", reference.display()))?;
        let Some(hw) = self.input_size else { return Ok((model, against)) };
        let records = |m: &Model| m.metadata().contains_key("input");
        if records(&model) && records(&against) {
            bail!("--input-size would have no effect: both --model and --against record their input size");
        }
        let sized = |m: Model, path: &Path| if records(&m) { Ok(m) } else { with_input_size(m, hw, path) };
        Ok((sized(model, &self.model)?, sized(against, reference)?))
    }
}

/// `model` (loaded from `path`) on inputs of `hw` pixels (`--input-size`).
fn with_input_size(model: Model, (h, w): (usize, usize), path: &Path) -> Result<Model> {
    let read_as = model.input_shape();
    model.with_input_size((h, w)).map_err(anyhow::Error::from).with_context(|| {
        format!("--input-size {h}x{w} does not fit {} (read as taking {read_as} inputs)", path.display())
    })
}

/// Which images to use and how to preprocess them.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// `fashion-mnist` (the copy in data/), `fashion-mnist:DIR`, `mnist:DIR`, `cifar10:DIR`,
    /// `folder:DIR` (torchvision ImageFolder: DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg) or `images:DIR`
    /// (unlabelled JPEG/PNG files: calibration and validation only).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Per-channel normalisation mean (comma-separated), used when the checkpoint's metadata has none.
    #[arg(long, value_delimiter = ',', requires = "std")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel normalisation std (comma-separated), used when the checkpoint's metadata has none.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,
    /// Resize every image's shorter side to S pixels first (bilinear, antialiased: torchvision's
    /// Resize(S) on a PIL image), when the checkpoint's metadata records no resize.
    #[arg(long, value_name = "S")]
    pub resize: Option<usize>,
    /// Keep the centre H x W pixels (torchvision's CenterCrop) after any resize: `224` or `224x192`.
    #[arg(long, value_name = "H[xW]", value_parser = sq_data::parse_hw)]
    pub crop: Option<(usize, usize)>,
    /// A named preprocessing: `imagenet` is --resize 256 --crop 224 with ImageNet's mean and std.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["mean", "std", "resize", "crop"])]
    pub preprocess: Option<Preset>,
    /// Pass over image files that do not decode (empty, truncated, not JPEG or PNG), each listed on
    /// stderr, instead of stopping at the first: calibration and validation take the next readable
    /// files in the draw order, eval counts only readable ones. Without it such a file is an error.
    #[arg(long)]
    pub skip_unreadable: bool,
}

/// Named preprocessings (`--preprocess`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// torchvision's ImageNet evaluation transform: Resize(256), CenterCrop(224),
    /// Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).
    Imagenet,
}

impl DataArgs {
    /// The parsed dataset spec; `--dataset` is required.
    pub fn spec(&self) -> Result<DatasetSpec> {
        let Some(dataset) = &self.dataset else { bail!("--dataset is required: name the images to use") };
        dataset.parse().with_context(|| format!("--dataset {dataset}"))
    }

    /// The flags given, for commands that read no images (they would have no effect).
    pub fn given(&self) -> Vec<&'static str> {
        given(&[
            ("--dataset", self.dataset.is_some()),
            ("--mean", self.mean.is_some()),
            ("--std", self.std.is_some()),
            ("--resize", self.resize.is_some()),
            ("--crop", self.crop.is_some()),
            ("--preprocess", self.preprocess.is_some()),
            ("--skip-unreadable", self.skip_unreadable),
        ])
    }

    /// The normalisation given on the command line (`--mean`/`--std` or a
    /// `--preprocess` preset), if any.
    pub fn given_normalization(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        match self.preprocess {
            Some(Preset::Imagenet) => Some((vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])),
            None => self.mean.clone().zip(self.std.clone()),
        }
    }

    /// The resize and crop given on the command line (`--resize`/`--crop`
    /// or a `--preprocess` preset).
    pub fn given_geometry(&self) -> Geometry {
        match self.preprocess {
            Some(Preset::Imagenet) => Geometry { resize: Some(256), crop: Some((224, 224)) },
            None => Geometry { resize: self.resize, crop: self.crop },
        }
    }

    /// Parses the dataset spec and loads one split.
    pub fn load(&self, split: Split) -> Result<(DatasetSpec, Dataset)> {
        let spec = self.spec()?;
        if self.skip_unreadable && spec.is_stored() {
            bail!("--skip-unreadable would have no effect: {spec} holds its images in memory, not in image files");
        }
        let data = spec.load(split).with_context(|| format!("loading {spec} ({split} split)"))?;
        Ok((spec, data))
    }

    /// The first `count` images of `candidates` (indices into `data`): with
    /// `--skip-unreadable`, the first `count` that decode, and the files
    /// passed over, each listed on stderr; else simply the first `count`.
    pub fn first(
        &self,
        data: &Dataset,
        candidates: impl Iterator<Item = usize>,
        count: usize,
    ) -> (Vec<usize>, Vec<Unreadable>) {
        if !self.skip_unreadable {
            return (candidates.take(count).collect(), Vec::new());
        }
        let (readable, skipped) = data.first_readable(candidates, count);
        for file in &skipped {
            eprintln!("skipped {file} (--skip-unreadable)");
        }
        (readable, skipped)
    }

    /// The preprocessing `model` expects for `data`: from the checkpoint's
    /// metadata, else from `--mean` / `--std`.
    pub fn preprocess(&self, model: &Model, data: &Dataset) -> Result<Preprocess> {
        preprocess_for(model, data, (self.given_normalization(), self.given_geometry())).map_err(with_advice)
    }

    /// The preprocessing of a model and of the reference it is compared
    /// with: each its own metadata's normalisation and geometry, the flags
    /// for whichever records none (given while both record one, they are an
    /// error: they would be ignored).
    pub fn preprocess_pair(
        &self,
        (model, reference): (&Model, &Model),
        data: &Dataset,
    ) -> Result<(Preprocess, Preprocess)> {
        let records = |m: &Model| recorded_normalization(m).map(|n| n.is_some()).map_err(with_advice);
        let shapes = |m: &Model| recorded_geometry(m).map(|g| !g.is_identity()).map_err(with_advice);
        let (given, given_geometry) = (self.given_normalization(), self.given_geometry());
        let (own, reference_own) = (records(model)?, records(reference)?);
        if given.is_some() && own && reference_own {
            bail!("--mean/--std would have no effect: both --model and --against record their normalisation");
        }
        let (own_geometry, reference_own_geometry) = (shapes(model)?, shapes(reference)?);
        if !given_geometry.is_identity() && own_geometry && reference_own_geometry {
            bail!("--resize/--crop would have no effect: both --model and --against record their resize and crop");
        }
        let pick = |own: bool| if own { None } else { given.clone() };
        let pick_geometry = |own: bool| if own { Geometry::default() } else { given_geometry };
        let pre = preprocess_for(model, data, (pick(own), pick_geometry(own_geometry))).map_err(with_advice)?;
        let reference_pre =
            preprocess_for(reference, data, (pick(reference_own), pick_geometry(reference_own_geometry)))
                .map_err(with_advice)
                .context("--against")?;
        Ok((pre, reference_pre))
    }
}

/// The calibration images: the first N of the training split, in its draw
/// order (file order for IDX and CIFAR-10, a seeded shuffle for folders).
#[derive(clap::Args, Debug)]
pub struct CalibrationArgs {
    /// Calibration images: the first N of the training split (in file order for IDX and CIFAR-10
    /// files, in a seeded shuffle for image folders, which are sorted by class).
    /// Every producer needs more samples (images x positions at its tap)
    /// than it has units; the command refuses fewer and says how many [default: 2000].
    #[arg(long, value_parser = positive)]
    calib: Option<usize>,
    /// Images per forward pass [default: 64, or fewer so that one activation of a batch stays within
    /// 256 MiB: 20 for VGG-16 at 224x224].
    #[arg(long, value_parser = positive)]
    batch: Option<usize>,
    /// Go on when the calibration set is too small for a full-rank
    /// covariance at some layer (a warning lists them): k(tau) and the
    /// retained variance of those layers are then meaningless.
    #[arg(long)]
    pub allow_rank_deficient: bool,
}

impl CalibrationArgs {
    /// The number of calibration images.
    pub fn calib(&self) -> usize {
        self.calib.unwrap_or(2000)
    }

    /// Images per forward pass through `model`: `--batch`, else
    /// [`sq_pipeline::capture_batch`].
    pub fn batch(&self, model: &Model) -> usize {
        self.batch.unwrap_or_else(|| sq_pipeline::capture_batch(model))
    }

    /// The flags given that only matter when images are captured.
    pub fn capture_flags_given(&self) -> Vec<&'static str> {
        given(&[("--calib", self.calib.is_some()), ("--batch", self.batch.is_some())])
    }

    /// Checks that `--calib` images give every producer of `model` enough
    /// samples, before anything is loaded or captured.
    pub fn check_samples(&self, model: &Model) -> Result<()> {
        self.rank_result(sq_pipeline::check_samples(model, self.calib()))
    }

    /// The same check on statistics loaded from files.
    pub fn check_stats(&self, stats: &sq_capture::Stats) -> Result<()> {
        self.rank_result(sq_pipeline::check_stats_samples(stats))
    }

    fn rank_result(&self, result: sq_pipeline::Result<()>) -> Result<()> {
        match result {
            Err(sq_pipeline::Error::TooFewSamples { layers, images_needed }) => {
                let err = sq_pipeline::Error::TooFewSamples { layers, images_needed };
                if self.allow_rank_deficient {
                    eprintln!("warning: {err} (going on: --allow-rank-deficient)");
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{err}\nhint: pass --calib {images_needed} or more, or --allow-rank-deficient to go on anyway"
                    ))
                }
            }
            other => Ok(other?),
        }
    }

    /// Loads the calibration images (the first `--calib` of the training
    /// split in its draw order), `validation` images held out from its end, and the
    /// preprocessing `model` expects for them. `--calib` and `--val` beyond
    /// the split, or overlapping, are an error; so are, with
    /// `--skip-unreadable`, too few readable images for both.
    pub fn load(&self, data: &DataArgs, model: &Model, validation: usize) -> Result<Drawn> {
        self.check_samples(model)?;
        let (spec, train) = data.load(Split::Train)?;
        let calib = self.calib();
        if calib > train.len() {
            bail!("--calib {calib} is more than the {} images of {spec}'s training split", train.len());
        }
        if validation > train.len() {
            bail!("--val {validation} is more than the {} images of {spec}'s training split", train.len());
        }
        if calib + validation > train.len() {
            bail!(
                "--calib {calib} and --val {validation} overlap: the training split of {spec} has only {} images",
                train.len()
            );
        }
        let train = train.in_order(spec.draw_order());
        let (calib_indices, mut skipped) = data.first(&train, 0..train.len(), calib);
        let (mut val_indices, val_skipped) = data.first(&train, (0..train.len()).rev(), validation);
        val_indices.reverse();
        for file in val_skipped {
            if !skipped.contains(&file) {
                skipped.push(file);
            }
        }
        let overlap = matches!((calib_indices.last(), val_indices.first()), (Some(c), Some(v)) if c >= v);
        if calib_indices.len() < calib || val_indices.len() < validation || overlap {
            bail!(
                "--calib {calib} and --val {validation} need {} readable images of the {} in the training split of \
                 {spec}, and {} of them do not decode (listed above)",
                calib + validation,
                train.len(),
                skipped.len()
            );
        }
        let (calib, val) = (train.select(&calib_indices), train.select(&val_indices));
        let pre = data.preprocess(model, &calib)?;
        Ok(Drawn { spec, calib, val, pre, skipped })
    }
}

/// The training images a run looks at ([`CalibrationArgs::load`]).
pub struct Drawn {
    /// The dataset they come from.
    pub spec: DatasetSpec,
    /// The calibration images, from the start of the draw order.
    pub calib: Dataset,
    /// The validation images, from its end.
    pub val: Dataset,
    /// The preprocessing the model expects for them.
    pub pre: Preprocess,
    /// Files passed over because they do not decode (`--skip-unreadable`).
    pub skipped: Vec<Unreadable>,
}

/// Files passed over by `--skip-unreadable`, as `{"file", "reason"}` objects.
pub fn unreadable_json(skipped: &[Unreadable]) -> serde_json::Value {
    skipped.iter().map(|file| serde_json::json!({ "file": file.image, "reason": file.reason })).collect()
}

/// The flags of `flags` (flag, whether it was given) that were given.
pub fn given(flags: &[(&'static str, bool)]) -> Vec<&'static str> {
    flags.iter().filter(|(_, given)| *given).map(|(flag, _)| *flag).collect()
}

/// A count of at least 1 (`--calib`, `--batch`, `--limit`).
pub fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// What to type when images and the model's input differ in size.
const RESIZE_ADVICE: &str = "bring the images to the model's input size with --resize and --crop \
     (e.g. --resize 256 --crop 224) or --preprocess imagenet, or give a model that reads any size (a ResNet) \
     its --input-size";

/// A model error, with the flag that fixes it when there is one: library
/// errors say what is wrong, the command line says what to type.
pub fn with_advice(err: sq_models::Error) -> anyhow::Error {
    let advice = match &err {
        sq_models::Error::NoNormalization => Some("pass --mean and --std"),
        sq_models::Error::NormalizationTwice { .. } => {
            Some("drop --mean and --std; instead of --preprocess, pass its resize and crop (--resize 256 --crop 224)")
        }
        sq_models::Error::GeometryTwice { .. } => Some("drop --resize and --crop (or --preprocess)"),
        sq_models::Error::Preprocess(
            PreprocessError::ImageSize { .. }
            | PreprocessError::InputTooSmall { .. }
            | PreprocessError::UnevenPadding { .. },
        ) => Some(RESIZE_ADVICE),
        sq_models::Error::Preprocess(
            PreprocessError::ExtremeStats { .. }
            | PreprocessError::InvalidStats { .. }
            | PreprocessError::StatsLength { .. },
        ) => Some(
            "the normalisation comes from --mean/--std, or from the checkpoint's normalize_mean/normalize_std metadata",
        ),
        sq_models::Error::Mismatch { message } if message.contains("padding them") => Some(RESIZE_ADVICE),
        // Only a VGG's pools are read off its numbering (a ResNet's structure is in its keys): the
        // errors about gaps and about the classifier's input.
        sq_models::Error::Layout { message, .. }
            if message.contains("parameter-free layers") || message.contains("which is not the last conv's") =>
        {
            Some("if the checkpoint's layer numbering is not torchvision's, pass --arch (e.g. --arch vgg16_bn)")
        }
        _ => None,
    };
    match advice {
        Some(advice) => anyhow::anyhow!("{err}\nhint: {advice}"),
        None => err.into(),
    }
}
