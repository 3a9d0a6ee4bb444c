//! The crate's single notion of "numerically zero".

/// The round-off level of variances in an `n x n` covariance whose trace is
/// `trace`: variances (eigenvalues, residual variances, per-unit variances)
/// at or below it are treated as exactly zero throughout this crate. Use it
/// to classify units as dead or constant consistently with
/// [`Spectrum`](crate::Spectrum) and [`pivoted_cholesky`](crate::pivoted_cholesky).
///
/// Backward-stable factorizations of an `n x n` symmetric matrix `C` perturb
/// its eigenvalues and Schur complements by about `n * eps * ||C||`. This is
/// the form of the default rank tolerances of LAPACK's `xPSTRF`
/// (`n eps max_i C_ii`) and NumPy's `matrix_rank` (`n eps sigma_max`),
/// measured here against the trace, which bounds both for a PSD matrix and is
/// the scale the whole project reasons in (fractions of explained variance).
pub fn negligible_variance(n: usize, trace: f64) -> f64 {
    n.max(1) as f64 * f64::EPSILON * trace.max(0.0)
}
