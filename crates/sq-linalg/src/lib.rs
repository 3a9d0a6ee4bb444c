//! Dense linear algebra for `squeeze`, the only crate of the project that does
//! any.
//!
//! The method needs four things from linear algebra, one module each:
//!
//! - [`Moments`]: streaming, mergeable sufficient statistics (count, sum,
//!   Gram matrix) of a layer's outputs, and from them the covariance `C`.
//!   The Gram matrix is updated with symmetric matrix products, one per
//!   thread's run of a batch's rows, never per sample.
//! - [`Spectrum`]: the eigenvalues of `C`, the explained-variance curve, and
//!   `k(tau)`, the number of principal components that retain a fraction
//!   `tau` of the variance (how many units a layer keeps).
//! - [`pivoted_cholesky`]: greedy forward selection of units on `C`
//!   (equivalently QR with column pivoting on the centred data, see
//!   [`col_piv_qr_order`]).
//! - [`solve_spd`] / [`inverse_spd`]: `C[S,S]^-1` solves for the
//!   least-squares reconstruction of removed units, made robust to the
//!   singular covariances that dead or duplicated units produce.
//!
//! ```
//! use sq_linalg::{pivoted_cholesky, solve_spd, Moments, Spectrum};
//!
//! // Four samples of three units; unit 2 is unit 0 plus unit 1.
//! let batch = [1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 3.0, 1.0, 4.0, 2.0, 1.0, 3.0];
//! let mut stats = Moments::new(3);
//! stats.update_f32(&batch, 4)?;
//! let c = stats.covariance()?;
//!
//! let k = Spectrum::from_covariance(&c)?.k_for(1.0)?;
//! assert_eq!(k, 2); // two independent directions
//! let kept = pivoted_cholesky(&c, k)?;
//! assert_eq!(kept.len(), 2);
//! let removed: Vec<usize> = (0..3).filter(|i| !kept.contains(i)).collect();
//!
//! // Least-squares map from kept to removed units: B^T = C[S,S]^-1 C[S,R].
//! let b_t = solve_spd(&c.select(&kept, &kept)?, &c.select(&kept, &removed)?)?;
//! assert_eq!(b_t.ridge, 0.0);
//! # Ok::<(), sq_linalg::Error>(())
//! ```
//!
//! # Design choices
//!
//! - **faer stays inside.** The public API speaks only in the crate's own
//!   small [`Matrix`] (dense, row-major `f64`), slices and `Vec`s. faer does
//!   all the heavy lifting on zero-copy views of those buffers, but its types
//!   never leak, so callers do not depend on its (fast-moving) API.
//! - **`f64` throughout.** Activations arrive as `f32`; statistics are
//!   accumulated and factorized in `f64`, because the covariance is a
//!   difference of large sums and its small eigenvalues decide the rank.
//! - **One notion of "numerically zero".** Eigenvalues, residual variances
//!   and unit variances at or below `n * eps * trace(C)`
//!   ([`negligible_variance`]) are treated as exactly zero everywhere: dead
//!   units, the numerical rank of a [`Spectrum`] (`k_for(1.0)`) and the point
//!   where [`pivoted_cholesky`] stops all use the same threshold.
//! - **Robust solves.** Singular covariances are the norm (dead ReLU units),
//!   so solves add the smallest sufficient ridge and report it rather than
//!   failing or silently returning huge coefficients.
//! - **Errors, not panics.** Shape mismatches, out-of-range index lists and
//!   non-finite inputs return [`Error`]; only plain indexing (`m[(i, j)]`,
//!   [`Matrix::row`]) panics out of bounds, as slices do.
//! - **Parallelism is faer's.** Large products run on the global rayon pool
//!   (`Par::rayon(0)`) and faer decides by size whether to split them; the
//!   `O(n^2)` bookkeeping around them stays sequential.
#![deny(missing_docs)]

mod error;
mod matrix;
mod moments;
mod pivoting;
mod solve;
mod spectrum;
mod tolerance;

pub use error::{Error, Result};
pub use matrix::Matrix;
pub use moments::Moments;
pub use pivoting::{col_piv_qr_order, pivoted_cholesky};
pub use solve::{inverse_spd, solve_spd, Solve};
pub use spectrum::{eigen_symmetric, Spectrum};
pub use tolerance::negligible_variance;
