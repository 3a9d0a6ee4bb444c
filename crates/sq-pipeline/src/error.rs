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
    Preprocess(#[from] sq_data::PreprocessError),
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
    /// Explicit widths name a layer that is not a producer of the model.
    #[error("width given for `{name}`, which is not a producer of this model (producers: {producers})")]
    UnknownProducer {
        /// The name given.
        name: String,
        /// The model's producers, comma-separated.
        producers: String,
    },
    /// An explicit width is 0 or above the layer's number of units.
    #[error("width {width} for `{layer}` is out of range: it has {units} units, so the width must be in 1..={units}")]
    WidthOutOfRange {
        /// The producer.
        layer: String,
        /// The width given.
        width: usize,
        /// The producer's number of units.
        units: usize,
    },
    /// Some producers would get fewer samples than they have units (plus
    /// one): their covariance is rank deficient and their retained
    /// variance meaningless; see [`Shortfall`](crate::Shortfall).
    #[error(
        "too few calibration samples for a full-rank covariance: {}; retained variance and k(tau) would be meaningless (at least {images_needed} images needed)",
        crate::preflight::summary(.layers)
    )]
    TooFewSamples {
        /// Every producer that falls short, first to last.
        layers: Vec<crate::Shortfall>,
        /// The fewest images that satisfy all of them.
        images_needed: u64,
    },
    /// A step failed on one producer; the source says how.
    #[error("layer `{layer}`")]
    Layer {
        /// The producer being squeezed or analysed.
        layer: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
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
    #[error(
        "the budget cannot be met: it allows {limit}, but even the smallest widths (one unit per layer, or one \
         multiple of the rounding) cost {smallest}"
    )]
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
