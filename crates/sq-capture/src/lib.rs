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
//!   number of images, and the Gram matrix is updated with matrix products
//!   over a whole batch ([`accumulate_samples`]), never per sample.
//! * **Mergeable.** Statistics of disjoint shards add up exactly
//!   ([`Stats::merge`]) and save to safetensors ([`Stats::save`]), so a
//!   capture can be split across processes or machines.
//! * **One forward pass per batch** captures every producer at once, through
//!   the runner's hook ([`sq_models::Model::forward_with_samples`]), which
//!   lends each tapped activation in the runner's own channel-last layout,
//!   the rows the Gram product reads: [`capture`].
//! * **Sequential capture** keeps the calibration set's activations at the
//!   current cut in memory ([`Frontier`]) and advances them through the
//!   squeezed model, so squeezing a whole network costs one forward pass.
//!
//! ```
//! use sq_capture::capture;
//! use sq_data::{Dataset, Preprocess};
//! use sq_models::synthetic::VggSpec;
//!
//! let model = VggSpec::uniform("vgg11_bn".parse()?, 8, 1, 32, 16).build(0)?;
//! let pixels: Vec<u8> = (0..12 * 28 * 28).map(|i| (i * 13 % 256) as u8).collect();
//! let data = Dataset::new("random", (1, 28, 28), pixels, vec![0; 12], 10)?;
//! let pre = Preprocess::new(vec![0.5], vec![0.25], (28, 28), (32, 32))?;
//!
//! // Statistics of every producer in one pass; two shards merge into the whole.
//! let mut first = data.clone();
//! first.truncate(5);
//! let whole = capture(&model, pre.batches(&data, 4), |_| {})?;
//! let mut merged = capture(&model, pre.batches(&first, 4), |_| {})?;
//! let rest = Dataset::new("rest", (1, 28, 28), data.images().unwrap_or_default()[5 * 784..].to_vec(), vec![0; 7], 10)?;
//! merged.merge(&capture(&model, pre.batches(&rest, 4), |_| {})?)?;
//! let conv0 = (whole.get("features.0").unwrap(), merged.get("features.0").unwrap());
//! assert_eq!(conv0.0.moments.count(), 12 * 16 * 16); // images x positions after the first pool
//! assert_eq!(conv0.0.moments.count(), conv0.1.moments.count());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod accumulate;
mod error;
mod frontier;
mod stats;

pub use accumulate::{accumulate, accumulate_samples, capture, capture_taps};
pub use error::{Error, Result};
pub use frontier::{Frontier, FRONTIER_MEMORY};
pub use stats::{image_fingerprint, model_fingerprint, LayerStats, Stats, MAX_STATS};
