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

use std::fmt;
use std::str::FromStr;

use crate::layer::{Layer, Shortcut};

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
