//! Flags shared by the subcommands that load a model and a dataset, and the
//! advice the command line adds to library errors.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sq_models::dataset::{Dataset, DatasetSpec, Preprocess, Split};
use sq_models::eval::preprocess_for;
use sq_models::{Arch, Model};

/// Which checkpoint to load and how.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Safetensors checkpoint with torchvision VGG names (features.N.*, classifier.N.*).
    #[arg(long)]
    pub model: PathBuf,
    /// Architecture (vgg11/13/16/19, optionally _bn); detected from the keys by default.
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
    pub dataset: String,
    /// Per-channel normalisation mean (comma-separated), used when the checkpoint's metadata has none.
    #[arg(long, value_delimiter = ',', requires = "std")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel normalisation std (comma-separated), used when the checkpoint's metadata has none.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,
}

impl DataArgs {
    /// Parses the dataset spec and loads one split.
    pub fn load(&self, split: Split) -> Result<(DatasetSpec, Dataset)> {
        let spec: DatasetSpec = self.dataset.parse()?;
        let data = spec.load(split).with_context(|| format!("loading {spec} ({split} split)"))?;
        Ok((spec, data))
    }

    /// The preprocessing `model` expects for `data`: from the checkpoint's
    /// metadata, else from `--mean` / `--std`.
    pub fn preprocess(&self, model: &Model, data: &Dataset) -> Result<Preprocess> {
        preprocess_for(model, data, self.mean.clone().zip(self.std.clone())).map_err(with_advice)
    }
}

/// The calibration images: the first N of the training split, in file order.
#[derive(clap::Args, Debug)]
pub struct CalibrationArgs {
    /// Calibration images: the first N of the training split, in file order.
    #[arg(long, default_value_t = 2000)]
    pub calib: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

impl CalibrationArgs {
    /// Loads the calibration images (the first `--calib` of the training
    /// split), `validation` images held out from its end, and the
    /// preprocessing `model` expects for them.
    pub fn load(
        &self,
        data: &DataArgs,
        model: &Model,
        validation: usize,
    ) -> Result<(DatasetSpec, Dataset, Dataset, Preprocess)> {
        let (spec, train) = data.load(Split::Train)?;
        anyhow::ensure!(
            self.calib + validation <= train.len(),
            "--calib {} and --val {validation} overlap: the training split of {spec} has only {} images",
            self.calib,
            train.len()
        );
        let calib = train.slice(0..self.calib);
        let val = train.slice(train.len() - validation..train.len());
        let pre = data.preprocess(model, &calib)?;
        Ok((spec, calib, val, pre))
    }
}

/// A model error, with the flag that fixes it when there is one: library
/// errors say what is wrong, the command line says what to type.
fn with_advice(err: sq_models::Error) -> anyhow::Error {
    let advice = match &err {
        sq_models::Error::NoNormalization => Some("pass --mean and --std"),
        sq_models::Error::Layout { .. } => {
            Some("if the checkpoint's layer numbering is not torchvision's, pass --arch (e.g. --arch vgg16_bn)")
        }
        _ => None,
    };
    match advice {
        Some(advice) => anyhow::anyhow!("{err}\nhint: {advice}"),
        None => err.into(),
    }
}
