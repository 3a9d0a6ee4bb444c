//! Greedy forward selection of units: pivoted Cholesky on a covariance, and
//! the equivalent column-pivoted QR on centred data.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

use crate::error::Result;
use crate::matrix::Matrix;
use crate::tolerance::negligible_variance;

/// Number of columns [`pivoted_cholesky`] factors per panel before it
/// updates the trailing Schur complement. A panel column costs
/// `O(n PANEL)` at memory speed (it reads the panel's earlier columns), and
/// the update that ends a panel is one rank-`PANEL` product at
/// matrix-multiply speed, faster per flop the wider the panel. Timed at
/// `n = k = 4096` on two cores, 32 and 64 were about 40% and 15% slower
/// than 128, and 192 or 256 no faster; 128 is also the block size of faer's
/// own pivoted Cholesky.
const PANEL: usize = 128;

/// Greedy forward selection on a symmetric PSD matrix `c` (a covariance):
/// repeatedly picks the unit with the largest residual variance, i.e. the
/// largest diagonal entry of the Schur complement of the units picked so far.
///
/// Stops after `k` picks (`k` is capped at `n`) or as soon as every remaining
/// residual variance is numerically zero relative to the trace, and returns
/// the picked indices in pick order; the number returned is thus at most the
/// numerical rank of `c`. Exact ties go to the lowest index.
///
/// In exact arithmetic this is the pivot order of QR with column pivoting on
/// the centred data ([`col_piv_qr_order`]), found from the `n x n` covariance
/// instead of the samples. It is a blocked partial Cholesky with symmetric
/// pivoting, as LAPACK's `dpstrf`: the picks are factored in panels of 128
/// columns, each column being the pivot's column of the trailing
/// Schur complement minus the contribution of the panel's earlier columns
/// (`O(128 n)`), and after each panel the trailing Schur complement is
/// updated with one symmetric rank-128 product. That is `O(n^2 k)` time,
/// nearly all of it in matrix products that run at matrix-multiply speed
/// (and in parallel), and `O(n^2)` memory: an `n x n` working copy of `c`,
/// whose rows and columns are swapped so that the trailing block stays
/// contiguous. At `n = k = 4096` that is about 15x faster than an
/// unblocked pass (`O(n k^2)` at memory speed); for `k` well below `n` the
/// copy and the swaps cost more than they save, but then both are fast
/// (about 0.6 ms instead of 0.3 ms at `n = 512`, `k = 55`). `c` must be
/// symmetric; its rows are read as columns.
pub fn pivoted_cholesky(c: &Matrix, k: usize) -> Result<Vec<usize>> {
    let n = c.ensure_square()?;
    c.ensure_finite()?;
    let k = k.min(n);
    // Column-major working copy (`c` is symmetric, so its row-major buffer
    // will do). Position `j` holds unit `units[j]`. Columns before the
    // current one hold the Cholesky factor of the picks (rows below the
    // diagonal); from the current panel on, the lower triangle holds the
    // Schur complement of the picks before the panel.
    let mut a = c.as_slice().to_vec();
    let mut units: Vec<usize> = (0..n).collect();
    // residual[j] = c_jj - |L[j, ..]|^2 for the unit at position j.
    let mut residual: Vec<f64> = (0..n).map(|i| c[(i, i)].max(0.0)).collect();
    let zero = negligible_variance(n, residual.iter().sum());
    let mut j = 0;
    'panels: while j < k {
        let start = j;
        let end = (start + PANEL).min(k);
        while j < end {
            // Largest residual, lowest unit on exact ties.
            let mut p = j;
            for i in j + 1..n {
                if residual[i] > residual[p] || (residual[i] == residual[p] && units[i] < units[p]) {
                    p = i;
                }
            }
            let pivot = residual[p];
            if pivot.is_nan() || pivot <= zero {
                break 'panels;
            }
            swap_positions(&mut a, n, start, j, p);
            units.swap(j, p);
            residual.swap(j, p);
            factor_column(&mut a, n, start, j, pivot, &mut residual);
            j += 1;
        }
        if j < k {
            update_trailing(&mut a, n, start, j);
        }
    }
    units.truncate(j);
    Ok(units)
}

/// Swaps positions `j <= p` of the working matrix `a` (column-major
/// `n x n`) of [`pivoted_cholesky`] whose current panel starts at `start`:
/// rows `j` and `p` of the panel's factored columns `start..j`, and a
/// symmetric swap of rows and columns `j` and `p` in the lower triangle of
/// the trailing block (positions `j..`). Earlier panels' columns are never
/// read again, so they are left as they are.
fn swap_positions(a: &mut [f64], n: usize, start: usize, j: usize, p: usize) {
    if j == p {
        return;
    }
    for col in start..j {
        a.swap(col * n + j, col * n + p);
    }
    a.swap(j * n + j, p * n + p);
    // (i, j) <-> (p, i) between the two; (p, j) stays where it is.
    for i in j + 1..p {
        a.swap(j * n + i, i * n + p);
    }
    // (i, j) <-> (i, p) below both.
    for i in p + 1..n {
        a.swap(j * n + i, p * n + i);
    }
}

/// Computes column `j` of the Cholesky factor in place, for the pivot
/// already swapped into position `j` with residual variance `pivot`:
/// `(S[j+1.., j] - L[j+1.., start..j] L[j, start..j]^T) / sqrt(pivot)`,
/// where `S` is the Schur complement at the start of the panel, and
/// subtracts its squares from the residual variances below.
fn factor_column(a: &mut [f64], n: usize, start: usize, j: usize, pivot: f64, residual: &mut [f64]) {
    let (left, right) = a.split_at_mut(j * n);
    let panel = MatRef::from_column_major_slice(&left[start * n..], n, j - start);
    let col = &mut right[..n];
    if j > start {
        matmul(
            MatMut::from_column_major_slice_mut(&mut col[j + 1..], n - j - 1, 1),
            Accum::Add,
            panel.subrows(j + 1, n - j - 1),
            panel.row(j).transpose().as_mat(),
            -1.0,
            Par::Seq,
        );
    }
    let root = pivot.sqrt();
    col[j] = root;
    let scale = root.recip();
    for (l, r) in col[j + 1..].iter_mut().zip(&mut residual[j + 1..]) {
        *l *= scale;
        *r -= *l * *l;
    }
}

/// Applies the panel of columns `start..end` to the lower triangle of the
/// trailing block (positions `end..`) as one symmetric rank-`(end - start)`
/// product: `S -= L[end.., start..end] L[end.., start..end]^T`.
fn update_trailing(a: &mut [f64], n: usize, start: usize, end: usize) {
    let (left, right) = a.split_at_mut(end * n);
    let panel = MatRef::from_column_major_slice(&left[start * n..], n, end - start).subrows(end, n - end);
    let trailing = MatMut::from_column_major_slice_mut(right, n, n - end).subrows_mut(end, n - end);
    triangular::matmul(
        trailing,
        BlockStructure::TriangularLower,
        Accum::Add,
        panel,
        BlockStructure::Rectangular,
        panel.transpose(),
        BlockStructure::Rectangular,
        -1.0,
        Par::rayon(0),
    );
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
