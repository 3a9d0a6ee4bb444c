//! [`Moments`]: streaming, mergeable first and second moments of samples.

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatRef, Par};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::tolerance::negligible_variance;

/// How many values of a batch are converted to `f64` per Gram product
/// (256 KiB of `f64`), so that the product reads its operand back from the
/// L2 cache: converting whole batches at once made the Gram update of
/// narrow layers memory-bound with two threads.
const CHUNK_VALUES: usize = 1 << 15;

/// Fewest rows per Gram product however wide the samples are, so that a
/// product is long enough in its inner dimension to run at full speed (at
/// 512 units, 1 MiB of `f64`).
const MIN_CHUNK_ROWS: usize = 256;

/// Fewest rows of a batch worth a thread of their own in the Gram update.
/// A thread's partial result costs three passes over an `n x n` matrix
/// (zero, accumulate, add back) against `rows` multiply-adds per entry
/// of it, so the break-even point does not depend on `n`: a few
/// dozen rows (`gram/update_f32/512x2x2` in the statistics bench, 256 rows
/// of 512 units: 1.0 ms split over two threads, 1.6 ms on one).
const MIN_ROWS_PER_THREAD: usize = 64;

/// Values converted to `f64` and summed per block (32 KiB of `f64`), so
/// that the column sums read the block back from the L1 cache.
const BLOCK_VALUES: usize = 1 << 12;

/// Sufficient statistics of a stream of `n`-dimensional samples: the count
/// `N`, the sum `s = sum x` and the Gram matrix `G = sum x x^T`, all in `f64`.
///
/// These are raw (uncentred) sums, so statistics over disjoint shards of data
/// add up exactly and can be computed anywhere and [`merge`](Self::merge)d.
/// Only the lower triangle of `G` is accumulated (half the flops of a full
/// `X^T X`); [`gram`](Self::gram) assembles the symmetric matrix on demand.
/// The price is cancellation in `G/N - mu mu^T`: a unit's covariance entries
/// carry a relative error of about `eps * (1 + (mean / std)^2)`, harmless in
/// `f64` for activations that were computed in `f32` in the first place.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    count: u64,
    sum: Vec<f64>,
    /// Lower triangle of `G`, diagonal included; the strict upper triangle
    /// stays zero.
    gram_lower: Matrix,
}

impl Moments {
    /// Empty statistics for `n`-dimensional samples.
    pub fn new(n: usize) -> Self {
        Self { count: 0, sum: vec![0.0; n], gram_lower: Matrix::zeros(n, n) }
    }

    /// Rebuilds statistics from stored parts (e.g. loaded from disk); fails
    /// unless `sum` has length `n` and `gram` is `n x n`. `gram` must be
    /// symmetric: only its lower triangle is kept.
    pub fn from_parts(count: u64, sum: Vec<f64>, gram: Matrix) -> Result<Self> {
        let n = gram.ensure_square()?;
        if sum.len() != n {
            return Err(Error::DimensionMismatch { what: "moments sum length", expected: n, found: sum.len() });
        }
        let mut gram_lower = gram;
        for i in 0..n {
            for j in i + 1..n {
                gram_lower[(i, j)] = 0.0;
            }
        }
        Ok(Self { count, sum, gram_lower })
    }

    /// Dimension `n` of the samples.
    pub fn dim(&self) -> usize {
        self.sum.len()
    }

    /// Number of samples accumulated, `N`.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the samples, `s` (length `n`).
    pub fn sum(&self) -> &[f64] {
        &self.sum
    }

    /// Gram matrix `G = sum x x^T` (`n x n`, exactly symmetric), assembled
    /// from the stored lower triangle.
    pub fn gram(&self) -> Matrix {
        let mut g = self.gram_lower.clone();
        for i in 0..g.rows() {
            for j in 0..i {
                g[(j, i)] = g[(i, j)];
            }
        }
        g
    }

    /// Adds a batch of samples: `batch` is row-major `rows x n`, one sample
    /// per row (a conv activation in NHWC order, or `N x features`).
    ///
    /// The Gram update is a symmetric rank-`rows` product `G += X^T X` on the
    /// lower triangle, never a loop over samples: the rows are split into
    /// contiguous runs (at most one per thread, at least 64 rows each),
    /// each run is one sequential faer product per cache-sized chunk of
    /// rows, and the runs' results are added. The batch is
    /// rejected as a whole, leaving the statistics untouched, if its length
    /// is not `rows * n` or if it contains NaN or infinity (which would
    /// silently poison every later statistic).
    pub fn update_f32(&mut self, batch: &[f32], rows: usize) -> Result<()> {
        let n = self.dim();
        if rows.checked_mul(n) != Some(batch.len()) {
            return Err(Error::DimensionMismatch {
                what: "batch length (rows * dim)",
                expected: rows.saturating_mul(n),
                found: batch.len(),
            });
        }
        if n == 0 || rows == 0 {
            self.count += rows as u64;
            return Ok(());
        }
        // Contiguous runs of rows, one per thread, each accumulated into
        // moments of its own by sequential products: the threads never wait
        // on each other, whatever the shape (a parallel product with a
        // 64 x 64 result would mostly synchronise). The runs are then
        // merged, one `n x n` pass each.
        let pieces = (rows / MIN_ROWS_PER_THREAD).clamp(1, rayon::current_num_threads());
        let piece_rows = rows.div_ceil(pieces);
        let partials: Vec<Moments> = batch.par_chunks(piece_rows * n).map(|piece| Moments::of_rows(piece, n)).collect();
        // As sums of `f32` values in `f64` the column sums cannot overflow,
        // so they are all finite exactly when the batch is: the batch is
        // validated before anything is committed.
        if !partials.iter().all(|p| p.sum.iter().all(|s| s.is_finite())) {
            return Err(Error::NonFinite);
        }
        for partial in &partials {
            self.merge(partial)?;
        }
        Ok(())
    }

