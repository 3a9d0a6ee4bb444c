//! squeeze: one-shot compression of trained CNNs by squeezing correlated neurons.
//!
//! This crate ties the workspace's libraries together for the `squeeze`
//! command line and `cargo xtask`:
//!
//! * [`analysis`] — information content per layer (spectra, k(tau), dead units);
//! * [`compress`] — the one-shot pipeline (capture, select, rewrite; sequential or one-pass);
//! * [`output`] — atomic file writes;
//! * [`plot`] — charts of the explained-variance curves and results;
//! * [`progress`] — progress bars shared by the command line and the xtask.
//!
//! The building blocks live in their own crates: `sq-models` (model
//! description, runner, data), `sq-capture` (statistics), `sq-linalg`
//! (linear algebra), `sq-select` (which units to keep) and `sq-rewrite`
//! (model surgery).
#![deny(missing_docs)]

pub mod analysis;
pub mod compress;
pub mod output;
pub mod plot;
pub mod progress;
