//! ResNet architectures (He et al. 2016) in torchvision's layout.
//!
//! torchvision's ResNet is a stem (`conv1`, `bn1`, ReLU and, with the
//! ImageNet stem, a 3x3 stride-2 `maxpool`), four stages `layer1..layer4`
//! of residual blocks, a global average pool and one linear layer `fc`.
//! A BasicBlock is `conv1 (3x3) -> bn1 -> relu -> conv2 (3x3) -> bn2`, a
//! Bottleneck `conv1 (1x1) -> bn1 -> relu -> conv2 (3x3) -> bn2 -> relu ->
//! conv3 (1x1) -> bn3`; either adds its input back, through `downsample`
//! (1x1 conv + BatchNorm) when it changes the width or the resolution, and
//! ends with a ReLU. The first block of stages 2-4 has stride 2 (in `conv1`
//! of a BasicBlock, `conv2` of a Bottleneck, and `downsample`).
//!
//! In the model's chain each block is a [`Layer::Fork`], its body, a
//! [`Layer::Add`] and a ReLU. As for VGG only the *pattern* (block kind
//! and blocks per stage) identifies a family member; widths come from the
//! tensors, so a squeezed ResNet-18 is still a ResNet-18.
//!
//! Two stems are recognised from `conv1`'s kernel: 7x7 is torchvision's
//! ImageNet stem (stride 2, padding 3, then the max-pool); 3x3 is the
//! CIFAR-style stem of 32x32 models (stride 1, padding 1, no max-pool).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::Tensor;

use crate::checkpoint::recorded_input;
use crate::error::{Error, Result};
use crate::layer::{strided_conv2d, BatchNorm2d, Layer, Linear, Shortcut};
use crate::model::{ActShape, Model};

/// torchvision's BatchNorm2d default epsilon.
const BN_EPS: f64 = 1e-5;

/// The two residual block designs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18 and -34).
    Basic,
    /// 1x1, 3x3, 1x1 convolutions (ResNet-50, -101, -152).
    Bottleneck,
}

impl BlockKind {
    /// Convolutions in the block's body.
    pub fn convs(self) -> usize {
        match self {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        }
    }
}

/// A ResNet family member: block design and blocks per stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResNetArch {
    /// Block design.
    pub kind: BlockKind,
    /// Number of blocks in each stage (`layer1`, `layer2`, ...).
    pub blocks: Vec<usize>,
}

/// torchvision's five ResNets.
const FAMILY: [(&str, BlockKind, [usize; 4]); 5] = [
    ("resnet18", BlockKind::Basic, [2, 2, 2, 2]),
    ("resnet34", BlockKind::Basic, [3, 4, 6, 3]),
    ("resnet50", BlockKind::Bottleneck, [3, 4, 6, 3]),
    ("resnet101", BlockKind::Bottleneck, [3, 4, 23, 3]),
    ("resnet152", BlockKind::Bottleneck, [3, 8, 36, 3]),
];

impl ResNetArch {
    /// The torchvision name (`resnet50`), or `resnet-custom`.
    pub fn name(&self) -> String {
        FAMILY
            .iter()
            .find(|(_, kind, blocks)| *kind == self.kind && blocks.as_slice() == self.blocks.as_slice())
            .map_or("resnet-custom", |(name, ..)| name)
            .to_string()
    }
}

impl fmt::Display for ResNetArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for ResNetArch {
    type Err = String;

    /// Parses `resnet18`, `resnet34`, `resnet50`, `resnet101` or `resnet152`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        FAMILY
            .iter()
            .find(|(name, ..)| *name == s)
            .map(|(_, kind, blocks)| Self { kind: *kind, blocks: blocks.to_vec() })
            .ok_or_else(|| {
                format!("unknown architecture `{s}` (expected resnet18, resnet34, resnet50, resnet101 or resnet152)")
            })
    }
}

/// Where each layer of a residual chain sits: the torchvision names and
/// the stage pattern, read off the structure.
struct Walk {
    names: Vec<String>,
    /// Blocks per stage.
    stages: Vec<usize>,
    /// Body convolutions per block, in order.
    convs_per_block: Vec<usize>,
}

