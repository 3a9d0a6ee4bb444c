//! The error type of model loading, validation and execution.

use std::path::PathBuf;

/// Everything that can go wrong while loading, checking, running or saving a model.
///
/// File-related variants carry the path so that a user with several
/// checkpoints knows which one is broken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read (missing, a directory, unreadable); the
    /// I/O error is the [`source`](std::error::Error::source).
    #[error("cannot read {}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, corrupt header, ...).
    #[error("{}: not a valid safetensors checkpoint: {message}", path.display())]
    Safetensors {
        /// The file involved.
        path: PathBuf,
        /// What the safetensors parser reported.
        message: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{}: missing tensor `{key}`", path.display())]
    MissingTensor {
        /// The file involved.
        path: PathBuf,
        /// The missing key.
        key: String,
    },
    /// A tensor has a shape that does not fit the architecture.
    #[error("{}: tensor `{key}` has shape {}, expected {expected}", path.display(), sq_io::dims_text(.found))]
    TensorShape {
        /// The file involved.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What the architecture requires, in words.
        expected: String,
        /// The shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype we cannot compute with.
    #[error("{}: tensor `{key}` has unsupported dtype {dtype} (expected F32, F16 or BF16)", path.display())]
    UnsupportedDtype {
        /// The file involved.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor holds NaN or infinite values (read from a checkpoint, or
    /// about to be written to one).
    #[error("{}: tensor `{key}` has {count} NaN or infinite values", path.display())]
    NonFinite {
        /// The file involved.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// How many of its values are not finite.
        count: usize,
    },
    /// A checkpoint holds tensors that no layer reads.
    #[error("{}: unknown tensors {}: no conv, BatchNorm or linear layer of the architecture reads them", path.display(), .keys.join(", "))]
    UnknownTensors {
        /// The file involved.
        path: PathBuf,
        /// The keys no layer uses.
        keys: Vec<String>,
    },
    /// The model's outputs are NaN or infinite although its weights are
    /// finite: they overflow `f32` on this input.
    #[error("the model's outputs for image {image} are NaN or infinite (its weights overflow float32 on this input)")]
    NonFiniteOutput {
        /// Index of the first such image.
        image: usize,
    },
    /// The model and the dataset do not fit together.
    #[error("{message}")]
    Mismatch {
        /// What does not fit, in words.
        message: String,
    },
    /// The keys of the checkpoint do not describe a VGG or ResNet we understand.
    #[error("{}: {message}", path.display())]
    Layout {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with the layout.
        message: String,
    },
    /// A model description is internally inconsistent (for example a layer
    /// reads 64 channels while its predecessor produces 32).
    #[error("invalid model: layer `{layer}`: {message}")]
    Invalid {
        /// Name of the offending layer.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// An input tensor has the wrong shape for this model.
    #[error("input of shape {} does not match the model input {expected}", sq_io::dims_text(.found))]
    Input {
        /// The model's expected input, in words.
        expected: String,
        /// The shape given.
        found: Vec<usize>,
    },
    /// A checkpoint could not be written.
    #[error(transparent)]
    Write(#[from] sq_io::Error),
    /// The model does not record how its inputs are normalised
    /// (`normalize_mean` / `normalize_std` metadata), and none was supplied.
    #[error("the checkpoint's metadata has no normalize_mean/normalize_std")]
    NoNormalization,
    /// A normalisation was given for a checkpoint whose metadata records
    /// its own: the one given would be ignored.
    #[error(
        "the checkpoint's metadata records its normalisation (mean {}; std {}): the one given as well would be ignored",
        list(.mean), list(.std)
    )]
    NormalizationTwice {
        /// The metadata's means.
        mean: Vec<f32>,
        /// The metadata's stds.
        std: Vec<f32>,
    },
    /// A resize or crop was given for a checkpoint whose metadata records
    /// its own: the one given would be ignored.
    #[error(
        "the checkpoint's metadata records its resize and crop ({recorded}): the ones given as well would be ignored"
    )]
    GeometryTwice {
        /// The metadata's geometry.
        recorded: sq_data::Geometry,
    },
    /// The dataset's images cannot be preprocessed for this model.
    #[error(transparent)]
    Preprocess(#[from] sq_data::PreprocessError),
    /// An error raised by candle while computing.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Numbers as a comma-separated list, for messages.
fn list(values: &[f32]) -> String {
    values.iter().map(f32::to_string).collect::<Vec<_>>().join(", ")
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
