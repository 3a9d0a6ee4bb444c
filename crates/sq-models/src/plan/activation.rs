//! A batch of activations in the plan's layout, and the conversions to and
//! from candle's `N x C x H x W` tensors.
//!
//! Inside the plan a feature map is stored channel-last (`N x H x W x C`):
//! one output pixel of a convolution is then one contiguous row of the GEMM
//! result, im2col copies whole runs of channels, and per-channel operations
//! walk rows. A flat vector of `F` features is the same thing with
//! `H = W = 1`, so linear layers run as 1x1 convolutions.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::shape::ActShape;

/// `n` activations of shape `shape`, channel-last.
#[derive(Clone, Debug)]
pub(crate) struct Activation {
    /// Batch size.
    pub(crate) n: usize,
    /// Shape of one image's activation.
    pub(crate) shape: ActShape,
    /// `n * shape.numel()` values, `N x H x W x C` (a vector: `N x F`).
    pub(crate) data: Vec<f32>,
}

impl Activation {
    /// Height, width and channels of one image (`1, 1, F` for a vector).
    pub(crate) fn hwc(&self) -> (usize, usize, usize) {
        match self.shape {
            ActShape::Map { c, h, w } => (h, w, c),
            ActShape::Vector(f) => (1, 1, f),
        }
    }

    /// Converts a candle tensor (`N x C x H x W`, or `N x F` for a vector)
    /// that must have the per-image shape `shape`.
    pub(crate) fn from_tensor(x: &Tensor, shape: ActShape) -> Result<Self> {
        let n = match (shape, x.dims()) {
            (ActShape::Map { c, h, w }, &[n, xc, xh, xw]) if (c, h, w) == (xc, xh, xw) => n,
            (ActShape::Vector(f), &[n, xf]) if f == xf => n,
            _ => return Err(Error::Input { expected: format!("N x {shape}"), found: x.dims().to_vec() }),
        };
        let data = x.flatten_all()?.to_vec1::<f32>()?;
        let data = match shape {
            ActShape::Map { c, h, w } => transpose_images(&data, n, c, h * w),
            ActShape::Vector(_) => data,
        };
        Ok(Self { n, shape, data })
    }

    /// The same values as a contiguous candle tensor in PyTorch's layout.
    pub(crate) fn to_tensor(&self) -> Result<Tensor> {
        Ok(match self.shape {
            ActShape::Map { c, h, w } => {
                Tensor::from_vec(transpose_images(&self.data, self.n, h * w, c), (self.n, c, h, w), &Device::Cpu)?
            }
            ActShape::Vector(f) => Tensor::from_slice(&self.data, (self.n, f), &Device::Cpu)?,
        })
    }

    /// PyTorch's `flatten(1)`: a map becomes a vector in channel-major order.
    pub(crate) fn flatten(self) -> Self {
        let shape = ActShape::Vector(self.shape.numel());
        let data = match self.shape {
            ActShape::Map { c, h, w } => transpose_images(&self.data, self.n, h * w, c),
            ActShape::Vector(_) => self.data,
        };
        Self { n: self.n, shape, data }
    }
}

/// Side of the square blocks a transpose moves at a time, so that both the
/// rows read and the rows written stay in cache.
const BLOCK: usize = 16;

/// Transposes each of the `n` consecutive `rows x cols` row-major matrices
/// in `src` (channel-first to channel-last or back).
pub(crate) fn transpose_images(src: &[f32], n: usize, rows: usize, cols: usize) -> Vec<f32> {
    let size = rows * cols;
    if rows == 1 || cols == 1 || size == 0 {
        return src.to_vec();
    }
    let mut dst = vec![0.0; n * size];
    dst.par_chunks_mut(size).zip(src.par_chunks(size)).for_each(|(dst, src)| {
        for r0 in (0..rows).step_by(BLOCK) {
            for c0 in (0..cols).step_by(BLOCK) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    for c in c0..(c0 + BLOCK).min(cols) {
                        dst[c * rows + r] = src[r * cols + c];
                    }
                }
            }
        }
    });
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_round_trip_goes_through_channel_last() {
        let shape = ActShape::Map { c: 3, h: 2, w: 5 };
        let values: Vec<f32> = (0..2 * 30).map(|v| v as f32).collect();
        let x = Tensor::from_vec(values.clone(), (2, 3, 2, 5), &Device::Cpu).unwrap();
        let act = Activation::from_tensor(&x, shape).unwrap();
        // Image 1, pixel (1, 4), channel 2 sits at NCHW index 30 + 2*10 + 1*5 + 4.
        assert_eq!(act.data[30 + (5 + 4) * 3 + 2], 59.0);
        assert_eq!(act.to_tensor().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), values);
        assert_eq!(act.flatten().data, values);
    }

    #[test]
    fn wrong_input_shape_is_an_input_error() {
        let x = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = Activation::from_tensor(&x, ActShape::Map { c: 3, h: 4, w: 4 }).unwrap_err();
        assert!(matches!(err, Error::Input { .. }), "{err}");
    }

    #[test]
    fn transpose_handles_sizes_that_are_not_block_multiples() {
        let (rows, cols) = (BLOCK + 3, 2 * BLOCK + 1);
        let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let t = transpose_images(&src, 1, rows, cols);
        assert_eq!(transpose_images(&t, 1, cols, rows), src);
        assert_eq!(t[5 * rows + 7], src[7 * cols + 5]);
    }
}
