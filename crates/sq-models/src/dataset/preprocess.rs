//! From stored pixels to model inputs.
//!
//! A model only reproduces its reported accuracy when it sees its inputs
//! exactly as in training. The project's checkpoints follow torchvision's
//! convention:
//!
//! 1. `x = p / 255` (`ToTensor`),
//! 2. `x = (x - mean[c]) / std[c]` (`Normalize`),
//! 3. zero-pad every side by `pad` pixels *after* normalising, so the border
//!    holds the value of a normalised black pixel, `(0 - mean[c]) / std[c]`
//!    (this is how 28x28 Fashion-MNIST images feed a 32x32 VGG).
//!
//! Each step is computed in `f32` and in that order, as torchvision does, so
//! that rounding agrees with training too. Since a pixel has only 256 values, the first two
//! steps are precomputed into a lookup table per channel.

use std::collections::HashMap;
use std::fmt;
use std::iter::repeat_n;
use std::ops::Range;

use candle_core::{Device, Tensor};
use thiserror::Error;

use super::Dataset;

/// Checkpoint metadata key holding the per-channel normalisation mean.
const MEAN_KEY: &str = "normalize_mean";
/// Checkpoint metadata key holding the per-channel normalisation std.
const STD_KEY: &str = "normalize_std";

/// Per-channel normalisation statistics as `(mean, std)`, as read by
/// [`Preprocess::from_metadata`] and taken by [`Preprocess::new`].
pub type MeanStd = (Vec<f32>, Vec<f32>);

/// Normalisation and padding of a dataset's images for one model.
///
/// `mean` and `std` each hold one value per channel, or a single value that
/// applies to every channel.
#[derive(Clone)]
pub struct Preprocess {
    mean: Vec<f32>,
    std: Vec<f32>,
    pad: usize,
    /// `lut[c][p]` is the normalised value of pixel `p` in channel `c`; a
    /// single table when both `mean` and `std` have one value.
    lut: Vec<[f32; 256]>,
}

impl Preprocess {
    /// Preprocessing that turns `image_hw` images into the model's
    /// `input_hw` inputs, padding them equally on every side.
    ///
    /// # Errors
    ///
    /// If the input is smaller than the image or cannot be reached by
    /// the same whole number of pixels on every side, and for the reasons of
    /// [`Preprocess::with_pad`].
    pub fn new(
        mean: Vec<f32>,
        std: Vec<f32>,
        image_hw: (usize, usize),
        input_hw: (usize, usize),
    ) -> Result<Self, PreprocessError> {
        let (Some(dh), Some(dw)) = (input_hw.0.checked_sub(image_hw.0), input_hw.1.checked_sub(image_hw.1)) else {
            return Err(PreprocessError::InputTooSmall { image: image_hw, input: input_hw });
        };
        if dh != dw || dh % 2 != 0 {
            return Err(PreprocessError::UnevenPadding { image: image_hw, input: input_hw });
        }
        Self::with_pad(mean, std, dh / 2)
    }

    /// Preprocessing with an explicit border of `pad` pixels.
    ///
    /// # Errors
    ///
    /// If `mean` or `std` is empty, if their lengths differ and neither
    /// is 1, or if a mean is not finite or a std not finite and positive.
    pub fn with_pad(mean: Vec<f32>, std: Vec<f32>, pad: usize) -> Result<Self, PreprocessError> {
        if mean.is_empty() || std.is_empty() || (mean.len() != std.len() && mean.len() != 1 && std.len() != 1) {
            return Err(PreprocessError::StatsLength { mean: mean.len(), std: std.len() });
        }
        let channels = mean.len().max(std.len());
        let at = |values: &[f32], c: usize| values[if values.len() == 1 { 0 } else { c }];
        let mut lut = Vec::with_capacity(channels);
        for channel in 0..channels {
            let (m, s) = (at(&mean, channel), at(&std, channel));
            if !m.is_finite() || !s.is_finite() || s <= 0.0 {
                return Err(PreprocessError::InvalidStats { channel, mean: m, std: s });
            }
            let largest = ((0.0 - m) / s).abs().max(((1.0 - m) / s).abs());
            if largest > MAX_NORMALIZED {
                return Err(PreprocessError::ExtremeStats { channel, mean: m, std: s, largest });
            }
            lut.push(std::array::from_fn(|p| (p as f32 / 255.0 - m) / s));
        }
        Ok(Self { mean, std, pad, lut })
    }

