//! Activation statistics for squeeze: what each layer's consumer really reads.
//!
//! For every producer/consumer pair ([`sq_models::Link`]) we record the
//! sufficient statistics of the tensor the consumer reads — after BatchNorm,
//! ReLU and pooling — in `f64`: count, sum and Gram matrix
//! ([`sq_linalg::Moments`]). For a conv consumer (or a flatten into a
//! linear one) every spatial position of every image is one sample of a
//! `C`-vector; for a linear consumer every image is one sample.
//!
//! Design choices:
//! * **Sums, not activations.** Memory is `O(n^2)` per producer whatever the
//!   number of images, and the Gram matrix is updated with one matrix
//!   product per batch ([`accumulate`]).
//! * **Mergeable.** Statistics of disjoint shards add up exactly
//!   ([`Stats::merge`]) and save to safetensors ([`Stats::save`]), so a
//!   capture can be split across processes or machines.
//! * **One forward pass per batch** captures every producer at once, through
//!   the runner's hook ([`sq_models::Model::forward_with`]).
#![deny(missing_docs)]

mod accumulate;
mod error;
mod stats;

pub use accumulate::{accumulate, capture};
pub use error::{CaptureError, Result};
pub use stats::{LayerStats, Stats};
