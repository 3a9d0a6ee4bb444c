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
    /// A global budget did not parse.
    #[error("invalid budget `{spec}`: {reason}")]
    ParseBudget {
        /// The budget as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A loss curve is not ascending in width up to the full width, or has a non-finite loss.
    #[error("invalid loss curve for `{0}`: widths must increase from 1 to the full width, losses be finite")]
    InvalidCurve(String),
    /// The loss curves do not match the model's producers.
    #[error("the loss curves do not match the model's producers")]
    CurvesMismatch,
    /// Even the smallest widths considered exceed the budget.
    #[error("the budget ({limit}) cannot be met: the smallest widths considered cost {smallest}")]
    Unreachable {
        /// The budget.
        limit: usize,
        /// The cost of the smallest widths.
        smallest: usize,
    },
    /// The validation set is empty.
    #[error("the validation set is empty")]
    NoValidation,
    /// A combination of settings that does not exist.
    #[error("unsupported settings: {0}")]
    Unsupported(String),
    /// A mode or target name did not parse.
    #[error("{0}")]
    Parse(String),
}

/// `Result` specialised to this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
