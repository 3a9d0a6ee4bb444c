//! Max pooling on channel-last maps.

use rayon::prelude::*;

use super::activation::Activation;
use crate::shape::ActShape;

/// Outputs below which pooling stays on one thread (waking another core
/// costs more than it saves).
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Max pooling with a `kernel x kernel` window moved by `stride`, over the
/// input padded by `padding` on every side with values no maximum picks,
/// output size rounded down (PyTorch's default). Parallel over output rows
/// of large maps; every window is a max over whole rows of channels.
pub(crate) fn max_pool(x: &Activation, kernel: usize, stride: usize, padding: usize) -> Activation {
    let (h, w, c) = x.hwc();
    let (ho, wo) = ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1);
    // Window offsets inside the unpadded input along one axis, for output
    // position `o` (at least one: the padding is at most half the window).
    let window =
        |o: usize, side: usize| (o * stride).saturating_sub(padding)..(o * stride + kernel - padding).min(side);
    let mut data = vec![0.0; x.n * ho * wo * c];
    if c > 0 {
        let min_lines_per_job = if data.len() < PARALLEL_MIN_VALUES { usize::MAX } else { 1 };
        data.par_chunks_mut(wo * c).with_min_len(min_lines_per_job).enumerate().for_each(|(line, dst)| {
            let (image, oy) = (line / ho, line % ho);
            for (ox, out) in dst.chunks_exact_mut(c).enumerate() {
                let mut first = true;
                for iy in window(oy, h) {
                    for ix in window(ox, w) {
                        let start = ((image * h + iy) * w + ix) * c;
                        let src = &x.data[start..start + c];
                        if first {
                            out.copy_from_slice(src);
                            first = false;
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

/// The mean of each channel over all positions of each image: a
/// `C x 1 x 1` map.
pub(crate) fn global_avg_pool(x: &Activation) -> Activation {
    let (h, w, c) = x.hwc();
    let positions = h * w;
    let mut data = vec![0.0f32; x.n * c];
    if c > 0 && positions > 0 {
        data.par_chunks_mut(c).zip(x.data.par_chunks(positions * c)).for_each(|(out, image)| {
            let mut sums = vec![0.0f64; c];
            for row in image.chunks_exact(c) {
                sums.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v));
            }
            out.iter_mut().zip(&sums).for_each(|(o, s)| *o = (s / positions as f64) as f32);
        });
    }
    Activation { n: x.n, shape: ActShape::Map { c, h: 1, w: 1 }, data }
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
            assert!(max_pool(&x, 2, 2, 0).data[0].is_nan(), "NaN at {at} was dropped");
        }
        let x = Activation { n: 1, shape: ActShape::Map { c: 1, h: 2, w: 2 }, data: vec![1.0, -2.0, 3.0, 0.5] };
        assert_eq!(max_pool(&x, 2, 2, 0).data, vec![3.0]);
    }
}
