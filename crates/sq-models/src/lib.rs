//! Model description, runner and data for squeeze.
//!
//! * [`Model`] is an *editable description* of a feed-forward CNN: an
//!   ordered list of [`Layer`] values holding their tensors; residual
//!   blocks are a [`Layer::Fork`] ... [`Layer::Add`] span of the chain. It can name its
//!   producer/consumer pairs ([`Model::links`]) and run with a hook that
//!   sees the input of every conv, linear and flatten layer
//!   ([`Model::forward_with`]; [`Model::forward_with_samples`] lends it in
//!   the runner's channel-last layout, which is how `sq-capture` gathers
//!   statistics).
//! * Running goes through an execution plan compiled from the description
//!   on first use: channel-last activations, BatchNorm folded into the
//!   convolutions, tiled im2col + GEMM (the `gemm` crate) with bias and
//!   ReLU fused, parallel over tiles of pixels or of channels. The
//!   layer-by-layer candle path stays as the reference
//!   ([`Model::forward_layers`]).
//! * [`checkpoint`] reads and writes torchvision-named safetensors files
//!   (VGG-11/13/16/19, with or without BatchNorm; ResNet-18/34/50/101/152
//!   with the ImageNet or the CIFAR-style stem; widths from shapes).
//! * [`transform`] holds function-preserving rewrites such as BatchNorm folding.
//! * [`eval`] measures top-1 and top-5 accuracy, throughput and fidelity,
//!   and builds the preprocessing (`sq-data`) a checkpoint's metadata asks for.
//! * [`synthetic`] builds random VGGs and ResNets of any shape for tests
//!   and benchmarks.
//!
//! Model *surgery* (removing units) lives in `sq-rewrite`; this crate only
//! describes and runs models.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sq_models::checkpoint::{load, save, StorageDtype};
//! use sq_models::synthetic::VggSpec;
//!
//! // A random VGG-11 with BatchNorm: 8 channels per conv, 1x32x32 inputs.
//! let model = VggSpec::uniform("vgg11_bn".parse()?, 8, 1, 32, 16).build(0)?;
//! assert_eq!(model.name(0), "features.0");
//! // Every conv and the hidden linear layer are producers.
//! assert_eq!(model.links().len(), 8 + 1);
//!
//! let x = Tensor::randn(0f32, 1.0, (2, 1, 32, 32), &Device::Cpu)?;
//! let logits = model.forward(&x)?;
//! assert_eq!(logits.dims(), [2, 10]);
//!
//! // A torchvision-named safetensors round trip.
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("vgg11_bn.safetensors");
//! save(&model, &path, StorageDtype::F32)?;
//! let again = load(&path, None)?;
//! assert_eq!(again.forward(&x)?.to_vec2::<f32>()?, logits.to_vec2::<f32>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
mod cost;
mod error;
pub mod eval;
mod flow;
mod layer;
mod model;
mod plan;
mod resnet;
mod samples;
mod shape;
mod stream;
pub mod synthetic;
pub mod transform;
mod vgg;

pub use cost::LayerCost;
pub use error::{Error, Result};
pub use flow::Flow;
pub use layer::{conv2d, strided_conv2d, BatchNorm2d, Conv2d, Conv2dConfig, Layer, Linear, Shortcut};
pub use model::{Link, Model};
pub use resnet::{BlockKind, ResNetArch};
pub use samples::Samples;
pub use shape::ActShape;
pub use stream::{Stream, StreamReader};
pub use vgg::Arch;
