//! ONNX export of squeeze models, and tract as a second engine to run them.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sq_export::tract::TractModel;
//! use sq_export::{to_onnx, Batch, ExportOptions};
//! use sq_models::synthetic::VggSpec;
//! use sq_models::Arch;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A random VGG-11 with BatchNorm, 8 channels wide, on 1 x 32 x 32 images.
//! let model = VggSpec::uniform("vgg11_bn".parse::<Arch>()?, 8, 1, 32, 16).build(0)?;
//! let onnx = to_onnx(&model, &ExportOptions { batch: Batch::Dynamic, ..Default::default() })?;
//!
//! // Any batch size fits a dynamic export; tract optimises for the one chosen.
//! let tract = TractModel::from_bytes(&onnx, 2)?;
//! let x = Tensor::arange(0f32, 2048.0, &Device::Cpu)?.sin()?.reshape((2, 1, 32, 32))?;
//! let ours = model.forward(&x)?; // squeeze's own runner, BatchNorm unfolded
//! let theirs = tract.run(&x)?;
//! let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-4, "max difference {diff}");
//! assert_eq!(tract.metadata()["arch"], "vgg11_bn");
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! * **A standard file, built from maintained types.** The graph is made of
//!   the prost-generated ONNX messages that `tract-onnx` ships
//!   (`tract_onnx::pb`) and encoded by prost; nothing here writes protobuf
//!   by hand. The public API speaks only bytes, files and this crate's
//!   types, so tract's version can move without breaking callers.
//! * **What a deployer runs.** BatchNorms are folded into their convolutions
//!   ([`sq_models::transform::fold_batchnorm`]) and the graph holds only
//!   opset-13 `Conv`, `Relu`, `MaxPool`, `Flatten` and `Gemm` nodes, with the
//!   weights as initializers named as in the checkpoint (`features.0.weight`).
//!   The input `input` is `N x C x H x W`, with `N` fixed or symbolic
//!   ([`Batch`]); the output is `logits`. The preprocessing the model needs
//!   travels in the file's metadata ([`metadata`]).
//! * **One match to extend.** Each layer kind is translated by one arm of a
//!   single match; ResNet's residual `Add`, global average pool and 1x1
//!   downsample convolutions will be more arms of it. A kind without a
//!   translation is an [`Error::UnsupportedLayer`], never a panic.
//! * **Checked by a second engine.** [`tract::TractModel`] runs any such
//!   file on candle tensors, so the export is tested against
//!   [`sq_models::Model::forward`] and the two engines can be timed side by side.
//! * **Atomic files.** [`save`] writes a temporary sibling and renames it:
//!   a failed export leaves no partial file.
#![deny(missing_docs)]

mod error;
mod export;
mod graph;
pub mod metadata;
mod proto;
pub mod tract;

pub use error::{Error, Result};
pub use export::{save, to_onnx, Batch, ExportOptions, BATCH_DIM, OPSET};
pub use graph::{INPUT, OUTPUT};
