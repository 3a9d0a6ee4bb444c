//! A second inference engine: ONNX files run by tract.
//!
//! [`TractModel`] loads an ONNX file (ours or anyone's with one `N x C x H x W`
//! `f32` input and one output), fixes the batch size, lets tract optimise
//! the graph for it, and runs `candle` tensors in and out, so that its
//! results and timings line up with [`sq_models::Model::forward`]. tract
//! runs on one thread (its default); candle uses every core.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension;
use tract_onnx::prelude::{
    tvec, DatumExt, Framework, InferenceModelExt, IntoTValue, TValue, TractError, TypedModel, TypedRunnableModel,
};

use crate::error::{Error, Result};

/// The largest ONNX file [`TractModel::load`] reads: 2 GiB, protobuf's own limit.
pub const MAX_ONNX: sq_io::Cap = sq_io::Cap { bytes: 2 << 30, what: "an ONNX file" };

/// An ONNX model optimised by tract for one batch size.
pub struct TractModel {
    plan: TypedRunnableModel<TypedModel>,
    input: [usize; 4],
    metadata: BTreeMap<String, String>,
    source: String,
}

impl TractModel {
    /// Loads the ONNX file at `path` and optimises it for `batch` images per run.
    ///
    /// # Errors
    ///
    /// As [`TractModel::from_bytes`], naming `path`; [`Error::Read`] if it cannot be read.
    pub fn load(path: &Path, batch: usize) -> Result<Self> {
        let bytes =
            sq_io::read_input(path, MAX_ONNX).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        Self::build(&bytes, batch, path.display().to_string())
    }

    /// Loads an ONNX model from memory and optimises it for `batch` images per run.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroBatch`]; [`Error::Onnx`] if the bytes are not an ONNX
    /// model with a single `N x C x H x W` input whose batch is `batch` or
    /// symbolic; [`Error::Tract`] if tract cannot load or optimise it.
    pub fn from_bytes(bytes: &[u8], batch: usize) -> Result<Self> {
        Self::build(bytes, batch, "<bytes>".to_owned())
    }

    fn build(bytes: &[u8], batch: usize, source: String) -> Result<Self> {
        if batch == 0 {
            return Err(Error::ZeroBatch);
        }
        let onnx_err = |reason: String| Error::Onnx { source_name: source.clone(), reason };
        let proto =
            pb::ModelProto::decode(bytes).map_err(|e| onnx_err(format!("not an ONNX model (protobuf: {e})")))?;
        let [c, h, w] = image_dims(&proto, batch).map_err(onnx_err)?;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|model| model.with_input_fact(0, f32::fact([batch, c, h, w]).into()))
            .map_err(|e| tract_error(&source, "load the model", e))?
            .into_optimized()
            .and_then(|model| model.into_runnable())
            .map_err(|e| tract_error(&source, "optimise the model", e))?;
        let metadata = proto.metadata_props.into_iter().map(|p| (p.key, p.value)).collect();
        Ok(Self { plan, input: [batch, c, h, w], metadata, source })
    }

    /// The input shape the model was optimised for, `N x C x H x W`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input
    }

    /// The file's `metadata_props` (see [`crate::metadata`] for ours).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Runs the model on `x` (`N x C x H x W`, any float dtype) and returns
    /// its output as an `f32` tensor on the CPU (`N x classes` for ours).
    ///
    /// # Errors
    ///
    /// [`Error::Input`] if `x` does not have [`TractModel::input_shape`];
    /// [`Error::Tract`] if tract fails.
    pub fn run(&self, x: &Tensor) -> Result<Tensor> {
        let input = self.to_tract(x)?;
        let outputs = self.plan.run(tvec![input]).map_err(|e| self.tract_err("run the model", e))?;
        let output = outputs[0].to_array_view::<f32>().map_err(|e| self.tract_err("read the output", e))?;
        Ok(Tensor::from_iter(output.iter().copied(), &Device::Cpu)?.reshape(output.shape())?)
    }

    /// Wall-clock milliseconds of one run on `x`, excluding the copy of `x`
    /// into tract's tensor type (as `Model::forward` is timed on a ready
    /// candle tensor). For interleaved latency comparisons with candle.
    ///
    /// # Errors
    ///
    /// As [`TractModel::run`].
    pub fn time_ms(&self, x: &Tensor) -> Result<f64> {
        let input = self.to_tract(x)?;
        let start = Instant::now();
        std::hint::black_box(self.plan.run(tvec![input]).map_err(|e| self.tract_err("run the model", e))?);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }

    /// Copies `x` into a tract value, checking its shape.
    fn to_tract(&self, x: &Tensor) -> Result<TValue> {
        if x.dims() != self.input {
            return Err(Error::Input { expected: self.input.to_vec(), found: x.dims().to_vec() });
        }
        let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let tensor = tract_onnx::prelude::Tensor::from_shape(&self.input, &values)
            .map_err(|e| self.tract_err("take the input", e))?;
        Ok(tensor.into_tvalue())
    }

    fn tract_err(&self, action: &'static str, e: TractError) -> Error {
        tract_error(&self.source, action, e)
    }
}

/// A tract failure while doing `action` on the model from `source`, with tract's whole error chain.
fn tract_error(source: &str, action: &'static str, e: TractError) -> Error {
    Error::Tract { source_name: source.to_owned(), action, message: format!("{e:#}") }
}

/// The largest difference between `other` and `reference` per image (row),
/// relative to that image's largest absolute `reference` value: how far a
/// second engine's logits stray, independent of their scale.
///
/// # Errors
///
/// If the shapes differ or either is not a batch of rows.
pub fn max_relative_difference(reference: &Tensor, other: &Tensor) -> Result<f32> {
    if reference.dims() != other.dims() {
        return Err(Error::Input { expected: reference.dims().to_vec(), found: other.dims().to_vec() });
    }
    let (a, b) = (reference.to_dtype(DType::F32)?.to_vec2::<f32>()?, other.to_dtype(DType::F32)?.to_vec2::<f32>()?);
    let mut worst = 0f32;
    for (ra, rb) in a.iter().zip(&b) {
        let scale = ra.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
        for (x, y) in ra.iter().zip(rb) {
            let d = (x - y).abs() / scale;
            // A NaN on either side is the worst disagreement, not none.
            worst = if d.is_nan() { f32::INFINITY } else { worst.max(d) };
        }
    }
    Ok(worst)
}

/// `C, H, W` of the graph's single input, checking that its first dimension
/// is `batch` or symbolic.
fn image_dims(proto: &pb::ModelProto, batch: usize) -> std::result::Result<[usize; 3], String> {
    let graph = proto.graph.as_ref().ok_or("the model has no graph")?;
    // Older exporters also list initializers as graph inputs.
    let weights: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph.input.iter().filter(|i| !weights.contains(i.name.as_str())).collect();
    let [input] = inputs.as_slice() else {
        return Err(format!("the graph has {} inputs; the runner takes exactly one", inputs.len()));
    };
    let dims = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default(),
        None => &[],
    };
    let fixed: Vec<Option<usize>> = dims
        .iter()
        .map(|d| match d.value {
            Some(dimension::Value::DimValue(n)) => usize::try_from(n).ok(),
            _ => None,
        })
        .collect();
    match fixed.as_slice() {
        [n, Some(c), Some(h), Some(w)] => match n {
            Some(n) if *n != batch => Err(format!("input `{}` has a fixed batch of {n}, not {batch}", input.name)),
            _ => Ok([*c, *h, *w]),
        },
        _ => Err(format!("input `{}` is not N x C x H x W with fixed C, H and W", input.name)),
    }
}
