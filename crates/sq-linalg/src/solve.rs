//! Ridge-guarded Cholesky solves and inverses of symmetric PSD matrices.

use faer::linalg::solvers::{DenseSolveCore as _, Llt, Solve as _};
use faer::Side;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::tolerance::negligible_variance;

/// Relative size of the first ridge tried, as a fraction of the mean
/// diagonal: far below any meaningful variance, far above round-off.
const FIRST_RIDGE_RELATIVE: f64 = 1e-10;

/// First ridge for a matrix with zero trace (then all of its entries are zero
/// if it is PSD, and any positive ridge works).
const FIRST_RIDGE_ABSOLUTE: f64 = 1e-12;

/// Number of ridges tried, each 10x the previous one: up to `1e-4` of the
/// mean diagonal. Pivots are trusted above `n eps trace`, i.e. `n^2 eps` of
/// the mean diagonal (`4e-9` at `n = 4096`), so a PSD matrix succeeds long
/// before; failing all of them means the matrix is indefinite beyond
/// round-off, and a larger ridge would change the answer rather than
/// stabilise it.
const RIDGE_STEPS: usize = 7;

/// The result of a ridge-guarded solve: the solution and the ridge `lambda`
/// that was added to the diagonal (`0.0` when the matrix was numerically
/// positive definite as given).
#[derive(Debug, Clone, PartialEq)]
pub struct Solve {
    /// The solution `X` of `(A + lambda I) X = B` (or the inverse).
    pub x: Matrix,
    /// The ridge `lambda` that was needed.
    pub ridge: f64,
}

/// Solves `A X = B` for a symmetric positive semi-definite `A` (`n x n`, only
/// its lower triangle is read) and `B` (`n x m`), by Cholesky.
///
/// Covariances of real activations are often singular (dead ReLU units give
/// zero rows, duplicated units give equal ones), so when `A` is not
/// numerically positive definite a ridge `lambda I` is added, starting at
/// `1e-10` of the mean diagonal (`1e-12` if the trace is zero) and growing 10x
/// until Cholesky succeeds with every pivot above round-off, at most six
/// times ([`Error::NotPositiveSemidefinite`] beyond that). The ridged
/// solution is finite, and for `B` in the range of `A` it still satisfies
/// `A X ~ B` to within `lambda |X|`. The ridge used is reported.
pub fn solve_spd(a: &Matrix, b: &Matrix) -> Result<Solve> {
    let n = a.ensure_square()?;
    if b.rows() != n {
        return Err(Error::DimensionMismatch { what: "solve right-hand side rows", expected: n, found: b.rows() });
    }
    b.ensure_finite()?;
    let (llt, ridge) = ridged_cholesky(a)?;
    let mut x = b.clone();
    llt.solve_in_place(x.view_mut());
    Ok(Solve { x, ridge })
}

/// The inverse of a symmetric PSD matrix, with the same ridge policy as
/// [`solve_spd`]: `(A + lambda I)^-1`, exactly symmetric.
pub fn inverse_spd(a: &Matrix) -> Result<Solve> {
    let (llt, ridge) = ridged_cholesky(a)?;
    Ok(Solve { x: Matrix::from_faer(llt.inverse().as_ref()), ridge })
}

/// Cholesky of `A + lambda I` for the smallest `lambda` in the ridge ladder
/// (starting with 0) that gives a trustworthy factor.
fn ridged_cholesky(a: &Matrix) -> Result<(Llt<f64>, f64)> {
    let n = a.ensure_square()?;
    a.ensure_finite()?;
    let mean_diagonal = a.trace() / n as f64;
    let first = if mean_diagonal > 0.0 { FIRST_RIDGE_RELATIVE * mean_diagonal } else { FIRST_RIDGE_ABSOLUTE };
    let ladder = std::iter::successors(Some(first), |r| Some(r * 10.0)).take(RIDGE_STEPS);
    let mut ridge = 0.0;
    for candidate in std::iter::once(0.0).chain(ladder) {
        ridge = candidate;
        if let Some(llt) = trustworthy_cholesky(a, ridge) {
            return Ok((llt, ridge));
        }
    }
    Err(Error::NotPositiveSemidefinite { ridge })
}

/// Cholesky of `A + ridge I`, or `None` if it fails or if some pivot is
/// numerically zero ([`negligible_variance`]). A pivot `L_jj^2` is the
/// variance of unit `j` left unexplained by units `0..j`; at round-off level
/// it means `j` is a linear combination of them, and solving with such a
/// factor would amplify round-off into a huge, meaningless `X`.
fn trustworthy_cholesky(a: &Matrix, ridge: f64) -> Option<Llt<f64>> {
    let n = a.rows();
    let mut shifted = a.view().to_owned();
    for i in 0..n {
        shifted[(i, i)] += ridge;
    }
    let llt = shifted.llt(Side::Lower).ok()?;
    let l = llt.L();
    let zero = negligible_variance(n, a.trace() + n as f64 * ridge);
    (0..n).all(|j| l[(j, j)] * l[(j, j)] > zero).then_some(llt)
}
