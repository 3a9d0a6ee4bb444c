//! [`Samples`]: a tapped activation as rows of unit values, the layout
//! statistics are computed in.

use std::borrow::Cow;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::plan::transpose_images;

/// A batch of activations read as samples of their units, one sample per
/// row, row-major: an `N x C x H x W` map gives `N*H*W` rows of `C` values
/// (channel-last, `N x H x W x C`), an `N x F` vector `N` rows of `F`.
///
/// This is the layout the execution plan already holds its activations in,
/// so [`Model::forward_with_samples`](crate::Model::forward_with_samples)
/// lends them without a copy, and a Gram product `X^T X` can read them
/// directly. [`Samples::from_tensor`] builds the same rows from a candle
/// tensor, with one transposing copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples<'a> {
    values: Cow<'a, [f32]>,
    rows: usize,
    units: usize,
}

impl<'a> Samples<'a> {
    /// `rows` rows of `units` values borrowed from `values`.
    pub(crate) fn borrowed(values: &'a [f32], rows: usize, units: usize) -> Self {
        debug_assert_eq!(values.len(), rows * units);
        Self { values: Cow::Borrowed(values), rows, units }
    }

    /// The samples of a candle tensor: `N x C x H x W` (transposed to
    /// channel-last by the runner's blocked, parallel transpose, several
    /// times faster than a strided copy) or `N x F`. Any other rank is
    /// [`Error::Input`]; the tensor must hold `f32` values.
    pub fn from_tensor(x: &Tensor) -> Result<Samples<'static>> {
        let (rows, units, values) = match x.dims() {
            &[n, c, h, w] => (n * h * w, c, transpose_images(&x.flatten_all()?.to_vec1::<f32>()?, n, c, h * w)),
            &[n, f] => (n, f, x.flatten_all()?.to_vec1::<f32>()?),
            dims => {
                let expected = "N x C x H x W or N x F".into();
                return Err(Error::Input { expected, found: dims.to_vec() });
            }
        };
        Ok(Samples { values: Cow::Owned(values), rows, units })
    }

    /// The values, `rows() x units()`, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Values per sample: the channels of a map, the features of a vector.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.rows
    }
}
