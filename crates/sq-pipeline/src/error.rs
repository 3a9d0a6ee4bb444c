//! The error type of the pipeline.

/// Everything that can go wrong while squeezing or analysing a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Running or building a model failed.
    #[error(transparent)]
    Model(#[from] sq_models::Error),
    /// Preprocessing the calibration images failed.
    #[error(transparent)]
    Preprocess(#[from] sq_models::dataset::PreprocessError),
    /// Capturing statistics failed.
    #[error(transparent)]
    Capture(#[from] sq_capture::Error),
    /// Choosing units failed.
    #[error(transparent)]
    Select(#[from] sq_select::Error),
    /// Rewriting the model failed.
    #[error(transparent)]
    Rewrite(#[from] sq_rewrite::Error),
    /// A linear-algebra step failed.
    #[error(transparent)]
    Linalg(#[from] sq_linalg::Error),
    /// Explicit widths do not cover a producer.
    #[error("no width given for producer `{0}`")]
    MissingWidth(String),
    /// The calibration set is empty.
    #[error("the calibration set is empty")]
    NoCalibration,
    /// A mode or target name did not parse.
    #[error("{0}")]
    Parse(String),
}

/// `Result` specialised to this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
