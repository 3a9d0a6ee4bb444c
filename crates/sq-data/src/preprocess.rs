//! From stored pixels to model inputs.
//!
//! A model only reproduces its reported accuracy when it sees its inputs
//! exactly as in training. squeeze follows torchvision's evaluation
//! transforms, in their order:
//!
//! 1. `Resize(S)`: the shorter side to `S` pixels, the longer one to
//!    `int(S * long / short)`, bilinear with antialiasing on 8-bit pixels as
//!    PIL resamples (the `fast_image_resize` crate's convolution; skipped
//!    when the size is already right, as torchvision skips it);
//! 2. `CenterCrop(H, W)`: the offsets rounded half to even, as Python's
//!    `round` does;
//! 3. `x = p / 255` (`ToTensor`);
//! 4. `x = (x - mean[c]) / std[c]` (`Normalize`);
//! 5. zero-pad every side by `pad` pixels *after* normalising, so the border
//!    holds the value of a normalised black pixel, `(0 - mean[c]) / std[c]`
//!    (this is how 28x28 Fashion-MNIST images feed a 32x32 VGG).
//!
//! Steps 3 and 4 are computed in `f32` and in that order, as torchvision
//! does, so that rounding agrees with training too; since a pixel has only
//! 256 values, they are precomputed into a lookup table per channel. Images
//! held in memory without a resize or crop take a direct path; image files
//! are decoded (see the `decode` module) and transformed in parallel, one
//! batch at a time.

use std::collections::HashMap;
use std::fmt;
use std::iter::repeat_n;
use std::ops::Range;

use candle_core::{Device, Tensor};
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rayon::prelude::*;
use thiserror::Error;

use super::decode::{decode, Pixels};
use super::Dataset;

/// Checkpoint metadata key holding the per-channel normalisation mean.
const MEAN_KEY: &str = "normalize_mean";
/// Checkpoint metadata key holding the per-channel normalisation std.
const STD_KEY: &str = "normalize_std";
/// Checkpoint metadata key holding [`Geometry::resize`].
const RESIZE_KEY: &str = "resize";
/// Checkpoint metadata key holding [`Geometry::crop`], as `HxW`.
const CROP_KEY: &str = "center_crop";

/// The largest side `--resize` or `--crop` may ask for.
pub const MAX_SIDE: usize = 8192;

/// The most pixels an image may have once resized (2^26, a 8192 x 8192
/// image): a 100000 x 10 strip resized to a shorter side of 256 would
/// otherwise take gigabytes.
const MAX_RESIZED_PIXELS: usize = 1 << 26;

/// How every image is brought to the model's input size before it is
/// normalised: torchvision's `Resize(resize)` then `CenterCrop(crop)`, each
/// optional. The default does neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// The shorter side is resized to this many pixels, keeping the aspect
    /// ratio (`transforms.Resize(S)`).
    pub resize: Option<usize>,
    /// The centre `(height, width)` is kept (`transforms.CenterCrop`).
    pub crop: Option<(usize, usize)>,
}

impl Geometry {
    /// Neither resize nor crop.
    pub fn is_identity(&self) -> bool {
        self.resize.is_none() && self.crop.is_none()
    }

    /// Checks that each side asked for is between 1 and [`MAX_SIDE`].
    ///
    /// # Errors
    ///
    /// [`PreprocessError::BadGeometry`] naming the side.
    pub fn check(&self) -> Result<(), PreprocessError> {
        let sides = self.resize.into_iter().chain(self.crop.into_iter().flat_map(|(h, w)| [h, w]));
        for side in sides {
            if side == 0 || side > MAX_SIDE {
                return Err(PreprocessError::BadGeometry {
                    reason: format!("{side} pixels: each side must be between 1 and {MAX_SIDE}"),
                });
            }
        }
        Ok(())
    }

    /// The `(height, width)` an `image_hw` image has after this geometry,
    /// before padding, or why it cannot be applied.
    pub fn output_hw(&self, image_hw: (usize, usize)) -> Result<(usize, usize), String> {
        let resized = match self.resize {
            Some(side) => resized_hw(image_hw, side),
            None => image_hw,
        };
        match self.crop {
            Some((h, w)) if h > resized.0 || w > resized.1 => Err(format!(
                "the centre crop {h}x{w} is larger than the image, {}x{}{}",
                resized.0,
                resized.1,
                if self.resize.is_some() { " once resized" } else { "" }
            )),
            Some(crop) => Ok(crop),
            None => Ok(resized),
        }
    }

