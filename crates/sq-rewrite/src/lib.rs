//! Model surgery for squeeze: delete units, fold their reconstruction into the consumer.
//!
//! Surgery is two pure steps, kept apart so each can be tested alone (the
//! tract idea of a *patch*: a value describing a change, with a label):
//!
//! 1. [`plan`] turns a producer/consumer [`Link`](sq_models::Link), the
//!    units to keep and the statistics of what the consumer reads into a
//!    [`Patch`]: kept and removed units plus the affine map
//!    `x_R ~ B x_S + c` with `B = C[R,S] C[S,S]^-1`, `c = mu_R - B mu_S`
//!    (the least-squares reconstruction of the removed units), or no map for
//!    plain deletion. Given joint statistics of the original and the
//!    current input ([`Statistics::Joint`]), the map instead reconstructs
//!    the *original* input from the kept units, correcting earlier cuts too.
//! 2. [`apply`] turns a model and a patch into a new, smaller model: the
//!    producer loses the removed output units (weight rows, bias, BatchNorm
//!    entries), and the consumer absorbs the map, `W'[:,S] = W[:,S] + W[:,R] B`
//!    and `b' = b + W[:,R] c` (in general `W' = W A`, `b' = b + W c`), per kernel tap for a conv consumer and per
//!    spatial position through a flatten into a linear consumer.
//!
//! A patch only changes its producer's outputs and its consumer's inputs,
//! so patches of different links compose in any order. The network's input
//! and the classifier's output are never touched: they are not producers.
#![deny(missing_docs)]

mod apply;
mod error;
mod plan;

pub use apply::{apply, keep_units};
pub use error::{Result, RewriteError};
pub use plan::{plan, AffineMap, Compensation, Patch, Statistics};
