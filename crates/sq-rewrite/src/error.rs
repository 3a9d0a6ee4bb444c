//! The error type of model surgery.

/// What can go wrong while planning or applying a patch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kept units are not a valid subset of the producer's units.
    #[error("{layer}: invalid kept units: {message}")]
    InvalidKept {
        /// Producer name.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// The patch does not fit the model it is applied to.
    #[error("{layer}: patch does not fit the model: {message}")]
    Mismatch {
        /// Layer name.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// A compensation name did not parse.
    #[error("invalid compensation: {0}")]
    Parse(String),
    /// A linear-algebra step failed.
    #[error(transparent)]
    Linalg(#[from] sq_linalg::Error),
    /// Building the new model failed.
    #[error(transparent)]
    Model(#[from] sq_models::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
