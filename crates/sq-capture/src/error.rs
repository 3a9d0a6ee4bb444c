//! The error type of capture and statistics files.

use std::path::PathBuf;

/// What can go wrong while capturing, merging, saving or loading statistics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Running the model failed.
    #[error(transparent)]
    Model(#[from] sq_models::Error),
    /// Preprocessing a batch of images failed.
    #[error(transparent)]
    Preprocess(#[from] sq_data::PreprocessError),
    /// A statistics computation failed (non-finite activations, mismatched sizes).
    #[error(transparent)]
    Linalg(#[from] sq_linalg::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The tensor a consumer reads holds NaN or infinite values: the
    /// weights overflow `f32` on these inputs.
    #[error("the activations read by the consumer of `{layer}` contain NaN or infinite values (the weights overflow float32 on these images)")]
    NonFinite {
        /// The producer whose consumer's input is not finite.
        layer: String,
    },
    /// The tensor a layer reads holds NaN or infinite values (a tap that
    /// is not a producer's, such as a residual stream's reader).
    #[error("the activations read by `{layer}` contain NaN or infinite values (the weights overflow float32 on these images)")]
    NonFiniteTap {
        /// The layer reading them.
        layer: String,
    },
    /// A tensor is neither `N x C x H x W` nor `N x F`, so it has no units.
    #[error("cannot take unit statistics of a tensor of shape {}", sq_io::dims_text(.0))]
    Rank(Vec<usize>),
    /// Writing or reading back the activations spilled to a temporary file
    /// failed (a full disk, say).
    #[error("cannot spill calibration activations to a temporary file in {} (set TMPDIR to a disk with room)", std::env::temp_dir().display())]
    Spill(#[source] std::io::Error),
    /// A frontier was given no calibration batches.
    #[error("no calibration batches to capture")]
    Empty,
    /// A frontier was asked to run backwards.
    #[error("cannot advance activations at the input of layer {at} back to layer {to}")]
    Backwards {
        /// Layer whose input the activations are.
        at: usize,
        /// The requested layer.
        to: usize,
    },
    /// Two sets of statistics do not describe the same layers.
    #[error("cannot merge statistics: {0}")]
    Mismatch(String),
    /// Statistics do not describe the model they are used with.
    #[error("the statistics do not describe this model: {0}")]
    WrongModel(String),
    /// A statistics file could not be read; the I/O error is the
    /// [`source`](std::error::Error::source).
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A statistics file could not be written.
    #[error(transparent)]
    Write(#[from] sq_io::Error),
    /// A statistics file is malformed.
    #[error("{}: not a squeeze statistics file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
