//! Greedy forward selection of units: pivoted Cholesky on a covariance, and
//! the equivalent column-pivoted QR on centred data.

use faer::prelude::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, Par};

use crate::error::Result;
use crate::matrix::Matrix;
use crate::tolerance::negligible_variance;

/// Greedy forward selection on a symmetric PSD matrix `c` (a covariance):
/// repeatedly picks the unit with the largest residual variance, i.e. the
/// largest diagonal entry of the Schur complement of the units picked so far.
///
/// Stops after `k` picks (`k` is capped at `n`) or as soon as every remaining
/// residual variance is numerically zero relative to the trace, and returns
/// the picked indices in pick order; the number returned is thus at most the
/// numerical rank of `c`. Ties go to the lowest index.
///
/// In exact arithmetic this is the pivot order of QR with column pivoting on
/// the centred data ([`col_piv_qr_order`]), found from the `n x n` covariance
/// instead of the samples. It is a right-looking partial Cholesky that stops
/// early: `O(n k^2)` time and `O(n k)` memory. `c` must be symmetric; its
/// rows are read as columns.
pub fn pivoted_cholesky(c: &Matrix, k: usize) -> Result<Vec<usize>> {
    let n = c.ensure_square()?;
    c.ensure_finite()?;
    let k = k.min(n);
    let mut residual: Vec<f64> = (0..n).map(|i| c[(i, i)].max(0.0)).collect();
    let zero = negligible_variance(n, residual.iter().sum());
    let mut picked = vec![false; n];
    let mut order = Vec::with_capacity(k);
    // The first `order.len()` columns of the Cholesky factor of `c[order, order]`
    // extended to all rows: after step j, residual[i] = c_ii - |L[i, ..=j]|^2.
    let mut factor = Mat::<f64>::zeros(n, k);
    for j in 0..k {
        let mut best: Option<(usize, f64)> = None;
        for (i, &r) in residual.iter().enumerate() {
            if !picked[i] && best.is_none_or(|(_, b)| r > b) {
                best = Some((i, r));
            }
        }
        let Some((p, pivot)) = best.filter(|&(_, r)| r > zero) else {
            break;
        };
        picked[p] = true;
        order.push(p);

        // New column: (c[:, p] - L[:, :j] L[p, :j]^T) / sqrt(pivot).
        let (done, rest) = factor.split_at_col_mut(j);
        let mut col = rest.col_mut(0);
        for (dst, &src) in col.rb_mut().iter_mut().zip(c.row(p)) {
            *dst = src;
        }
        faer::linalg::matmul::matmul(
            col.rb_mut().as_mat_mut(),
            Accum::Add,
            done.rb(),
            done.rb().row(p).transpose().as_mat(),
            -1.0,
            Par::Seq,
        );
        let scale = pivot.sqrt().recip();
        for (i, l) in col.iter_mut().enumerate() {
            *l *= scale;
            residual[i] -= *l * *l;
        }
    }
    Ok(order)
}

/// Column order chosen by faer's QR with column pivoting (Businger-Golub:
/// largest remaining column norm first) on a `samples x units` data matrix.
///
/// Returns a permutation of all `units` column indices. On centred data its
/// prefix up to the numerical rank is the selection order of
/// [`pivoted_cholesky`] on the covariance, computed from the samples
/// themselves (better conditioned, but `O(samples * units^2)`); past the
/// numerical rank, the order is determined by round-off.
pub fn col_piv_qr_order(data: &Matrix) -> Result<Vec<usize>> {
    data.ensure_finite()?;
    let qr = data.view().col_piv_qr();
    Ok(qr.P().arrays().0.to_vec())
}
