//! Rebuilding a ResNet from a torchvision `state_dict` (`conv1.*`,
//! `layerN.M.*`, `fc.*`): the block kind from the keys, strides from
//! torchvision's layout, widths from the tensors.
//!
//! Two stems are recognised from `conv1`'s kernel: 7x7 is torchvision's
//! ImageNet stem (stride 2, padding 3, then the max-pool); 3x3 is the
//! CIFAR-style stem of 32x32 models (stride 1, padding 1, no max-pool).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::layer::{strided_conv2d, BatchNorm2d, Layer, Linear, Shortcut, BN_EPS};
use crate::model::Model;
use crate::resnet::BlockKind;
use crate::shape::{recorded_input, ActShape};

/// Whether a checkpoint's keys are a torchvision ResNet's (`conv1.weight`,
/// `layerN.*`) rather than a VGG's (`features.N.*`).
pub(super) fn is_resnet(keys: &[&str]) -> bool {
    !keys.iter().any(|k| k.starts_with("features."))
        && keys.iter().any(|k| k.starts_with("layer") || *k == "conv1.weight")
}

/// Builds a ResNet from a torchvision `state_dict` (keys without
/// `num_batches_tracked`); `path` is only used in errors.
pub(super) fn from_tensors(
    mut tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
    path: &Path,
) -> Result<Model> {
    let mut reader = Reader { path, tensors: &mut tensors };
    let stem = reader.conv("conv1")?;
    let kernel = stem.dims()[2];
    let (stride, padding, max_pool) = match kernel {
        7 => (2, 3, true),
        3 => (1, 1, false),
        k => {
            return Err(reader.layout(format!(
                "conv1 has a {k}x{k} kernel; torchvision's ImageNet stem is 7x7 and the CIFAR-style stem 3x3"
            )))
        }
    };
    let in_channels = stem.dims()[1];
    let mut layers =
        vec![Layer::Conv2d(reader.strided("conv1", stem, stride, padding)?), reader.bn("bn1")?, Layer::Relu];
    if max_pool {
        layers.push(Layer::MaxPool2d { kernel: 3, stride: 2, padding: 1 });
    }

    let kind =
        if reader.tensors.contains_key("layer1.0.conv3.weight") { BlockKind::Bottleneck } else { BlockKind::Basic };
    let mut stage = 1;
    while reader.has_prefix(&format!("layer{stage}.")) {
        let mut block = 0;
        while reader.has_prefix(&format!("layer{stage}.{block}.")) {
            let name = format!("layer{stage}.{block}");
            let stride = if stage > 1 && block == 0 { 2 } else { 1 };
            let block_in = last_conv_channels(&layers);
            layers.push(Layer::Fork);
            for k in 1..=kind.convs() {
                let conv_name = format!("{name}.conv{k}");
                let weight = reader.conv(&conv_name)?;
                let kernel = weight.dims()[2];
                // torchvision strides a BasicBlock's first convolution and a
                // Bottleneck's 3x3 (ResNet v1.5).
                let strided_conv = match kind {
                    BlockKind::Basic => 1,
                    BlockKind::Bottleneck => 2,
                };
                let conv_stride = if k == strided_conv { stride } else { 1 };
                layers.push(Layer::Conv2d(reader.strided(&conv_name, weight, conv_stride, kernel / 2)?));
                layers.push(reader.bn(&format!("{name}.bn{k}"))?);
                if k < kind.convs() {
                    layers.push(Layer::Relu);
                }
            }
            let shortcut = if reader.tensors.contains_key(&format!("{name}.downsample.0.weight")) {
                let conv_name = format!("{name}.downsample.0");
                let weight = reader.conv(&conv_name)?;
                let conv = reader.strided(&conv_name, weight, stride, 0)?;
                let Layer::BatchNorm2d(bn) = reader.bn(&format!("{name}.downsample.1"))? else {
                    unreachable!("Reader::bn returns a BatchNorm")
                };
                Shortcut::Projection { conv, bn }
            } else if stride != 1 || last_conv_channels(&layers) != block_in {
                // An identity shortcut cannot add a strided or wider body to
                // the block's input: the projection's tensors are missing.
                return Err(Error::MissingTensor { path: path.into(), key: format!("{name}.downsample.0.weight") });
            } else {
                Shortcut::Identity
            };
            layers.push(Layer::Add(shortcut));
            layers.push(Layer::Relu);
            block += 1;
        }
        if block == 0 {
            return Err(reader.layout(format!("layer{stage} has no block layer{stage}.0")));
        }
        stage += 1;
    }
    if stage == 1 {
        return Err(reader.layout("no residual stage found (no layer1.0.* tensors)".into()));
    }
    layers.extend([Layer::GlobalAvgPool, Layer::Flatten]);
    let fc = reader.take("fc.weight", 2)?;
    // torchvision's `fc` has a bias: without it the model would run, wrongly.
    let bias = Some(reader.take("fc.bias", 1)?);
    if let Some(b) = &bias {
        if b.dims() != [fc.dims()[0]] {
            return Err(Error::TensorShape {
                path: path.into(),
                key: "fc.bias".into(),
                expected: fc.dims()[0].to_string(),
                found: b.dims().to_vec(),
            });
        }
    }
    layers.push(Layer::Linear(Linear::new(fc, bias)));
    if !reader.tensors.is_empty() {
        return Err(Error::UnknownTensors { path: path.into(), keys: reader.tensors.keys().cloned().collect() });
    }

    let default_side = if max_pool { 224 } else { 32 };
    let (h, w) = recorded_input(&metadata, in_channels, path)?.unwrap_or((default_side, default_side));
    let input = ActShape::Map { c: in_channels, h, w };
    Model::new(input, layers, metadata).map_err(|e| Error::Layout { path: path.into(), message: e.to_string() })
}

