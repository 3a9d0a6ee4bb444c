//! Convolution as tiled im2col + GEMM, with the epilogue fused per tile.
//!
//! Output pixels of the whole batch are split into tiles of a few hundred
//! rows. For each tile one thread gathers the input patches into an im2col
//! block (`rows x kh*kw*C`; `gemm` blocks it further for the caches),
//! multiplies it by the packed weight (`kh*kw*C x C_out`) with `gemm`, and
//! applies bias, folded BatchNorm and ReLU to the result while it is still
//! in cache. The output tile is `rows` contiguous channel-last pixels, so
//! tiles write disjoint slices of the output and the next layer reads it as
//! is.
//!
//! When the batch has too few pixels to keep every core busy (batch 1 at the
//! 2x2 and 4x4 stages of VGG), the output channels are split across threads
//! instead. A 1x1 convolution with stride 1 and no padding reads its input
//! in place (no im2col), and a linear layer is exactly that on a 1x1 map.

use std::ops::Range;

use candle_core::Tensor;
use rayon::prelude::*;

use super::activation::Activation;
use super::gemm::{matmul, MatMut, MatRef};
use super::unit::{self, UnitOp};
use crate::error::Result;
use crate::shape::ActShape;

/// Output pixels per tile when the batch has enough of them: `gemm`
/// single-threaded is within a few percent of its best from 256 to 1024
/// rows for every VGG shape (K = 27..4608) on AVX-512, and falls off below
/// 128 rows.
const TILE_ROWS: usize = 512;
/// Fewest rows in a tile; batches with fewer pixels per thread than this
/// split their output channels across threads instead.
const MIN_TILE_ROWS: usize = 32;
/// Most im2col values one tile may gather (16 MiB of f32), which caps the
/// tile size of convolutions with very long patches.
const MAX_TILE_VALUES: usize = 1 << 22;
/// Convolutions with fewer multiply-accumulates than this run on one thread:
/// handing a few microseconds of work to another core costs more than it
/// saves (the linear layers at batch 1).
const PARALLEL_MIN_MACS: usize = 1 << 19;
/// Tile sizes and channel blocks are multiples of this (the SIMD width in
/// f32 of AVX-512).
const ROW_ALIGN: usize = 16;

/// A convolution with its epilogue, weights packed for the GEMM.
pub(crate) struct Conv {
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    stride: usize,
    padding: usize,
    /// `(kh * kw * C_in) x C_out`, row `(ky * kw + kx) * C_in + ci`.
    weight: Vec<f32>,
    /// Applied to every output pixel, in order: the bias, then any
    /// unit-wise layers that follow the convolution in the model.
    epilogue: Vec<UnitOp>,
}

impl Conv {
    /// Packs a candle-layout weight `C_out x C_in x kh x kw` (f32).
    pub(crate) fn new(weight: &Tensor, bias: Option<&Tensor>, stride: usize, padding: usize) -> Result<Self> {
        let (out_channels, in_channels, kh, kw) = weight.dims4()?;
        let raw = weight.flatten_all()?.to_vec1::<f32>()?;
        let mut packed = vec![0.0; raw.len()];
        for (co, filter) in raw.chunks_exact((in_channels * kh * kw).max(1)).enumerate() {
            for (ci, plane) in filter.chunks_exact(kh * kw).enumerate() {
                for (tap, &v) in plane.iter().enumerate() {
                    packed[(tap * in_channels + ci) * out_channels + co] = v;
                }
            }
        }
        let epilogue = bias.map(|b| b.to_vec1::<f32>().map(UnitOp::Shift)).transpose()?.into_iter().collect();
        Ok(Self { in_channels, out_channels, kernel: (kh, kw), stride, padding, weight: packed, epilogue })
    }

    /// A linear layer (weight `out x in`) as a 1x1 convolution.
    pub(crate) fn linear(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (out, inp) = weight.dims2()?;
        Self::new(&weight.reshape((out, inp, 1, 1))?, bias, 1, 0)
    }

    /// Appends a unit-wise operation to the epilogue.
    pub(crate) fn push(&mut self, op: UnitOp) {
        self.epilogue.push(op);
    }

    /// Rows of the packed weight: the length of one im2col row.
    fn patch_len(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.in_channels
    }

    /// True when the input is its own im2col matrix.
    fn reads_input_in_place(&self) -> bool {
        self.kernel == (1, 1) && self.stride == 1 && self.padding == 0
    }