    /// The moments of the row-major `rows x n` samples `batch` (`n > 0`), on
    /// the calling thread: one sequential Gram product per [`CHUNK_VALUES`]
    /// values, converted to `f64` a block at a time, the column sums taken
    /// from each block while it is still in cache.
    fn of_rows(batch: &[f32], n: usize) -> Moments {
        let mut moments = Moments::new(n);
        let chunk_rows = (CHUNK_VALUES / n).max(MIN_CHUNK_ROWS);
        let block_rows = (BLOCK_VALUES / n).max(1);
        let mut x64 = Vec::with_capacity(chunk_rows.min(batch.len() / n) * n);
        for chunk in batch.chunks(chunk_rows * n) {
            // Appended a block at a time, never zeroed first: zeroing would
            // cost as much memory traffic as the conversion.
            x64.clear();
            for block in chunk.chunks(block_rows * n) {
                let start = x64.len();
                x64.extend(block.iter().map(|&v| f64::from(v)));
                for sample in x64[start..].chunks_exact(n) {
                    for (s, v) in moments.sum.iter_mut().zip(sample) {
                        *s += v;
                    }
                }
            }
            let x = MatRef::from_row_major_slice(&x64, chunk.len() / n, n);
            triangular::matmul(
                moments.gram_lower.view_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                x.transpose(),
                BlockStructure::Rectangular,
                x,
                BlockStructure::Rectangular,
                1.0,
                Par::Seq,
            );
        }
        moments.count = (batch.len() / n) as u64;
        moments
    }

    /// Adds the statistics of a disjoint shard of data; the result equals the
    /// statistics of the concatenated data up to floating-point round-off.
    pub fn merge(&mut self, other: &Moments) -> Result<()> {
        if other.dim() != self.dim() {
            return Err(Error::DimensionMismatch {
                what: "moments dimension",
                expected: self.dim(),
                found: other.dim(),
            });
        }
        self.count += other.count;
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        faer::zip!(self.gram_lower.view_mut(), other.gram_lower.view()).for_each(|faer::unzip!(a, b)| *a += *b);
        Ok(())
    }

    /// Sample mean `mu = s / N`.
    pub fn mean(&self) -> Result<Vec<f64>> {
        let n = self.nonzero_count()?;
        Ok(self.sum.iter().map(|s| s / n).collect())
    }

    /// Population covariance `C = G/N - mu mu^T`, exactly symmetric, with
    /// round-off-negative variances on the diagonal clamped to zero.
    pub fn covariance(&self) -> Result<Matrix> {
        let count = self.nonzero_count()?;
        let mu = self.mean()?;
        let n = self.dim();
        let mut c = Matrix::zeros(n, n);
        for i in 0..n {
            for j in 0..i {
                let v = self.gram_lower[(i, j)] / count - mu[i] * mu[j];
                c[(i, j)] = v;
                c[(j, i)] = v;
            }
            c[(i, i)] = (self.gram_lower[(i, i)] / count - mu[i] * mu[i]).max(0.0);
        }
        Ok(c)
    }

    /// Pearson correlation matrix.
    ///
    /// Units whose variance is numerically zero (constant or dead units) have
    /// no defined correlation; they get 1 on the diagonal and 0 elsewhere, so
    /// the result is still a valid correlation matrix. The result is exactly
    /// symmetric, with entries clamped to `[-1, 1]` against round-off.
    pub fn correlation(&self) -> Result<Matrix> {
        let mut c = self.covariance()?;
        let n = self.dim();
        let zero = negligible_variance(n, c.trace());
        let scale: Vec<f64> = (0..n)
            .map(|i| {
                let v = c[(i, i)];
                if v > zero {
                    v.sqrt().recip()
                } else {
                    0.0
                }
            })
            .collect();
        for i in 0..n {
            for j in 0..i {
                let r = (c[(i, j)] * (scale[i] * scale[j])).clamp(-1.0, 1.0);
                c[(i, j)] = r;
                c[(j, i)] = r;
            }
            c[(i, i)] = 1.0;
        }
        Ok(c)
    }

    /// `N` as `f64`, or [`Error::NoSamples`] when it is zero.
    fn nonzero_count(&self) -> Result<f64> {
        match self.count {
            0 => Err(Error::NoSamples),
            n => Ok(n as f64),
        }
    }
}