    /// Reads a geometry recorded in checkpoint metadata (`resize`,
    /// `center_crop`), the identity if neither key is there.
    ///
    /// # Errors
    ///
    /// [`PreprocessError::BadMetadata`] if a value does not parse or is out
    /// of range.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Geometry, PreprocessError> {
        let bad = |key: &'static str, value: &str| PreprocessError::BadMetadata { key, value: value.to_owned() };
        let in_range = |side: usize| (1..=MAX_SIDE).contains(&side);
        let resize = meta
            .get(RESIZE_KEY)
            .map(|value| value.trim().parse().ok().filter(|&s| in_range(s)).ok_or_else(|| bad(RESIZE_KEY, value)))
            .transpose()?;
        let crop = meta
            .get(CROP_KEY)
            .map(|value| {
                parse_hw(value).ok().filter(|&(h, w)| in_range(h) && in_range(w)).ok_or_else(|| bad(CROP_KEY, value))
            })
            .transpose()?;
        Ok(Geometry { resize, crop })
    }

    /// The metadata entries that record this geometry (none for the identity).
    pub fn metadata(&self) -> Vec<(String, String)> {
        let resize = self.resize.map(|side| (RESIZE_KEY.to_owned(), side.to_string()));
        let crop = self.crop.map(|(h, w)| (CROP_KEY.to_owned(), format!("{h}x{w}")));
        resize.into_iter().chain(crop).collect()
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.resize, self.crop) {
            (None, None) => f.write_str("none"),
            (Some(s), None) => write!(f, "resize {s}"),
            (None, Some((h, w))) => write!(f, "centre crop {h}x{w}"),
            (Some(s), Some((h, w))) => write!(f, "resize {s}, centre crop {h}x{w}"),
        }
    }
}

/// `H` or `HxW` as `(H, W)` (a `--crop` flag, a `center_crop` entry); the
/// error says what to write.
pub fn parse_hw(text: &str) -> Result<(usize, usize), String> {
    let trimmed = text.trim();
    let size = match trimmed.split_once('x') {
        Some((h, w)) => h.trim().parse().ok().zip(w.trim().parse().ok()),
        None => trimmed.parse().ok().map(|side| (side, side)),
    };
    size.ok_or_else(|| format!("`{text}` is not a size: write H or HxW, e.g. 224 or 224x192"))
}

/// The size torchvision's `Resize(side)` gives an `(h, w)` image: the
/// shorter side becomes `side`, the longer `int(side * long / short)`
/// (Python's true division, then truncation).
fn resized_hw((h, w): (usize, usize), side: usize) -> (usize, usize) {
    let longer = |long: usize, short: usize| ((side * long) as f64 / short as f64) as usize;
    if w <= h {
        (longer(h, w), side)
    } else {
        (side, longer(w, h))
    }
}

/// Per-channel normalisation statistics as `(mean, std)`, as read by
/// [`Preprocess::from_metadata`] and taken by [`Preprocess::new`].
pub type MeanStd = (Vec<f32>, Vec<f32>);

/// Resizing, cropping, normalisation and padding of a dataset's images for
/// one model.
///
/// `mean` and `std` each hold one value per channel, or a single value that
/// applies to every channel.
#[derive(Clone)]
pub struct Preprocess {
    mean: Vec<f32>,
    std: Vec<f32>,
    pad: usize,
    geometry: Geometry,
    /// The size every image must have after the geometry, before padding;
    /// `None` accepts the size of a dataset held in memory.
    image_hw: Option<(usize, usize)>,
    /// Channels image files are decoded to; by default the normalisation's
    /// channel count.
    channels: Option<usize>,
    /// `lut[c][p]` is the normalised value of pixel `p` in channel `c`; a
    /// single table when both `mean` and `std` have one value.
    lut: Vec<[f32; 256]>,
}

