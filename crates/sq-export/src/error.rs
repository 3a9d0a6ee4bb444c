//! The error type of ONNX export and of the tract runner.

use std::path::PathBuf;

/// Everything that can go wrong while exporting a model or running an export.
///
/// Variants about a file carry its path, and their message names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer of the model has no ONNX translation (yet).
    #[error("cannot export layer `{layer}` ({kind}) to ONNX: {reason}")]
    UnsupportedLayer {
        /// The layer's torchvision-style name, e.g. `features.7`.
        layer: String,
        /// The layer kind, as [`sq_models::Layer::kind`] names it.
        kind: &'static str,
        /// Why it cannot be exported.
        reason: String,
    },
    /// The model as a whole does not fit the export's conventions.
    #[error("cannot export this model to ONNX: {reason}")]
    UnsupportedModel {
        /// What does not fit.
        reason: String,
    },
    /// A batch size of zero was asked for.
    #[error("batch size must be at least 1")]
    ZeroBatch,
    /// The preprocessing given does not fit the model's input.
    #[error("preprocessing does not fit the model input {input}: {reason}")]
    Preprocess {
        /// The model's input, `C x H x W`.
        input: String,
        /// What does not fit.
        reason: String,
    },
    /// Reading a file failed.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] sq_io::Error),
    /// An ONNX file or buffer is not one the tract runner can take.
    #[error("{source_name}: {reason}")]
    Onnx {
        /// The file, or `<bytes>` for a buffer.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// tract failed to load, optimise or run a model.
    #[error("{source_name}: tract could not {action}: {message}")]
    Tract {
        /// The file, or `<bytes>` for a buffer.
        source_name: String,
        /// What tract was doing: `load the model`, `optimise the model`, `run the model`.
        action: &'static str,
        /// tract's error chain, outermost first.
        message: String,
    },
    /// An input tensor does not have the shape the runner was built for.
    #[error(
        "input of shape {} does not match the runner's input {}",
        sq_io::dims_text(.found),
        sq_io::dims_text(.expected)
    )]
    Input {
        /// The shape the runner was optimised for, `N x C x H x W`.
        expected: Vec<usize>,
        /// The shape given.
        found: Vec<usize>,
    },
    /// The model could not be folded or its tensors read.
    #[error(transparent)]
    Model(#[from] sq_models::Error),
    /// candle failed while reading or building a tensor.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
