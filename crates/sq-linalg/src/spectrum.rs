//! Eigenvalues of covariances: [`Spectrum`] (explained variance, `k(tau)`)
//! and the general [`eigen_symmetric`].

use faer::Side;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::tolerance::negligible_variance;

/// The eigenvalues of a covariance matrix in descending order: the variance
/// carried by each principal component.
///
/// Eigenvalues at or below the round-off level of the covariance
/// (`n * eps * trace`) are stored as exactly `0.0`. Those include the tiny
/// negative values that a PSD matrix acquires in floating point, and the
/// tiny positive ones that exact linear dependencies (duplicate or dead units)
/// leave behind. This makes the numerical rank explicit: it is the number of
/// nonzero eigenvalues, and [`k_for(1.0)`](Self::k_for) returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    eigenvalues: Vec<f64>,
    total: f64,
}

impl Spectrum {
    /// Computes the spectrum of a symmetric PSD matrix (only its lower
    /// triangle is read) with faer's self-adjoint eigensolver.
    pub fn from_covariance(c: &Matrix) -> Result<Spectrum> {
        let n = c.ensure_square()?;
        c.ensure_finite()?;
        let mut eigenvalues = c.view().self_adjoint_eigenvalues(Side::Lower).map_err(|_| Error::NoConvergence)?;
        eigenvalues.reverse();
        let zero = negligible_variance(n, c.trace());
        for l in &mut eigenvalues {
            if *l <= zero {
                *l = 0.0;
            }
        }
        // Summed in the same (descending) order as the prefix sums of
        // `k_for`, so the prefix up to the last nonzero eigenvalue equals the
        // total exactly.
        let total = eigenvalues.iter().sum();
        Ok(Spectrum { eigenvalues, total })
    }

    /// Eigenvalues, descending, all `>= 0`.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// Total variance: the sum of the eigenvalues, i.e. `trace(C)` up to
    /// round-off.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Entry `i` is the fraction of the total variance carried by the top
    /// `i + 1` components; non-decreasing, and the last entry is exactly 1.
    /// When the total is zero there is nothing to explain and every entry is 1.
    pub fn cumulative_explained(&self) -> Vec<f64> {
        if self.total == 0.0 {
            return vec![1.0; self.eigenvalues.len()];
        }
        self.eigenvalues
            .iter()
            .scan(0.0, |acc, l| {
                *acc += l;
                Some(*acc / self.total)
            })
            .collect()
    }

    /// The smallest `k` whose top-`k` eigenvalues sum to at least
    /// `tau * total`, for `tau` in `(0, 1]`.
    ///
    /// `k_for(1.0)` is the numerical rank; a zero spectrum (no variance at
    /// all, or `n = 0`) gives `k = 0` for every `tau`.
    pub fn k_for(&self, tau: f64) -> Result<usize> {
        if !(tau > 0.0 && tau <= 1.0) {
            return Err(Error::InvalidParameter { name: "tau", value: tau });
        }
        let target = tau * self.total;
        let mut acc = 0.0;
        for (i, l) in self.eigenvalues.iter().enumerate() {
            if acc >= target {
                return Ok(i);
            }
            acc += l;
        }
        Ok(self.eigenvalues.len())
    }
}

/// Full eigendecomposition of a symmetric matrix (only its lower triangle is
/// read): eigenvalues in descending order, and the matching orthonormal
/// eigenvectors as the columns of the returned matrix, so that
/// `A = V diag(values) V^T`. Eigenvalues are returned as computed (no
/// clamping), unlike [`Spectrum`].
pub fn eigen_symmetric(a: &Matrix) -> Result<(Vec<f64>, Matrix)> {
    let n = a.ensure_square()?;
    a.ensure_finite()?;
    if n == 0 {
        // faer 0.24.4 underflows computing its scratch size for n = 0.
        return Ok((Vec::new(), Matrix::zeros(0, 0)));
    }
    let eig = a.view().self_adjoint_eigen(Side::Lower).map_err(|_| Error::NoConvergence)?;
    let s = eig.S().column_vector();
    let values = (0..n).rev().map(|i| s[i]).collect();
    let vectors = Matrix::from_faer(eig.U().reverse_cols());
    Ok((values, vectors))
}