impl Preprocess {
    /// Preprocessing that turns `image_hw` images (their size after the
    /// [`Geometry`], if one is set) into the model's `input_hw` inputs,
    /// padding them equally on every side. Every image must have that size.
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
        let mut pre = Self::with_pad(mean, std, dh / 2)?;
        pre.image_hw = Some(image_hw);
        Ok(pre)
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
        Ok(Self { mean, std, pad, lut, geometry: Geometry::default(), image_hw: None, channels: None })
    }

    /// The same preprocessing, resizing and cropping every image first.
    ///
    /// # Errors
    ///
    /// [`PreprocessError::BadGeometry`] if a side is out of range.
    pub fn with_geometry(mut self, geometry: Geometry) -> Result<Self, PreprocessError> {
        geometry.check()?;
        self.geometry = geometry;
        Ok(self)
    }

    /// The same preprocessing, decoding image files to `channels` channels
    /// (1 grey, 3 RGB): the model's, whatever the normalisation's count.
    pub fn with_channels(mut self, channels: usize) -> Self {
        self.channels = Some(channels);
        self
    }

    /// The resize and crop applied before normalising.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The checkpoint metadata that records this preprocessing, so that a
    /// model written with it evaluates with no flags: the normalisation and
    /// the geometry, with the keys [`Preprocess::from_metadata`] and
    /// [`Geometry::from_metadata`] read.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let list = |values: &[f32]| values.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
        let normalisation = [(MEAN_KEY.to_owned(), list(&self.mean)), (STD_KEY.to_owned(), list(&self.std))];
        normalisation.into_iter().chain(self.geometry.metadata()).collect()
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
    /// Image files are decoded in parallel.
    ///
    /// # Errors
    ///
    /// If `range` does not lie within the dataset, the dataset's channel
    /// count does not match the normalisation's, an image file cannot be
    /// decoded, or an image does not have the expected size after the
    /// geometry; each error about one image names it.
    pub fn batch(&self, dataset: &Dataset, range: Range<usize>) -> Result<Tensor, PreprocessError> {
        if range.start > range.end || range.end > dataset.len() {
            return Err(PreprocessError::OutOfRange { range, len: dataset.len() });
        }
        let channels = match dataset.image_shape() {
            Some((channels, ..)) => channels,
            None => self.channels.unwrap_or(self.lut.len()),
        };
        if self.lut.len() != 1 && self.lut.len() != channels {
            return Err(PreprocessError::ChannelMismatch { stats: self.lut.len(), channels });
        }
        if let (Some((_, h, w)), true) = (dataset.image_shape(), self.geometry.is_identity()) {
            self.check_size(dataset, range.start, (h, w))?;
            return self.stored_batch(dataset, range, (channels, h, w));
        }
        let images: Vec<(Vec<f32>, (usize, usize))> = range
            .clone()
            .into_par_iter()
            .map(|index| self.image(dataset, index, channels))
            .collect::<Result<_, _>>()?;
        let size = images.first().map_or((0, 0), |(_, size)| *size);
        let mut out = Vec::with_capacity(images.len() * channels * size.0 * size.1);
        for (index, (values, hw)) in range.clone().zip(images) {
            if hw != size {
                return Err(PreprocessError::ImageSize { image: dataset.describe(index), found: hw, expected: size });
            }
            out.extend(values);
        }
        Ok(Tensor::from_vec(out, (range.len(), channels, size.0, size.1), &Device::Cpu)?)
    }

    /// A batch of a dataset held in memory, with no resize or crop: a
    /// lookup per pixel, the border written around each plane.
    fn stored_batch(
        &self,
        dataset: &Dataset,
        range: Range<usize>,
        (channels, height, width): (usize, usize, usize),
    ) -> Result<Tensor, PreprocessError> {
        let pad = self.pad;
        let (out_h, out_w) = (height + 2 * pad, width + 2 * pad);
        let plane = height * width;
        let mut out = Vec::with_capacity(range.len() * channels * out_h * out_w);
        for index in range.clone() {
            let image = dataset.pixels(index).unwrap_or_default();
            for channel in 0..channels {
                let lut = self.lut(channel);
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

    /// Image `index`, resized, cropped, normalised and padded (`C x H x W`
    /// values), and its padded size.
    fn image(
        &self,
        dataset: &Dataset,
        index: usize,
        channels: usize,
    ) -> Result<(Vec<f32>, (usize, usize)), PreprocessError> {
        let fail = |reason: String| PreprocessError::Image { image: dataset.describe(index), reason };
        let pixels = match (dataset.pixels(index), dataset.path(index)) {
            (Some(planes), _) => {
                let (_, height, width) = dataset.image_shape().unwrap_or_default();
                Pixels { height, width, channels, data: interleave(planes, channels) }
            }
            (None, Some(path)) => decode(path, channels).map_err(fail)?,
            (None, None) => unreachable!("an image is either stored or a file"),
        };
        let output_hw = self.geometry.output_hw((pixels.height, pixels.width)).map_err(fail)?;
        self.check_size(dataset, index, output_hw)?;
        let pixels = match self.geometry.resize {
            Some(side) => resize(pixels, side).map_err(fail)?,
            None => pixels,
        };
        let pixels = match self.geometry.crop {
            Some(crop) => centre_crop(&pixels, crop),
            None => pixels,
        };
        Ok(self.normalize_and_pad(&pixels))
    }

    /// Checks that image `index` has the expected size after the geometry.
    fn check_size(&self, dataset: &Dataset, index: usize, hw: (usize, usize)) -> Result<(), PreprocessError> {
        match self.image_hw {
            Some(expected) if expected != hw => {
                Err(PreprocessError::ImageSize { image: dataset.describe(index), found: hw, expected })
            }
            _ => Ok(()),
        }
    }

    /// Channel-last pixels to normalised, padded channel planes.
    fn normalize_and_pad(&self, pixels: &Pixels) -> (Vec<f32>, (usize, usize)) {
        let (pad, c) = (self.pad, pixels.channels);
        let (out_h, out_w) = (pixels.height + 2 * pad, pixels.width + 2 * pad);
        let mut out = Vec::with_capacity(c * out_h * out_w);
        for channel in 0..c {
            let lut = self.lut(channel);
            let border = lut[0];
            out.extend(repeat_n(border, pad * out_w));
            for row in pixels.data.chunks_exact(pixels.width * c) {
                out.extend(repeat_n(border, pad));
                out.extend(row.iter().skip(channel).step_by(c).map(|&p| lut[usize::from(p)]));
                out.extend(repeat_n(border, pad));
            }
            out.extend(repeat_n(border, pad * out_w));
        }
        (out, (out_h, out_w))
    }

    /// The lookup table of `channel`.
    fn lut(&self, channel: usize) -> &[f32; 256] {
        &self.lut[if self.lut.len() == 1 { 0 } else { channel }]
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
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

/// Channel planes (`C x H x W`) to interleaved pixels (`H x W x C`).
fn interleave(planes: &[u8], channels: usize) -> Vec<u8> {
    let plane = planes.len() / channels.max(1);
    (0..plane).flat_map(|i| (0..channels).map(move |c| planes[c * plane + i])).collect()
}

/// torchvision's `Resize(side)` on a PIL image: bilinear, antialiased
/// (the filter widens with the scale when shrinking), on 8-bit pixels.
fn resize(pixels: Pixels, side: usize) -> Result<Pixels, String> {
    let (height, width) = resized_hw((pixels.height, pixels.width), side);
    if (height, width) == (pixels.height, pixels.width) {
        return Ok(pixels);
    }
    if height.saturating_mul(width) > MAX_RESIZED_PIXELS || height == 0 || width == 0 {
        return Err(format!(
            "a {}x{} image resized to a shorter side of {side} would be {height}x{width} pixels",
            pixels.height, pixels.width
        ));
    }
    let kind = if pixels.channels == 1 { PixelType::U8 } else { PixelType::U8x3 };
    let source = Image::from_vec_u8(pixels.width as u32, pixels.height as u32, pixels.data, kind)
        .map_err(|e| format!("cannot resize: {e}"))?;
    let mut target = Image::new(width as u32, height as u32, kind);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(&source, &mut target, &options).map_err(|e| format!("cannot resize: {e}"))?;
    Ok(Pixels { height, width, channels: pixels.channels, data: target.into_vec() })
}

/// torchvision's `CenterCrop((h, w))` of an image at least that large: the
/// top and left offsets are `round((H - h) / 2)` with Python's rounding,
/// half to even.
fn centre_crop(pixels: &Pixels, (h, w): (usize, usize)) -> Pixels {
    let offset = |excess: usize| {
        let half = excess / 2;
        if excess % 2 == 1 && half % 2 == 1 {
            half + 1
        } else {
            half
        }
    };
    let (top, left, c) = (offset(pixels.height - h), offset(pixels.width - w), pixels.channels);
    let row = pixels.width * c;
    let data =
        (top..top + h).flat_map(|y| &pixels.data[y * row + left * c..y * row + (left + w) * c]).copied().collect();
    Pixels { height: h, width: w, channels: c, data }
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
    /// An image file cannot be read or decoded, or the geometry cannot be
    /// applied to an image.
    #[error("{image}: {reason}")]
    Image {
        /// The file (or the image's index).
        image: String,
        /// What went wrong.
        reason: String,
    },
    /// An image does not have the size the model reads once resized and
    /// cropped.
    #[error(
        "{image} is {}x{} after any resize and crop, but {}x{} is expected (that of the first image, or of the crop)",
        .found.0, .found.1, .expected.0, .expected.1
    )]
    ImageSize {
        /// The file (or the image's index).
        image: String,
        /// Its size after the geometry.
        found: (usize, usize),
        /// The size expected.
        expected: (usize, usize),
    },
    /// A resize or crop side out of range.
    #[error("invalid resize or crop: {reason}")]
    BadGeometry {
        /// What is wrong.
        reason: String,
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
    /// A preprocessing entry of checkpoint metadata does not parse: a
    /// normalisation that is not a list of numbers, a resize or crop that is
    /// not a size.
    #[error("checkpoint metadata `{key}` = `{value}` does not parse (normalisation: a comma-separated list of numbers; resize: a side; center_crop: HxW)")]
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
