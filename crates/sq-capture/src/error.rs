//! The error type of capture and statistics files.

use std::path::PathBuf;

/// What can go wrong while capturing, merging, saving or loading statistics.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Running the model failed.
    #[error(transparent)]
    Model(#[from] sq_models::ModelError),
    /// A statistics computation failed (non-finite activations, mismatched sizes).
    #[error(transparent)]
    Linalg(#[from] sq_linalg::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Two sets of statistics do not describe the same layers.
    #[error("cannot merge statistics: {0}")]
    Mismatch(String),
    /// A statistics file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A statistics file is malformed.
    #[error("{path}: not a squeeze statistics file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;
