//! Loading and saving models as safetensors checkpoints with torchvision names.
//!
//! The loader reads a PyTorch `state_dict` of a VGG (`features.N.*`,
//! `classifier.N.*`) or of a ResNet (`conv1.*`, `layerN.M.*`, `fc.*`; see
//! `resnet`) and rebuilds the layer chain. For a VGG: Layer *kinds* come from
//! the tensors (4-D weight: conv; `running_mean`: BatchNorm; 2-D weight:
//! linear) and *widths* from their shapes, so narrower, squeezed checkpoints
//! load through the same code. Parameter-free layers (ReLU, max-pool,
//! dropout) leave gaps in torchvision's numbering; the gaps tell where the
//! pools are, unless an explicit [`Arch`] says so instead.

mod resnet;
mod vgg;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::vgg::Arch;

/// Precision of the tensors written by [`save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StorageDtype {
    /// 32-bit floats: exact.
    #[default]
    F32,
    /// 16-bit floats: half the bytes; inference still runs in f32.
    F16,
}

/// The largest checkpoint [`load`] reads: 4 GiB, seven times torchvision's
/// largest VGG in float32 (the whole file is held in memory).
pub const MAX_CHECKPOINT: sq_io::Cap = sq_io::Cap { bytes: 4 << 30, what: "a checkpoint" };

/// Loads a VGG or ResNet checkpoint. For a VGG, `arch` overrides the pool
/// placement that is otherwise read from the gaps in torchvision's layer
/// numbering; a ResNet's structure always follows from its keys.
///
/// The file is read bounded ([`sq_io::read_safetensors`]): a FIFO, a device
/// or a directory is refused before it is opened, and a file larger than
/// [`MAX_CHECKPOINT`] or longer than its header says before its data is read.
pub fn load(path: &Path, arch: Option<&Arch>) -> Result<Model> {
    let bytes = sq_io::read_safetensors(path, MAX_CHECKPOINT).map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidData => Error::Safetensors { path: path.into(), message: source.to_string() },
        _ => Error::Io { path: path.into(), source },
    })?;
    load_bytes(&bytes, path, arch)
}

/// Like [`load`] for a checkpoint already in memory; `path` is only used in errors.
pub fn load_bytes(bytes: &[u8], path: &Path, arch: Option<&Arch>) -> Result<Model> {
    let st_err = |e: safetensors::SafeTensorError| Error::Safetensors { path: path.into(), message: e.to_string() };
    let file = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();

    let tensors = read_tensors(&file, path).map_err(|e| naming_file(e, path))?;
    from_state_dict_at(tensors, metadata, arch, path)
}

/// Builds a model from a torchvision `state_dict` already in memory (f32
/// tensors by key), as [`load`] does from a file: a ResNet when the keys
/// are a ResNet's, else a VGG, with `arch` as in [`load`].
pub fn from_state_dict(
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
    arch: Option<&Arch>,
) -> Result<Model> {
    from_state_dict_at(tensors, metadata, arch, Path::new("<state dict>"))
}

/// [`from_state_dict`] with the path that errors name.
fn from_state_dict_at(
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
    arch: Option<&Arch>,
    path: &Path,
) -> Result<Model> {
    let keys: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let model = if resnet::is_resnet(&keys) {
        if let Some(arch) = arch {
            return Err(Error::Layout {
                path: path.into(),
                message: format!("this is a ResNet checkpoint; --arch {arch} describes a VGG"),
            });
        }
        resnet::from_tensors(tensors, metadata, path)
    } else {
        vgg::from_tensors(tensors, metadata, arch, path)
    };
    model.map_err(|e| naming_file(e, path))
}

/// Every error names the file, also those raised deep in candle.
fn naming_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Candle(_) | Error::Invalid { .. } => Error::Layout { path: path.into(), message: e.to_string() },
        e => e,
    }
}

/// Writes `model` to `path` atomically ([`sq_io::write_atomic`]), so a
/// crash never leaves a half-written file.
pub fn save(model: &Model, path: &Path, dtype: StorageDtype) -> Result<()> {
    let bytes = to_bytes(model, dtype, path)?;
    Ok(sq_io::write_atomic(path, &bytes)?)
}

/// The safetensors file [`save`] would write, in memory, for callers that
/// write several outputs together ([`sq_io::OutputSet`]); `path` is only
/// used in errors.
pub fn to_bytes(model: &Model, dtype: StorageDtype, path: &Path) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, layer) in model.layers().iter().enumerate() {
        for (suffix, tensor) in layer.tensors() {
            let key = format!("{}.{suffix}", model.name(i));
            // A NaN written now would only surface as garbage accuracy later.
            let count = non_finite(tensor)?;
            if count > 0 {
                return Err(Error::NonFinite { path: path.into(), key, count });
            }
            let bytes = tensor_bytes(tensor, dtype)?;
            if dtype == StorageDtype::F16 {
                let count = non_finite(&Tensor::from_raw_buffer(&bytes, DType::F16, tensor.dims(), &Device::Cpu)?)?;
                if count > 0 {
                    let key = format!("{key} (in float16, whose largest value is 65504)");
                    return Err(Error::NonFinite { path: path.into(), key, count });
                }
            }
            owned.push((key, tensor.dims().to_vec(), bytes));
        }
    }
    let st_dtype = match dtype {
        StorageDtype::F32 => Dtype::F32,
        StorageDtype::F16 => Dtype::F16,
    };
    let views = owned
        .iter()
        .map(|(name, shape, data)| {
            let view = safetensors::tensor::TensorView::new(st_dtype, shape.clone(), data)
                .map_err(|e| Error::Safetensors { path: path.into(), message: e.to_string() })?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut metadata: HashMap<String, String> = model.metadata().clone().into_iter().collect();
    metadata.insert("arch".into(), model.arch_name());

    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Safetensors { path: path.into(), message: e.to_string() })
}

/// Number of NaN or infinite values in `tensor`.
fn non_finite(tensor: &Tensor) -> Result<usize> {
    Ok(tensor.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().filter(|v| !v.is_finite()).count())
}

fn tensor_bytes(tensor: &Tensor, dtype: StorageDtype) -> Result<Vec<u8>> {
    let flat = tensor.flatten_all()?;
    Ok(match dtype {
        StorageDtype::F32 => {
            flat.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        StorageDtype::F16 => {
            flat.to_dtype(DType::F16)?.to_vec1::<half::f16>()?.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
    })
}

/// Every tensor of the file as f32, by key, checked finite;
/// `num_batches_tracked` (a training counter, unused at inference) is
/// skipped.
fn read_tensors(file: &SafeTensors<'_>, path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut tensors = BTreeMap::new();
    let names: std::collections::HashSet<String> = file.names().into_iter().map(str::to_owned).collect();
    for (key, view) in file.tensors() {
        // Skipped only where it belongs to a BatchNorm; elsewhere it is an unknown tensor.
        if let Some(layer) = key.strip_suffix(".num_batches_tracked") {
            if names.contains(&format!("{layer}.running_mean")) || names.contains(&format!("{layer}.running_var")) {
                continue;
            }
        }
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::UnsupportedDtype { path: path.into(), key, dtype: format!("{other:?}") });
            }
        };
        let tensor = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)?.to_dtype(DType::F32)?;
        let count = non_finite(&tensor)?;
        if count > 0 {
            return Err(Error::NonFinite { path: path.into(), key, count });
        }
        tensors.insert(key, tensor);
    }
    Ok(tensors)
}