/// The output channels of the last convolution in `layers` (0 if none).
fn last_conv_channels(layers: &[Layer]) -> usize {
    layers
        .iter()
        .rev()
        .find_map(|l| if let Layer::Conv2d(conv) = l { Some(conv.weight().dims()[0]) } else { None })
        .unwrap_or(0)
}

/// Takes tensors out of a `state_dict` by key, so that what is left at the
/// end is what no layer reads.
struct Reader<'a> {
    path: &'a Path,
    tensors: &'a mut BTreeMap<String, Tensor>,
}

impl Reader<'_> {
    fn layout(&self, message: String) -> Error {
        Error::Layout { path: self.path.into(), message }
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors.range(prefix.to_string()..).next().is_some_and(|(k, _)| k.starts_with(prefix))
    }

    fn take(&mut self, key: &str, rank: usize) -> Result<Tensor> {
        let t =
            self.tensors.remove(key).ok_or_else(|| Error::MissingTensor { path: self.path.into(), key: key.into() })?;
        if t.rank() != rank {
            return Err(Error::TensorShape {
                path: self.path.into(),
                key: key.into(),
                expected: format!("a {rank}-D tensor"),
                found: t.dims().to_vec(),
            });
        }
        Ok(t)
    }

    /// The weight of convolution `name` (square kernel of odd side).
    fn conv(&mut self, name: &str) -> Result<Tensor> {
        let key = format!("{name}.weight");
        let weight = self.take(&key, 4)?;
        let dims = weight.dims();
        if dims[2] != dims[3] || dims[2] % 2 == 0 {
            return Err(Error::TensorShape {
                path: self.path.into(),
                key,
                expected: "a square kernel of odd side".into(),
                found: dims.to_vec(),
            });
        }
        Ok(weight)
    }

    /// Convolution `name` with its bias, if the checkpoint has one
    /// (torchvision's have none; a model repaired by squeeze may).
    fn strided(&mut self, name: &str, weight: Tensor, stride: usize, padding: usize) -> Result<candle_nn::Conv2d> {
        let bias = self.tensors.remove(&format!("{name}.bias"));
        strided_conv2d(weight, bias, stride, padding).map_err(|e| self.layout(format!("{name}: {e}")))
    }

    fn bn(&mut self, name: &str) -> Result<Layer> {
        let mut get = |suffix: &str| self.take(&format!("{name}.{suffix}"), 1);
        let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
        if var.to_vec1::<f32>()?.iter().any(|&v| v < 0.0) {
            return Err(self.layout(format!("{name}.running_var has negative entries: not a variance")));
        }
        let bn = BatchNorm2d::new(gamma, beta, mean, var, BN_EPS).map_err(|e| self.layout(format!("{name}: {e}")))?;
        Ok(Layer::BatchNorm2d(bn))
    }
}
