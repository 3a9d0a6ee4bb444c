//! The crate's error type.

/// Everything that can go wrong in `sq-linalg`.
///
/// Bad shapes, out-of-range indices and non-finite inputs are reported as
/// errors rather than panics, because they usually come from data loaded at
/// run time (a statistics file, a selection list) rather than from a
/// programming mistake.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two sizes that must agree do not, e.g. the inner dimensions of a
    /// product or the length of a row-major buffer.
    #[error("dimension mismatch in {what}: expected {expected}, found {found}")]
    DimensionMismatch {
        /// Which size was being checked.
        what: &'static str,
        /// The size required by the other operand.
        expected: usize,
        /// The size actually given.
        found: usize,
    },
    /// An operation that needs a square matrix got a rectangular one.
    #[error("expected a square matrix, found {rows}x{cols}")]
    NotSquare {
        /// Rows of the offending matrix.
        rows: usize,
        /// Columns of the offending matrix.
        cols: usize,
    },
    /// An index list refers past the end of a dimension.
    #[error("index {index} out of range for dimension of length {len}")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// The length of the dimension it indexes.
        len: usize,
    },
    /// A scalar parameter is outside its documented domain.
    #[error("parameter {name} = {value} is outside its valid range")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// The value that was given.
        value: f64,
    },
    /// A statistic such as the mean was requested before any sample was seen.
    #[error("no samples have been accumulated")]
    NoSamples,
    /// An input contains NaN or an infinity.
    #[error("input contains NaN or infinite values")]
    NonFinite,
    /// Cholesky failed even with the largest ridge tried: the matrix is
    /// indefinite well beyond round-off.
    #[error("matrix is not positive semi-definite (Cholesky failed with ridge {ridge:e})")]
    NotPositiveSemidefinite {
        /// The largest ridge that was tried.
        ridge: f64,
    },
    /// The eigenvalue iteration did not converge.
    #[error("eigendecomposition did not converge")]
    NoConvergence,
}

/// `Result` specialised to this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
