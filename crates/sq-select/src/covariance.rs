//! What a set of kept units explains of a layer's covariance: the objective
//! that every selection strategy optimises or is measured by.

use sq_linalg::{solve_spd, Matrix};

use crate::error::Result;

/// The variance of the whole layer explained linearly by the units `kept`:
/// `V(S) = trace(C[:,S] C[S,S]^-1 C[S,:])`.
///
/// This is the total variance of the least-squares reconstruction of every
/// unit from the kept ones, i.e. `trace(C)` minus the residual variance that
/// compensation cannot recover. `C[S,S]` is solved with `sq-linalg`'s
/// ridge-guarded Cholesky, so dependent or dead kept units are harmless.
/// An empty `kept` explains nothing.
pub fn explained_variance(cov: &Matrix, kept: &[usize]) -> Result<f64> {
    let n = check(cov)?;
    if kept.is_empty() {
        return Ok(0.0);
    }
    let all: Vec<usize> = (0..n).collect();
    let c_sa = cov.select(kept, &all)?;
    let x = solve_spd(&cov.select(kept, kept)?, &c_sa)?.x;
    // trace(C[:,S] X) with X = C[S,S]^-1 C[S,:], and C[:,S] = C[S,:]^T.
    Ok(c_sa.as_slice().iter().zip(x.as_slice()).map(|(c, x)| c * x).sum())
}

/// The fraction of the layer's variance that `kept` explains,
/// `V(S) / trace(C)`, clamped to `[0, 1]` against round-off. A layer without
/// variance is fully explained by anything: the fraction is then `1.0`.
pub fn retained_fraction(cov: &Matrix, kept: &[usize]) -> Result<f64> {
    let explained = explained_variance(cov, kept)?;
    let total = trace(cov);
    Ok(if total > 0.0 { (explained / total).clamp(0.0, 1.0) } else { 1.0 })
}

/// The variance of the consumer's output that the kept units explain, for
/// the output-weighted objective of
/// [`eliminate_for_output`](crate::eliminate_for_output):
/// `trace(Q C[:,S] C[S,S]^-1 C[S,:])`, with `Q` (`n x n`) how strongly the
/// consumer reads each pair of units. `Q = I` gives [`explained_variance`].
pub fn explained_output_variance(cov: &Matrix, weight: &Matrix, kept: &[usize]) -> Result<f64> {
    let n = check(cov)?;
    if weight.rows() != n || weight.cols() != n {
        return Err(
            sq_linalg::Error::DimensionMismatch { what: "output weight", expected: n, found: weight.rows() }.into()
        );
    }
    if kept.is_empty() {
        return Ok(0.0);
    }
    let all: Vec<usize> = (0..n).collect();
    let c_sa = cov.select(kept, &all)?;
    let x = solve_spd(&cov.select(kept, kept)?, &c_sa)?.x;
    // trace(Q C[:,S] X) = sum over (s, i) of (C[S,:] Q)[s,i] X[s,i].
    let z = c_sa.matmul(weight)?;
    Ok(z.as_slice().iter().zip(x.as_slice()).map(|(z, x)| z * x).sum())
}

/// The fraction of the consumer's output variance that `kept` explains,
/// [`explained_output_variance`] over `trace(Q C)`, clamped to `[0, 1]`;
/// `1.0` when the consumer's output has no variance.
pub fn retained_output_fraction(cov: &Matrix, weight: &Matrix, kept: &[usize]) -> Result<f64> {
    let explained = explained_output_variance(cov, weight, kept)?;
    // trace(Q C) for symmetric Q and C is the sum of their entrywise product.
    let total: f64 = cov.as_slice().iter().zip(weight.as_slice()).map(|(c, q)| c * q).sum();
    Ok(if total > 0.0 { (explained / total).clamp(0.0, 1.0) } else { 1.0 })
}

/// Checks that `cov` is a finite square matrix and returns its size.
pub(crate) fn check(cov: &Matrix) -> Result<usize> {
    if cov.rows() != cov.cols() {
        return Err(sq_linalg::Error::NotSquare { rows: cov.rows(), cols: cov.cols() }.into());
    }
    if !cov.as_slice().iter().all(|x| x.is_finite()) {
        return Err(sq_linalg::Error::NonFinite.into());
    }
    Ok(cov.rows())
}

/// The variance of unit `i`, `C_ii`.
pub(crate) fn variance(cov: &Matrix, i: usize) -> f64 {
    cov[(i, i)]
}

/// The total variance of the layer, `trace(C)`.
fn trace(cov: &Matrix) -> f64 {
    (0..cov.rows()).map(|i| variance(cov, i)).sum()
}
