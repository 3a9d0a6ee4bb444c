//! Flags shared by the subcommands that load a model and a dataset, and the
//! advice the command line adds to library errors.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use sq_models::dataset::{Dataset, DatasetSpec, Preprocess, PreprocessError, Split};
use sq_models::eval::{preprocess_for, recorded_normalization};
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
}

impl ModelArgs {
    /// Loads the checkpoint.
    pub fn load(&self) -> Result<Model> {
        sq_models::checkpoint::load(&self.model, self.arch.as_ref()).map_err(with_advice)
    }
}

/// Which images to use and how to normalise them.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// `fashion-mnist` (the copy in data/), `fashion-mnist:DIR`, `mnist:DIR` or `cifar10:DIR`.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Per-channel normalisation mean (comma-separated), used when the checkpoint's metadata has none.
    #[arg(long, value_delimiter = ',', requires = "std")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel normalisation std (comma-separated), used when the checkpoint's metadata has none.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,
}

impl DataArgs {
    /// The parsed dataset spec; `--dataset` is required.
    pub fn spec(&self) -> Result<DatasetSpec> {
        let Some(dataset) = &self.dataset else { bail!("--dataset is required: name the images to use") };
        dataset.parse().with_context(|| format!("--dataset {dataset}"))
    }

    /// The flags given, for commands that read no images (they would have no effect).
    pub fn given(&self) -> Vec<&'static str> {
        given(&[("--dataset", self.dataset.is_some()), ("--mean", self.mean.is_some()), ("--std", self.std.is_some())])
    }

    /// Parses the dataset spec and loads one split.
    pub fn load(&self, split: Split) -> Result<(DatasetSpec, Dataset)> {
        let spec = self.spec()?;
        let data = spec.load(split).with_context(|| format!("loading {spec} ({split} split)"))?;
        Ok((spec, data))
    }

    /// The preprocessing `model` expects for `data`: from the checkpoint's
    /// metadata, else from `--mean` / `--std`.
    pub fn preprocess(&self, model: &Model, data: &Dataset) -> Result<Preprocess> {
        preprocess_for(model, data, self.mean.clone().zip(self.std.clone())).map_err(with_advice)
    }

    /// The preprocessing of a model and of the reference it is compared
    /// with: each its own metadata's normalisation, `--mean` / `--std` for
    /// whichever records none (given while both record one, they are an
    /// error: they would be ignored).
    pub fn preprocess_pair(
        &self,
        (model, reference): (&Model, &Model),
        data: &Dataset,
    ) -> Result<(Preprocess, Preprocess)> {
        let records = |m: &Model| recorded_normalization(m).map(|n| n.is_some()).map_err(with_advice);
        let given = self.mean.clone().zip(self.std.clone());
        let (own, reference_own) = (records(model)?, records(reference)?);
        if given.is_some() && own && reference_own {
            bail!("--mean/--std would have no effect: both --model and --against record their normalisation");
        }
        let for_model = if own { None } else { given.clone() };
        let for_reference = if reference_own { None } else { given };
        let pre = preprocess_for(model, data, for_model).map_err(with_advice)?;
        let reference_pre = preprocess_for(reference, data, for_reference).map_err(with_advice).context("--against")?;
        Ok((pre, reference_pre))
    }
}

/// The calibration images: the first N of the training split, in file order.
#[derive(clap::Args, Debug)]
pub struct CalibrationArgs {
    /// Calibration images: the first N of the training split, in file order.
    /// Every producer needs more samples (images x positions at its tap)
    /// than it has units; the command refuses fewer and says how many [default: 2000].
    #[arg(long, value_parser = positive)]
    calib: Option<usize>,
    /// Images per forward pass [default: 64].
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

    /// Images per forward pass.
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(64)
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
    /// split), `validation` images held out from its end, and the
    /// preprocessing `model` expects for them. `--calib` and `--val` beyond
    /// the split, or overlapping, are an error.
    pub fn load(
        &self,
        data: &DataArgs,
        model: &Model,
        validation: usize,
    ) -> Result<(DatasetSpec, Dataset, Dataset, Preprocess)> {
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
        let calib = train.slice(0..calib);
        let val = train.slice(train.len() - validation..train.len());
        let pre = data.preprocess(model, &calib)?;
        Ok((spec, calib, val, pre))
    }
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

/// The normalisation of `model`'s inputs: its metadata's, or `--mean` /
/// `--std` for a checkpoint that records none (both is an error: the flags
/// would be ignored).
pub fn normalization(model: &Model, mean: &Option<Vec<f32>>, std: &Option<Vec<f32>>) -> Result<(Vec<f32>, Vec<f32>)> {
    sq_models::eval::normalization(model, mean.clone().zip(std.clone())).map_err(with_advice)
}

/// A model error, with the flag that fixes it when there is one: library
/// errors say what is wrong, the command line says what to type.
fn with_advice(err: sq_models::Error) -> anyhow::Error {
    let advice = match &err {
        sq_models::Error::NoNormalization => Some("pass --mean and --std"),
        sq_models::Error::NormalizationTwice { .. } => Some("drop --mean and --std"),
        sq_models::Error::Preprocess(
            PreprocessError::ExtremeStats { .. }
            | PreprocessError::InvalidStats { .. }
            | PreprocessError::StatsLength { .. },
        ) => Some(
            "the normalisation comes from --mean/--std, or from the checkpoint's normalize_mean/normalize_std metadata",
        ),
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
