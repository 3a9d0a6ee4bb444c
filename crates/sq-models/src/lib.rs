//! Model description, runner and data for squeeze.
//!
//! * [`Model`] is an *editable description* of a feed-forward CNN: an
//!   ordered list of [`Layer`] values holding their tensors. It can name its
//!   producer/consumer pairs ([`Model::links`]) and run with a hook that
//!   sees the input of every layer ([`Model::forward_with`]), which is how
//!   `sq-capture` gathers statistics.
//! * [`checkpoint`] reads and writes torchvision-named safetensors files
//!   (VGG-11/13/16/19, with or without BatchNorm; widths from shapes).
//! * [`transform`] holds function-preserving rewrites such as BatchNorm folding.
//! * [`dataset`] reads MNIST / Fashion-MNIST IDX files and CIFAR-10 binary
//!   batches and applies the checkpoint's preprocessing.
//! * [`eval`] measures top-1 accuracy and throughput.
//! * [`synthetic`] builds random VGGs of any shape for tests and benchmarks.
//!
//! Model *surgery* (removing units) lives in `sq-rewrite`; this crate only
//! describes and runs models.
#![deny(missing_docs)]

pub mod checkpoint;
mod cost;
pub mod dataset;
mod error;
pub mod eval;
mod layer;
mod model;
pub mod synthetic;
pub mod transform;
mod vgg;

pub use cost::LayerCost;
pub use error::{ModelError, Result};
pub use layer::{conv2d, BatchNorm2d, Conv2d, Conv2dConfig, Layer, Linear};
pub use model::{ActShape, Link, Model};
pub use vgg::Arch;
