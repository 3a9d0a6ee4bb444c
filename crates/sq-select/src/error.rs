//! The crate's error type.

use std::path::PathBuf;

use crate::budget::Budget;

/// Everything that can go wrong when choosing or loading a selection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The covariance is not a finite square matrix, or a solve on it failed.
    #[error(transparent)]
    Linalg(#[from] sq_linalg::Error),
    /// The covariance is `0 x 0`: there is no unit to keep.
    #[error("a layer with no units cannot be squeezed")]
    NoUnits,
    /// A strategy was asked to keep no unit or more units than exist.
    #[error("cannot keep {k} of {n} units: k must be in 1..={n}")]
    KeepOutOfRange {
        /// The requested number of units.
        k: usize,
        /// The layer's width.
        n: usize,
    },
    /// A budget parameter is outside its domain.
    #[error("budget {0} is out of range: a fraction must lie in (0, 1], a width must be at least 1")]
    InvalidBudget(Budget),
    /// A retained-variance target is outside `(0, 1]`.
    #[error("tau {0} is out of range: it must lie in (0, 1]")]
    InvalidTau(f64),
    /// A retained-variance target is not a number.
    #[error("invalid tau `{0}`: expected a number in (0, 1]")]
    ParseTau(String),
    /// The `l1` strategy was used without per-unit weight norms.
    #[error("the l1 strategy needs one weight norm per unit, and none were given")]
    MissingNorms,
    /// The number of weight norms differs from the layer's width.
    #[error("{found} weight norms given for a layer of {expected} units")]
    NormsLength {
        /// The layer's width.
        expected: usize,
        /// The number of norms given.
        found: usize,
    },
    /// A weight norm is NaN or infinite.
    #[error("the weight norm of unit {unit} is not finite")]
    NonFiniteNorm {
        /// The unit whose norm is not finite.
        unit: usize,
    },
    /// A strategy name did not parse.
    #[error("unknown strategy `{0}`: expected eliminate, qr, l1, random or random:<seed>")]
    ParseStrategy(String),
    /// A budget did not parse.
    #[error("invalid budget `{0}`: expected tau:<t>, fraction:<f> or width:<w>")]
    ParseBudget(String),
    /// A layer selection is inconsistent.
    #[error("layer `{layer}`: {defect}")]
    InvalidLayer {
        /// The layer's name.
        layer: String,
        /// What is wrong with it.
        defect: LayerDefect,
    },
    /// Two layer selections share a name.
    #[error("layer `{0}` appears more than once in the selection")]
    DuplicateLayer(String),
    /// A selection is not well-formed JSON of the expected shape.
    #[error("malformed selection")]
    Json(#[from] serde_json::Error),
    /// A selection file could not be written.
    #[error(transparent)]
    Write(#[from] sq_io::Error),
    /// A selection file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// A selection file was read but its content is invalid.
    #[error("{}: invalid selection", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        source: Box<Error>,
    },
}

/// Why a [`LayerSelection`](crate::LayerSelection) is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerDefect {
    /// No unit is kept.
    #[error("keeps no unit")]
    Empty,
    /// A kept index is not below the layer's width.
    #[error("kept unit {index} is out of range for width {width}")]
    OutOfRange {
        /// The offending index.
        index: usize,
        /// The layer's width.
        width: usize,
    },
    /// A kept index appears twice.
    #[error("kept unit {0} is listed twice")]
    Duplicate(usize),
    /// Kept indices are not in ascending order.
    #[error("kept units are not sorted ascending (at unit {0})")]
    Unsorted(usize),
    /// The retained variance fraction is not a number in `[0, 1]`.
    #[error("retained variance {0} is not in [0, 1]")]
    RetainedVariance(f64),
}

/// `Result` specialised to this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
