//! What an exported file says about its input, in the ONNX `metadata_props`.
//!
//! A deployed model is only right when it is fed exactly as in training, so
//! the file carries its preprocessing next to the weights. Every entry of
//! the checkpoint's own metadata is copied (`dataset`, `test_accuracy`,
//! `squeeze_settings`, ...), then the keys below are set:
//!
//! | key | example | meaning |
//! |---|---|---|
//! | [`ARCH`] | `vgg16_bn` | architecture of the exported model, BatchNorm before folding |
//! | [`NORMALIZE_MEAN`] | `0.286` | per-channel (or single) mean subtracted from `p / 255` |
//! | [`NORMALIZE_STD`] | `0.353` | per-channel (or single) std divided by |
//! | [`PAD`] | `2` | pixels added on every side, after normalising |
//! | [`PAD_VALUE`] | `-0.81019825` | the border's value per channel: a normalised black pixel |
//! | [`IMAGE_SIZE`] | `28x28` | height x width of the images before padding (after any resize and crop) |
//! | `resize`, `center_crop` | `256`, `224x224` | torchvision's `Resize` and `CenterCrop` before normalising, when used |
//! | [`PREPROCESSING`] | | the recipe in words |
//!
//! The normalisation keys are the checkpoint's own, in the same format
//! (comma-separated numbers), so `sq_data::Preprocess::from_metadata`
//! reads them back. Without a [`Preprocess`] only [`ARCH`] is set and the
//! checkpoint's entries are copied as they are.

use std::collections::BTreeMap;

use sq_data::Preprocess;
use sq_models::{ActShape, Model};

use crate::error::{Error, Result};

/// Architecture name, as `sq_models::Model::arch_name` writes it.
pub const ARCH: &str = "arch";
/// Per-channel normalisation mean (the checkpoint's key).
pub const NORMALIZE_MEAN: &str = "normalize_mean";
/// Per-channel normalisation std (the checkpoint's key).
pub const NORMALIZE_STD: &str = "normalize_std";
/// Pixels of border on every side.
pub const PAD: &str = "pad";
/// Value of the border per channel.
pub const PAD_VALUE: &str = "pad_value";
/// `HxW` of the images before padding.
pub const IMAGE_SIZE: &str = "image_size";
/// The preprocessing as one sentence.
pub const PREPROCESSING: &str = "preprocessing";

/// The metadata of the export of `model` fed through `preprocess`.
pub(crate) fn properties(model: &Model, preprocess: Option<&Preprocess>) -> Result<BTreeMap<String, String>> {
    let mut props = model.metadata().clone();
    props.insert(ARCH.into(), model.arch_name());
    let Some(pre) = preprocess else {
        return Ok(props);
    };
    let ActShape::Map { c, h, w } = model.input_shape() else {
        return Err(Error::UnsupportedModel { reason: format!("its input is a vector of {}", model.input_shape()) });
    };
    let misfit = |reason: String| Error::Preprocess { input: model.input_shape().to_string(), reason };
    for (what, values) in [("means", pre.mean()), ("stds", pre.std())] {
        if values.len() != 1 && values.len() != c {
            return Err(misfit(format!("{} {what} for {c} channels", values.len())));
        }
    }
    let pad = pre.pad();
    if 2 * pad >= h || 2 * pad >= w {
        return Err(misfit(format!("a border of {pad} pixels leaves no image")));
    }
    let (image_h, image_w) = (h - 2 * pad, w - 2 * pad);
    let channels = pre.mean().len().max(pre.std().len());
    let at = |values: &[f32], i: usize| values[if values.len() == 1 { 0 } else { i }];
    // `(0 / 255 - mean) / std` in f32, bit for bit the border `Preprocess` writes.
    let black: Vec<f32> = (0..channels).map(|i| (0.0 - at(pre.mean(), i)) / at(pre.std(), i)).collect();

    props.insert(NORMALIZE_MEAN.into(), list(pre.mean()));
    props.insert(NORMALIZE_STD.into(), list(pre.std()));
    props.insert(PAD.into(), pad.to_string());
    props.insert(PAD_VALUE.into(), list(&black));
    props.insert(IMAGE_SIZE.into(), format!("{image_h}x{image_w}"));
    props.extend(pre.geometry().metadata());
    let geometry = match pre.geometry() {
        g if g.is_identity() => String::new(),
        g => format!("{g} (torchvision's Resize and CenterCrop on 8-bit pixels), then "),
    };
    props.insert(
        PREPROCESSING.into(),
        format!(
            "uint8 pixels p: {geometry}{image_h}x{image_w} images: x = (p / 255 - {NORMALIZE_MEAN}) / {NORMALIZE_STD} per \
             channel, then {pad} pixels of {PAD_VALUE} on every side ({image_h}x{image_w} -> {h}x{w}); \
             input `input` is N x {c} x {h} x {w} float32"
        ),
    );
    Ok(props)
}

/// Comma-separated values, each printed so that it parses back exactly.
fn list(values: &[f32]) -> String {
    values.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
}
