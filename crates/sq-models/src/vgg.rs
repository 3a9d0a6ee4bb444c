//! VGG architectures (Simonyan & Zisserman 2015) in torchvision's layout.
//!
//! torchvision builds `features` from a configuration such as
//! `64 64 M 128 128 M ...` where each number is a 3x3 conv (+ BatchNorm) +
//! ReLU and `M` a 2x2 max-pool, then flattens and runs `classifier`
//! (Linear, ReLU, Dropout, ..., Linear). Only the *stage pattern* — how many
//! convs sit between pools — identifies a family; widths come from tensor
//! shapes, so a squeezed (narrower) network is still, say, a VGG-16.

use std::fmt;
use std::str::FromStr;

use crate::layer::Layer;

/// A VGG family member: convs per stage and whether BatchNorm follows each conv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch {
    /// Number of convs in each stage; a 2x2 max-pool closes every stage.
    pub stages: Vec<usize>,
    /// Whether each conv is followed by a BatchNorm2d.
    pub batch_norm: bool,
}

/// Stage patterns of torchvision's configurations A, B, D and E.
const FAMILY: [(&str, [usize; 5]); 4] =
    [("vgg11", [1, 1, 2, 2, 2]), ("vgg13", [2, 2, 2, 2, 2]), ("vgg16", [2, 2, 3, 3, 3]), ("vgg19", [2, 2, 4, 4, 4])];

impl Arch {
    /// Total number of convolutions.
    pub fn conv_count(&self) -> usize {
        self.stages.iter().sum()
    }

    /// The torchvision name (`vgg16_bn`), or `vgg-custom` for a stage pattern
    /// outside the four standard configurations.
    pub fn name(&self) -> String {
        let base = FAMILY.iter().find(|(_, s)| s.as_slice() == self.stages.as_slice()).map_or("vgg-custom", |(n, _)| n);
        if self.batch_norm {
            format!("{base}_bn")
        } else {
            base.to_string()
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Arch {
    type Err = String;

    /// Parses `vgg11`, `vgg13`, `vgg16`, `vgg19`, each optionally with `_bn`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (base, batch_norm) = match s.strip_suffix("_bn") {
            Some(b) => (b, true),
            None => (s, false),
        };
        FAMILY
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(_, stages)| Arch { stages: stages.to_vec(), batch_norm })
            .ok_or_else(|| {
                format!("unknown architecture `{s}` (expected vgg11, vgg13, vgg16 or vgg19, optionally with _bn)")
            })
    }
}

impl Arch {
    /// Reads the stage pattern off a chain of layers: convs between
    /// max-pools ([`Arch::of`] reads a model's).
    pub(crate) fn of_layers(layers: &[Layer]) -> Arch {
        let mut stages = Vec::new();
        let mut convs = 0;
        for layer in layers {
            match layer {
                Layer::Conv2d(_) => convs += 1,
                Layer::MaxPool2d { .. } if convs > 0 => {
                    stages.push(convs);
                    convs = 0;
                }
                _ => {}
            }
        }
        if convs > 0 {
            stages.push(convs);
        }
        let batch_norm = layers.iter().any(|l| matches!(l, Layer::BatchNorm2d(_)));
        Arch { stages, batch_norm }
    }
}
