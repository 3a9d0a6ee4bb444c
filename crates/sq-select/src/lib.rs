//! Which units a layer keeps: step 2 (how many) and step 3 (which ones) of
//! squeeze, as pure functions of a layer's covariance matrix `C`.
//!
//! - [`keep_count`] turns a [`Budget`] into `k`: the number of principal
//!   components that retain a fraction `tau` of the variance (the layer's
//!   information content), a fraction of the width, or an explicit width.
//! - [`select_units`] picks `k` units with a [`Strategy`]. The objective is the
//!   variance of the whole layer that the kept units `S` explain linearly,
//!   `V(S) = trace(C[:,S] C[S,S]^-1 C[S,:])` ([`explained_variance`]), which
//!   is exactly what the least-squares reconstruction folded into the next
//!   layer can recover.
//! - [`select_layer`] does both and records the outcome as a
//!   [`LayerSelection`]; a [`Selection`] of layers is saved as JSON and can be
//!   replayed without the statistics.
//!
//! ```
//! use sq_linalg::Moments;
//! use sq_select::{select_layer, Budget, Strategy, Tau};
//!
//! // Four units over five samples; unit 3 is unit 0 plus unit 1.
//! let samples = [
//!     1.0f32, 0.0, 2.0, 1.0, /**/ 0.0, 1.0, 0.5, 1.0, /**/ 2.0, 1.0, 1.0, 3.0, //
//!     1.0, 3.0, 0.0, 4.0, /**/ 0.0, 0.0, 1.0, 0.0,
//! ];
//! let mut moments = Moments::new(4);
//! moments.update_f32(&samples, 5)?;
//! let cov = moments.covariance()?;
//!
//! // tau = 1 keeps the three independent units; the dependent one can go.
//! let layer = select_layer("features.0", &cov, Budget::Tau(Tau::new(1.0)?), Strategy::Eliminate, None)?;
//! assert_eq!(layer.k(), 3);
//! assert!(layer.retained_variance() > 1.0 - 1e-12);
//! assert_eq!(layer.removed().len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design choices
//!
//! - **Statistics in, indices out.** Nothing here knows about tensors,
//!   models or faer: the inputs are an `n x n` [`sq_linalg::Matrix`] (and, for
//!   the `l1` baseline, one weight norm per unit), the output is a sorted list
//!   of unit indices. Every dense factorization is delegated to `sq-linalg`,
//!   so this crate shares its single notion of "numerically zero".
//! - **Backward elimination is the default** ([`Strategy::Eliminate`]): it
//!   starts from the full layer and removes, one at a time, the unit whose
//!   removal loses the least explained variance, which is the paper's "remove
//!   the correlated neurons" read literally. It is written here by hand,
//!   with rank-one downdates of `C[S,S]^-1`, because it *is* the algorithm
//!   ([`elimination_order`] exposes every step for inspection).
//! - **`qr` is the cheap forward counterpart.** Pivoted Cholesky keeps, one
//!   at a time, the unit with the most variance of its own left unexplained.
//!   That is a proxy: the gain in `V(S)` also counts what the new unit
//!   explains of the others, which elimination's loss does measure exactly.
//! - **Singular covariances are the normal case.** Dead ReLU units have zero
//!   variance and some units are exact combinations of others. Elimination
//!   first finds a basis with pivoted Cholesky (the pass `qr` uses): units
//!   outside it cost nothing to remove, and only the basis, whose covariance
//!   is positive definite, goes through inverse-based arithmetic.
//! - **Deterministic ties.** Every strategy breaks exact ties in favour of
//!   keeping the unit with the lower index, so selections are reproducible.
//! - **Replay by indices, not by recomputation.** A saved selection stores
//!   the kept indices themselves (with the strategy and budget as a record of
//!   how they were chosen), and is validated when loaded.
#![deny(missing_docs)]

mod baselines;
mod budget;
mod covariance;
mod elimination;
mod error;
mod forward;
mod ranking;
mod selection;
mod strategy;

pub use budget::{keep_count, Budget, Tau};
pub use covariance::{explained_output_variance, explained_variance, retained_fraction, retained_output_fraction};
pub use elimination::{elimination_order, Removal};
pub use error::{Error, LayerDefect, Result};
pub use selection::{select_layer, LayerSelection, Selection, MAX_SELECTION};
pub use strategy::{eliminate_for_output, select_units, Strategy};
