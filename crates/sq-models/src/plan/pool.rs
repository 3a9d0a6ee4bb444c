//! Max pooling on channel-last maps.

use rayon::prelude::*;

use super::activation::Activation;
use crate::model::ActShape;

/// Outputs below which pooling stays on one thread (waking another core
/// costs more than it saves).
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Max pooling with a `kernel x kernel` window moved by `stride`, no
/// padding, output size rounded down (PyTorch's default). Parallel over
/// output rows of large maps; every window is a max over whole rows of
/// channels.
pub(crate) fn max_pool(x: &Activation, kernel: usize, stride: usize) -> Activation {
    let (h, w, c) = x.hwc();
    let (ho, wo) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let mut data = vec![0.0; x.n * ho * wo * c];
    if c > 0 {
        let min_lines_per_job = if data.len() < PARALLEL_MIN_VALUES { usize::MAX } else { 1 };
        data.par_chunks_mut(wo * c).with_min_len(min_lines_per_job).enumerate().for_each(|(line, dst)| {
            let (image, oy) = (line / ho, line % ho);
            for (ox, out) in dst.chunks_exact_mut(c).enumerate() {
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let start = ((image * h + oy * stride + ky) * w + ox * stride + kx) * c;
                        let src = &x.data[start..start + c];
                        if ky == 0 && kx == 0 {
                            out.copy_from_slice(src);
                        } else {
                            out.iter_mut().zip(src).for_each(|(o, &v)| *o = nan_max(*o, v));
                        }
                    }
                }
            }
        });
    }
    Activation { n: x.n, shape: ActShape::Map { c, h: ho, w: wo }, data }
}

/// The larger of `a` and `b`, NaN if either is NaN (PyTorch's max pooling;
/// `f32::max` would drop the NaN and hide an overflow upstream).
fn nan_max(a: f32, b: f32) -> f32 {
    if a >= b || a.is_nan() {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_keeps_nan_wherever_it_is_in_the_window() {
        for at in 0..4 {
            let mut data = vec![1.0, -2.0, 3.0, 0.5];
            data[at] = f32::NAN;
            let x = Activation { n: 1, shape: ActShape::Map { c: 1, h: 2, w: 2 }, data };
            assert!(max_pool(&x, 2, 2).data[0].is_nan(), "NaN at {at} was dropped");
        }
        let x = Activation { n: 1, shape: ActShape::Map { c: 1, h: 2, w: 2 }, data: vec![1.0, -2.0, 3.0, 0.5] };
        assert_eq!(max_pool(&x, 2, 2).data, vec![3.0]);
    }
}