    /// Reads the normalisation a checkpoint was trained with from its
    /// safetensors metadata (`normalize_mean`, `normalize_std`), as
    /// `(mean, std)` ready for [`Preprocess::new`].
    ///
    /// Each value is a comma-separated list with one number per channel, or
    /// a single number for all channels; surrounding brackets, as Python
    /// prints a list, are accepted. `Ok(None)` if neither key is present.
    ///
    /// # Errors
    ///
    /// If only one of the keys is present, or a value does not parse.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Option<MeanStd>, PreprocessError> {
        match (meta.get(MEAN_KEY), meta.get(STD_KEY)) {
            (None, None) => Ok(None),
            (Some(mean), Some(std)) => Ok(Some((parse_values(MEAN_KEY, mean)?, parse_values(STD_KEY, std)?))),
            (Some(_), None) => Err(PreprocessError::MissingMetadata { key: STD_KEY }),
            (None, Some(_)) => Err(PreprocessError::MissingMetadata { key: MEAN_KEY }),
        }
    }

    /// The per-channel (or single) means subtracted after scaling to [0, 1].
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-channel (or single) standard deviations divided by.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Pixels of border added on every side.
    pub fn pad(&self) -> usize {
        self.pad
    }

    /// The images with indices in `range`, preprocessed into one `f32`
    /// tensor of shape `N x C x (H + 2 pad) x (W + 2 pad)` on the CPU.
    ///
    /// # Errors
    ///
    /// If `range` does not lie within the dataset or the dataset's
    /// channel count does not match the normalisation's.
    pub fn batch(&self, dataset: &Dataset, range: Range<usize>) -> Result<Tensor, PreprocessError> {
        let (channels, height, width) = dataset.image_shape();
        if range.start > range.end || range.end > dataset.len() {
            return Err(PreprocessError::OutOfRange { range, len: dataset.len() });
        }
        if self.lut.len() != 1 && self.lut.len() != channels {
            return Err(PreprocessError::ChannelMismatch { stats: self.lut.len(), channels });
        }
        let pad = self.pad;
        let (out_h, out_w) = (height + 2 * pad, width + 2 * pad);
        let plane = height * width;
        let mut out = Vec::with_capacity(range.len() * channels * out_h * out_w);
        for index in range.clone() {
            let image = dataset.pixels(index);
            for channel in 0..channels {
                let lut = &self.lut[if self.lut.len() == 1 { 0 } else { channel }];
                // The normalised value of black: (0 / 255 - mean) / std.
                let border = lut[0];
                let pixels = &image[channel * plane..(channel + 1) * plane];
                out.extend(repeat_n(border, pad * out_w));
                for y in 0..height {
                    out.extend(repeat_n(border, pad));
                    out.extend(pixels[y * width..(y + 1) * width].iter().map(|&p| lut[usize::from(p)]));
                    out.extend(repeat_n(border, pad));
                }
                out.extend(repeat_n(border, pad * out_w));
            }
        }
        Ok(Tensor::from_vec(out, (range.len(), channels, out_h, out_w), &Device::Cpu)?)
    }

    /// All images of `dataset` in file order, preprocessed in batches of
    /// `batch` images (the last one may be smaller): the one way every
    /// evaluation, capture and compression pass turns a dataset into inputs.
    /// `batch` is at least 1.
    pub fn batches<'a>(
        &'a self,
        dataset: &'a Dataset,
        batch: usize,
    ) -> impl Iterator<Item = Result<Tensor, PreprocessError>> + 'a {
        let batch = batch.max(1);
        (0..dataset.len()).step_by(batch).map(move |lo| self.batch(dataset, lo..(lo + batch).min(dataset.len())))
    }
}