    /// Output height and width for an input of `h x w`.
    fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let out = |side: usize, k: usize| (side + 2 * self.padding - k) / self.stride + 1;
        (out(h, self.kernel.0), out(w, self.kernel.1))
    }

    /// Runs the convolution and its epilogue on a batch.
    pub(crate) fn run(&self, x: &Activation) -> Activation {
        let (h, w, c) = x.hwc();
        assert_eq!(c, self.in_channels, "the model's shapes were checked when it was built");
        let (ho, wo) = self.output_size(h, w);
        let pixels = x.n * ho * wo;
        let shape = match x.shape {
            ActShape::Map { .. } => ActShape::Map { c: self.out_channels, h: ho, w: wo },
            ActShape::Vector(_) => ActShape::Vector(self.out_channels),
        };
        let threads = if pixels * self.patch_len() * self.out_channels < PARALLEL_MIN_MACS {
            1
        } else {
            rayon::current_num_threads()
        };
        let data = if pixels == 0 {
            Vec::new()
        } else if pixels >= threads * MIN_TILE_ROWS || self.out_channels < 2 * ROW_ALIGN {
            self.run_pixel_tiles(x, pixels, threads)
        } else {
            self.run_channel_blocks(x, pixels, threads)
        };
        Activation { n: x.n, shape, data }
    }

    /// Output pixels per tile: about [`TILE_ROWS`], at most
    /// [`MAX_TILE_VALUES`] of im2col, and a tile count that is a multiple of
    /// `threads` so that no core idles at the end of a small layer.
    fn tile_rows(&self, pixels: usize, threads: usize) -> usize {
        let target = TILE_ROWS.min(MAX_TILE_VALUES / self.patch_len().max(1)).max(MIN_TILE_ROWS);
        let tiles = pixels.div_ceil(target).next_multiple_of(threads);
        pixels.div_ceil(tiles).next_multiple_of(ROW_ALIGN)
    }

    /// Parallel over tiles of output pixels (sequential for one thread);
    /// each tile is one GEMM.
    fn run_pixel_tiles(&self, x: &Activation, pixels: usize, threads: usize) -> Vec<f32> {
        let (k, co) = (self.patch_len(), self.out_channels);
        let rows = self.tile_rows(pixels, threads);
        let weight = MatRef::new(&self.weight, k, co, co);
        let mut out = vec![0.0; pixels * co];
        let min_tiles_per_job = if threads == 1 { usize::MAX } else { 1 };
        let tiles = out.par_chunks_mut(rows * co).with_min_len(min_tiles_per_job);
        tiles.enumerate().for_each_init(Vec::new, |patches, (tile, dst)| {
            let first = tile * rows;
            let rows = dst.len() / co;
            let a = if self.reads_input_in_place() {
                &x.data[first * k..(first + rows) * k]
            } else {
                self.im2col(x, first..first + rows, patches);
                &patches[..rows * k]
            };
            matmul(MatMut::new(dst, rows, co, co), MatRef::new(a, rows, k, k), weight);
            unit::apply(&self.epilogue, dst, 0..co);
        });
        out
    }

    /// Parallel over blocks of output channels, for batches with few pixels:
    /// every block multiplies all pixels by a slice of the weight's columns.
    fn run_channel_blocks(&self, x: &Activation, pixels: usize, threads: usize) -> Vec<f32> {
        let (k, co) = (self.patch_len(), self.out_channels);
        let mut gathered = Vec::new();
        let a = if self.reads_input_in_place() {
            &x.data[..]
        } else {
            self.im2col(x, 0..pixels, &mut gathered);
            &gathered[..]
        };
        let a = MatRef::new(a, pixels, k, k);
        let width = co.div_ceil(threads).next_multiple_of(ROW_ALIGN);
        let blocks: Vec<Range<usize>> = (0..co).step_by(width).map(|lo| lo..(lo + width).min(co)).collect();
        let results: Vec<Vec<f32>> = blocks
            .par_iter()
            .map(|cols| {
                let mut dst = vec![0.0; pixels * cols.len()];
                let weight = MatRef::new(&self.weight[cols.start..], k, cols.len(), co);
                matmul(MatMut::new(&mut dst, pixels, cols.len(), cols.len()), a, weight);
                unit::apply(&self.epilogue, &mut dst, cols.clone());
                dst
            })
            .collect();
        let mut out = vec![0.0; pixels * co];
        for (cols, block) in blocks.iter().zip(&results) {
            for (row, part) in out.chunks_exact_mut(co).zip(block.chunks_exact(cols.len())) {
                row[cols.clone()].copy_from_slice(part);
            }
        }
        out
    }

    /// Writes the im2col rows of output pixels `range` (numbered across the
    /// batch) into `patches`: row `p` holds, for every kernel tap `(ky, kx)`
    /// in order, the `C` input channels under it, or zeros in the padding.
    fn im2col(&self, x: &Activation, range: Range<usize>, patches: &mut Vec<f32>) {
        let (h, w, c) = x.hwc();
        let (ho, wo) = self.output_size(h, w);
        let kw = self.kernel.1;
        let k = self.patch_len();
        if k == 0 {
            return;
        }
        if patches.len() < range.len() * k {
            patches.resize(range.len() * k, 0.0);
        }
        let pad = self.padding as isize;
        // The first pixel's position; later ones step through it without
        // the three divisions per pixel.
        let (mut image, mut oy, mut ox) = (range.start / (ho * wo), range.start / wo % ho, range.start % wo);
        for row in patches.chunks_exact_mut(k).take(range.len()) {
            let x0 = (ox * self.stride) as isize - pad;
            for (ky, span) in row.chunks_exact_mut(kw * c).enumerate() {
                let iy = (oy * self.stride + ky) as isize - pad;
                if iy < 0 || iy >= h as isize {
                    span.fill(0.0);
                    continue;
                }
                let line = (image * h + iy as usize) * w;
                if x0 >= 0 && x0 as usize + kw <= w {
                    let start = (line + x0 as usize) * c;
                    span.copy_from_slice(&x.data[start..start + kw * c]);
                    continue;
                }
                for (kx, channels) in span.chunks_exact_mut(c).enumerate() {
                    let ix = x0 + kx as isize;
                    if ix < 0 || ix >= w as isize {
                        channels.fill(0.0);
                    } else {
                        let start = (line + ix as usize) * c;
                        channels.copy_from_slice(&x.data[start..start + c]);
                    }
                }
            }
            ox += 1;
            if ox == wo {
                (ox, oy) = (0, oy + 1);
                if oy == ho {
                    (oy, image) = (0, image + 1);
                }
            }
        }
    }
}
