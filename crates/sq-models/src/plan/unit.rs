//! Unit-wise operations (bias, BatchNorm's affine map, ReLU) on rows of channels.
//!
//! The plan keeps activations channel-last, so a batch is a sequence of rows
//! of `C` channels and a per-channel operation is a loop over one row at a
//! time. The same operations run as the epilogue of a convolution tile
//! (while the tile is still in cache) and as a stand-alone step.

use std::ops::Range;

/// One per-channel operation.
#[derive(Clone, Debug)]
pub(crate) enum UnitOp {
    /// `x + shift[c]` (a bias).
    Shift(Vec<f32>),
    /// `x * scale[c] + shift[c]` (an inference-mode BatchNorm).
    Affine {
        /// Per-channel factor.
        scale: Vec<f32>,
        /// Per-channel offset.
        shift: Vec<f32>,
    },
    /// `max(x, 0)`, NaN kept as NaN (as PyTorch and candle do), so that an
    /// overflow upstream reaches the outputs instead of vanishing.
    Relu,
}

impl UnitOp {
    /// Applies the operation to one row holding `channels` of the activation.
    fn apply_row(&self, row: &mut [f32], channels: &Range<usize>) {
        match self {
            UnitOp::Shift(shift) => row.iter_mut().zip(&shift[channels.clone()]).for_each(|(x, b)| *x += b),
            UnitOp::Affine { scale, shift } => {
                for ((x, s), b) in row.iter_mut().zip(&scale[channels.clone()]).zip(&shift[channels.clone()]) {
                    *x = *x * s + b;
                }
            }
            // Not `f32::max`, which returns 0 for NaN.
            UnitOp::Relu => row.iter_mut().for_each(|x| *x = if *x < 0.0 { 0.0 } else { *x }),
        }
    }
}

/// Applies `ops` in order to `data`, a sequence of rows of `channels.len()`
/// values that hold the channels `channels` of the activation.
pub(crate) fn apply(ops: &[UnitOp], data: &mut [f32], channels: Range<usize>) {
    if ops.is_empty() || channels.is_empty() {
        return;
    }
    for row in data.chunks_exact_mut(channels.len()) {
        for op in ops {
            op.apply_row(row, &channels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_run_in_order_on_the_given_channels() {
        let ops = [
            UnitOp::Shift(vec![10.0, 1.0, -3.0]),
            UnitOp::Relu,
            UnitOp::Affine { scale: vec![0.0, 2.0, 3.0], shift: vec![0.0, 0.5, 1.0] },
        ];
        // Two rows of channels 1..3.
        let mut data = vec![1.0, 1.0, -2.0, 5.0];
        apply(&ops, &mut data, 1..3);
        assert_eq!(data, vec![4.5, 1.0, 0.5, 7.0]);
    }

    #[test]
    fn relu_keeps_nan_and_infinity() {
        let mut data = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.5];
        apply(&[UnitOp::Relu], &mut data, 0..4);
        assert!(data[0].is_nan(), "a NaN must reach the outputs, not become 0");
        assert_eq!(&data[1..], &[f32::INFINITY, 0.0, 0.0]);
    }
}