/// Shows the parameters, not the lookup tables.
impl fmt::Debug for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preprocess")
            .field("mean", &self.mean)
            .field("std", &self.std)
            .field("pad", &self.pad)
            .finish_non_exhaustive()
    }
}

/// The largest normalised pixel value, in absolute value, that
/// [`Preprocess::with_pad`] accepts: common normalisations stay below 3.
pub const MAX_NORMALIZED: f32 = 1e4;

/// Parses `value`, the metadata entry `key`, as a list of numbers.
fn parse_values(key: &'static str, value: &str) -> Result<Vec<f32>, PreprocessError> {
    let bad = || PreprocessError::BadMetadata { key, value: value.to_owned() };
    let trimmed = value.trim();
    let list = trimmed.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(trimmed);
    list.split(',').map(|item| item.trim().parse::<f32>().map_err(|_| bad())).collect()
}

/// Why preprocessing could not be set up or applied.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// `mean` and `std` are empty, or have different lengths neither of
    /// which is 1.
    #[error("normalisation has {mean} means and {std} stds: each needs one value per channel, or a single value")]
    StatsLength {
        /// Number of means given.
        mean: usize,
        /// Number of stds given.
        std: usize,
    },
    /// A mean is not finite, or a std is not finite and positive.
    #[error("normalisation of channel {channel} is invalid: mean {mean}, std {std} (std must be positive)")]
    InvalidStats {
        /// The channel.
        channel: usize,
        /// Its mean.
        mean: f32,
        /// Its std.
        std: f32,
    },
    /// A mean and std that map pixels in `[0, 1]` to values larger than
    /// [`MAX_NORMALIZED`]: no trained network reads such inputs, and they
    /// would overflow its activations.
    #[error(
        "normalisation of channel {channel} (mean {mean}, std {std}) maps pixels to values as large as {largest:e}, \
         more than the {MAX_NORMALIZED:e} a trained network reads: mean and std are in units of the pixel range [0, 1]"
    )]
    ExtremeStats {
        /// The channel.
        channel: usize,
        /// Its mean.
        mean: f32,
        /// Its std.
        std: f32,
        /// The largest normalised pixel value, in absolute value.
        largest: f32,
    },
    /// The model's input is smaller than the images.
    #[error(
        "model input {}x{} is smaller than the {}x{} images",
        .input.0, .input.1, .image.0, .image.1
    )]
    InputTooSmall {
        /// Image height and width.
        image: (usize, usize),
        /// Model input height and width.
        input: (usize, usize),
    },
    /// The model's input is not the image grown by the same whole number of
    /// pixels on every side.
    #[error(
        "cannot pad {}x{} images to {}x{}: the border must be the same whole number of pixels on every side",
        .image.0, .image.1, .input.0, .input.1
    )]
    UnevenPadding {
        /// Image height and width.
        image: (usize, usize),
        /// Model input height and width.
        input: (usize, usize),
    },
    /// The images have a different number of channels than the
    /// normalisation.
    #[error("normalisation is for {stats} channels but the images have {channels}")]
    ChannelMismatch {
        /// Channels of the normalisation.
        stats: usize,
        /// Channels of the images.
        channels: usize,
    },
    /// A batch range does not lie within the dataset.
    #[error("images {}..{} are out of range for a dataset of {len} images", .range.start, .range.end)]
    OutOfRange {
        /// The requested range.
        range: Range<usize>,
        /// Number of images in the dataset.
        len: usize,
    },
    /// Checkpoint metadata has one of `normalize_mean` and `normalize_std`
    /// but not the other.
    #[error("checkpoint metadata lacks `{key}`")]
    MissingMetadata {
        /// The missing key.
        key: &'static str,
    },
    /// A normalisation entry of checkpoint metadata is not a list of numbers.
    #[error("checkpoint metadata `{key}` = `{value}` is not a comma-separated list of numbers")]
    BadMetadata {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// candle rejected the batch tensor.
    #[error("cannot build the batch tensor")]
    Tensor(#[from] candle_core::Error),
}
