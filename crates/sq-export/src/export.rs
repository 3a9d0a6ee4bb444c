//! From a [`Model`] to the bytes of an ONNX file, and to the file itself.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use prost::Message;
use sq_data::Preprocess;
use sq_models::transform::fold_batchnorm;
use sq_models::Model;
use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::proto::{self, Dim};
use crate::{graph, metadata};

/// The ONNX operator set the exported graphs use (Conv, Relu, MaxPool,
/// Flatten and Gemm, all at their opset-13 definitions).
pub const OPSET: i64 = 13;

/// The ONNX IR version that goes with [`OPSET`] (IR 7, ONNX 1.8).
const IR_VERSION: i64 = pb::Version::IrVersion202058 as i64;

/// Name of the symbolic batch dimension of a [`Batch::Dynamic`] export.
pub const BATCH_DIM: &str = "N";

/// The first dimension of the exported input and output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Batch {
    /// Exactly this many images per run.
    Fixed(usize),
    /// Any number of images: the symbolic dimension [`BATCH_DIM`].
    #[default]
    Dynamic,
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Batch::Fixed(n) => write!(f, "{n}"),
            Batch::Dynamic => f.write_str("dynamic"),
        }
    }
}

impl FromStr for Batch {
    type Err = String;

    /// Parses a positive integer that fits ONNX's signed 64-bit dimension
    /// field, or `dynamic`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dynamic" => Ok(Batch::Dynamic),
            _ => match s.parse::<usize>() {
                Ok(n) if n > 0 && i64::try_from(n).is_ok() => Ok(Batch::Fixed(n)),
                Ok(n) if n > 0 => Err(format!("invalid batch `{s}`: ONNX dimensions are at most {}", i64::MAX)),
                _ => Err(format!("invalid batch `{s}`: expected a positive integer or `dynamic`")),
            },
        }
    }
}

/// How to export a model.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Batch dimension of the input and output.
    pub batch: Batch,
    /// The preprocessing the model expects, recorded in the file's metadata
    /// (see [`metadata`](crate::metadata)); `None` records only what the
    /// checkpoint's metadata holds.
    pub preprocess: Option<Preprocess>,
}

/// Exports `model` as an ONNX model (opset [`OPSET`]) and returns its bytes.
///
/// BatchNorms are folded into their convolutions first, so the graph holds
/// only Conv, Relu, MaxPool, Flatten and Gemm nodes; the input is `input`
/// (`N x C x H x W`, `f32`) and the output `logits` (`N x classes`).
///
/// # Errors
///
/// [`Error::ZeroBatch`] for `Batch::Fixed(0)`, [`Error::UnsupportedModel`]
/// or [`Error::UnsupportedLayer`] for a model outside the conventions above,
/// [`Error::Preprocess`] if the preprocessing does not fit the input.
pub fn to_onnx(model: &Model, options: &ExportOptions) -> Result<Vec<u8>> {
    let batch = match options.batch {
        Batch::Fixed(0) => return Err(Error::ZeroBatch),
        Batch::Fixed(n) => Dim::Fixed(n),
        Batch::Dynamic => Dim::Named(BATCH_DIM),
    };
    let props = metadata::properties(model, options.preprocess.as_ref())?;
    let graph = graph::build(&fold_batchnorm(model)?, batch)?;
    let onnx = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "squeeze".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: props.iter().map(|(k, v)| proto::property(k, v)).collect(),
        ..Default::default()
    };
    Ok(onnx.encode_to_vec())
}

/// Exports `model` to the ONNX file `path`, atomically: the bytes go to a
/// temporary file in the same directory, which is then renamed, so a
/// failure leaves no file (or the previous one) at `path`, never a partial one.
///
/// # Errors
///
/// Those of [`to_onnx`], and [`Error::Write`] naming `path` if writing fails.
pub fn save(model: &Model, options: &ExportOptions, path: &Path) -> Result<()> {
    Ok(sq_io::write_atomic(path, &to_onnx(model, options)?)?)
}
