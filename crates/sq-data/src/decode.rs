//! Image files to 8-bit pixels with the model's number of channels, as
//! torchvision's loaders make them with PIL.
//!
//! torchvision's `ImageFolder` opens every file with PIL and calls
//! `.convert('RGB')` (or a grey model's pipeline `.convert('L')`); this
//! module does the same with the `image` crate's JPEG and PNG decoders:
//!
//! - to RGB: a grey image's value is repeated in the three channels, an
//!   alpha channel is dropped (not composited), a palette is expanded;
//! - to grey: `L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`, PIL's
//!   fixed-point ITU-R 601-2 luma, bit for bit;
//! - a CMYK JPEG (Adobe marker) comes out as PIL converts it, to within the
//!   decoders' rounding (the preprocessing fixture holds one);
//! - 16-bit PNGs keep their high byte (as PIL reads 16-bit RGB; PIL clips
//!   16-bit grey to 255 instead, which no trained model can have seen);
//! - EXIF orientation is not applied, as PIL's `Image.open` does not.
//!
//! JPEG decoders differ from libjpeg-turbo (PIL's) in their inverse DCT and
//! chroma upsampling by a level or two on some pixels; the preprocessing
//! fixture bounds the effect on real photographs.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// The largest image file read (256 MiB): a bound on what one file can make
/// the reader load.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The largest side of a decoded image, in pixels.
const MAX_SIDE: u32 = 1 << 20;

/// The most bytes a decoder may allocate for one image (1 GiB).
const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// A decoded image: `height x width` pixels of `channels` interleaved `u8`
/// values (row-major, channel-last).
pub(crate) struct Pixels {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Decodes the JPEG or PNG file at `path` into `channels` (1 or 3)
/// channels. The error says why, without the path (the caller adds it).
pub(crate) fn decode(path: &Path, channels: usize) -> Result<Pixels, String> {
    if channels != 1 && channels != 3 {
        return Err(format!("a model with {channels} input channels cannot read image files (only 1 or 3)"));
    }
    let cap = sq_io::Cap { bytes: MAX_IMAGE_BYTES, what: "an image file" };
    let bytes = sq_io::read_input(path, cap).map_err(|e| error_chain(&e))?;
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let format = image::guess_format(&bytes)
        .map_err(|_| "not a JPEG or PNG image (squeeze decodes those two formats)".to_string())?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(&bytes) {
        return Err("the JPEG data is truncated (no end-of-image marker after its last scan)".into());
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| format!("cannot decode it: {e}"))?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (samples, source_channels) = eight_bit(image);
    let data = match (source_channels, channels) {
        (1 | 2, 3) => samples.chunks_exact(source_channels).flat_map(|p| [p[0]; 3]).collect(),
        (3 | 4, 3) => samples.chunks_exact(source_channels).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        (1 | 2, _) => samples.chunks_exact(source_channels).map(|p| p[0]).collect(),
        _ => samples.chunks_exact(source_channels).map(|p| luma(p[0], p[1], p[2])).collect(),
    };
    Ok(Pixels { height, width, channels, data })
}

/// The image's samples as 8-bit values, interleaved, and their number of
/// channels (1 grey, 2 grey and alpha, 3 RGB, 4 RGBA).
fn eight_bit(image: DynamicImage) -> (Vec<u8>, usize) {
    let high_bytes = |values: Vec<u16>| values.into_iter().map(|v| (v >> 8) as u8).collect();
    match image {
        DynamicImage::ImageLuma8(buffer) => (buffer.into_raw(), 1),
        DynamicImage::ImageLumaA8(buffer) => (buffer.into_raw(), 2),
        DynamicImage::ImageRgb8(buffer) => (buffer.into_raw(), 3),
        DynamicImage::ImageRgba8(buffer) => (buffer.into_raw(), 4),
        DynamicImage::ImageLuma16(buffer) => (high_bytes(buffer.into_raw()), 1),
        DynamicImage::ImageLumaA16(buffer) => (high_bytes(buffer.into_raw()), 2),
        DynamicImage::ImageRgb16(buffer) => (high_bytes(buffer.into_raw()), 3),
        DynamicImage::ImageRgba16(buffer) => (high_bytes(buffer.into_raw()), 4),
        other => (other.to_rgba8().into_raw(), 4),
    }
}

/// Whether a JPEG file ends its last scan: the end-of-image marker `FF D9`
/// comes after the last start-of-scan marker `FF DA` (neither can occur
/// inside entropy-coded data, where `FF` is stuffed). The `image` crate's
/// decoder fills a truncated scan with grey where PIL raises "image file is
/// truncated"; this keeps the error.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xD9), last(0xDA)), (Some(end), Some(scan)) if end > scan)
}

/// PIL's `L` from RGB: ITU-R 601-2 luma in 16-bit fixed point, rounded.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * u32::from(r) + 38470 * u32::from(g) + 7471 * u32::from(b) + 0x8000) >> 16) as u8
}

/// An error and its causes, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The `(height, width)` of the JPEG or PNG file at `path`, read from its
/// header only.
pub(crate) fn dimensions(path: &Path) -> Result<(usize, usize), String> {
    let cap = sq_io::Cap { bytes: MAX_IMAGE_BYTES, what: "an image file" };
    let bytes = sq_io::read_input(path, cap).map_err(|e| error_chain(&e))?;
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a JPEG or PNG image (squeeze decodes those two formats)".into());
    }
    let (width, height) = reader.into_dimensions().map_err(|e| format!("cannot read its size: {e}"))?;
    Ok((height as usize, width as usize))
}