/// Names the layers of a residual chain the way torchvision names them.
///
/// The first block opens `layer1`; every later block whose shortcut is a
/// projection opens the next stage, as torchvision only puts a
/// `downsample` in the first block of a stage.
fn walk(layers: &[Layer]) -> Walk {
    let mut names = Vec::with_capacity(layers.len());
    let mut stages: Vec<usize> = Vec::new();
    let mut convs_per_block = Vec::new();
    // The block being read (`layerS.B`), and how many convs, BatchNorms and
    // ReLUs its body has had so far.
    let mut block: Option<String> = None;
    let mut last_block: Option<String> = None;
    let (mut convs, mut bns, mut relus, mut linears) = (0, 0, 0, 0);
    for (i, layer) in layers.iter().enumerate() {
        let name = match (layer, &block) {
            (Layer::Fork, _) => {
                let closing = layers[i + 1..].iter().find(|l| matches!(l, Layer::Add(_)));
                let projects = matches!(closing, Some(Layer::Add(Shortcut::Projection { .. })));
                if stages.is_empty() || projects {
                    stages.push(1);
                } else {
                    *stages.last_mut().expect("not empty") += 1;
                }
                let name = format!("layer{}.{}", stages.len(), stages.last().expect("not empty") - 1);
                block = Some(name.clone());
                (convs, bns, relus) = (0, 0, 0);
                name
            }
            (Layer::Add(shortcut), Some(b)) => {
                convs_per_block.push(convs);
                let name = match shortcut {
                    Shortcut::Identity => format!("{b}.add"),
                    Shortcut::Projection { .. } => format!("{b}.downsample"),
                };
                last_block = block.take();
                name
            }
            (Layer::Conv2d(_), Some(b)) => {
                convs += 1;
                format!("{b}.conv{convs}")
            }
            (Layer::BatchNorm2d(_), Some(b)) => {
                bns += 1;
                format!("{b}.bn{bns}")
            }
            (Layer::Relu, Some(b)) => {
                relus += 1;
                format!("{b}.relu{relus}")
            }
            (Layer::Relu, None) => match &last_block {
                Some(b) => format!("{b}.relu"),
                None => "relu".to_string(),
            },
            (Layer::Conv2d(_), None) => "conv1".to_string(),
            (Layer::BatchNorm2d(_), None) => "bn1".to_string(),
            (Layer::MaxPool2d { .. }, None) => "maxpool".to_string(),
            (Layer::GlobalAvgPool, _) => "avgpool".to_string(),
            (Layer::Flatten, _) => "flatten".to_string(),
            (Layer::Linear(_), _) => {
                linears += 1;
                if linears == 1 {
                    "fc".to_string()
                } else {
                    format!("fc{linears}")
                }
            }
            (other, Some(b)) => format!("{b}.{}", other.kind()),
            (other, None) => other.kind().to_string(),
        };
        names.push(name);
    }
    Walk { names, stages, convs_per_block }
}

/// torchvision names of the layers of a residual chain.
pub(crate) fn names(layers: &[Layer]) -> Vec<String> {
    walk(layers).names
}

/// The architecture of a residual chain: a torchvision name when the pattern
/// is one of theirs, `resnet-custom` otherwise.
pub(crate) fn arch_name(layers: &[Layer]) -> String {
    let walk = walk(layers);
    let kind = match walk.convs_per_block.first() {
        Some(2) if walk.convs_per_block.iter().all(|&c| c == 2) => BlockKind::Basic,
        Some(3) if walk.convs_per_block.iter().all(|&c| c == 3) => BlockKind::Bottleneck,
        _ => return "resnet-custom".into(),
    };
    ResNetArch { kind, blocks: walk.stages }.name()
}

/// Whether a checkpoint's keys are a torchvision ResNet's (`conv1.weight`,
/// `layerN.*`) rather than a VGG's (`features.N.*`).
pub(crate) fn is_resnet(keys: &[&str]) -> bool {
    !keys.iter().any(|k| k.starts_with("features."))
        && keys.iter().any(|k| k.starts_with("layer") || *k == "conv1.weight")
}

/// Builds a ResNet from a torchvision `state_dict` (keys without
/// `num_batches_tracked`); `path` is only used in errors.
pub(crate) fn from_tensors(
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
