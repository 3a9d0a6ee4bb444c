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

pub use budget::{keep_count, Budget};
pub use covariance::{explained_variance, retained_fraction};
pub use elimination::{elimination_order, Removal};
pub use error::{Error, LayerDefect, Result};
pub use selection::{select_layer, LayerSelection, Selection};
pub use strategy::{select_units, Strategy};
