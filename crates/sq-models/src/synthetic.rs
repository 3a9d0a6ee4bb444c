//! Randomly initialised VGG and ResNet networks of any size, for tests and
//! benchmarks.
//!
//! A real checkpoint is one fixed size; tests of loaders, surgery and
//! capture need many small ones (every family, with and without BatchNorm,
//! feature maps larger than 1x1 before the flatten). Weights are
//! Kaiming-uniform and BatchNorm statistics are perturbed away from the
//! identity, so that no test passes merely because a layer is trivial.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::layer::{conv2d, BatchNorm2d, Layer, Linear};
use crate::model::Model;
use crate::resnet::{BlockKind, ResNetArch};
use crate::shape::ActShape;
use crate::vgg::Arch;

/// The shape of a random VGG.
#[derive(Clone, Debug)]
pub struct VggSpec {
    /// Family and BatchNorm flag.
    pub arch: Arch,
    /// Output channels of each conv (length `arch.conv_count()`).
    pub widths: Vec<usize>,
    /// Input channels (1 for Fashion-MNIST, 3 for CIFAR-10).
    pub in_channels: usize,
    /// Input side; the flatten reads `side / 2^stages` squared positions.
    pub input_side: usize,
    /// Output sizes of the classifier's Linear layers; the last is the class count.
    pub classifier: Vec<usize>,
}

impl VggSpec {
    /// A VGG of family `arch` with every conv `width` channels wide, input
    /// `in_channels x side x side`, one hidden Linear of `hidden` and 10 classes.
    pub fn uniform(arch: Arch, width: usize, in_channels: usize, side: usize, hidden: usize) -> Self {
        let widths = vec![width; arch.conv_count()];
        Self { arch, widths, in_channels, input_side: side, classifier: vec![hidden, 10] }
    }

    /// Builds the model with weights drawn from a generator seeded by `seed`.
    pub fn build(&self, seed: u64) -> Result<Model> {
        let mut rng = Random::new(seed);
        let mut layers = Vec::new();
        let mut channels = self.in_channels;
        let mut widths = self.widths.iter();
        for &convs in &self.arch.stages {
            for _ in 0..convs {
                let out = *widths.next().expect("one width per conv");
                let weight = rng.conv(out, channels, 3)?;
                let bias = rng.uniform(&[out], -0.1, 0.1)?;
                layers.push(Layer::Conv2d(conv2d(weight, Some(bias), 1)?));
                if self.arch.batch_norm {
                    let [gamma, beta, mean, var] = rng.batch_norm(out)?;
                    layers.push(Layer::BatchNorm2d(BatchNorm2d::new(gamma, beta, mean, var, 1e-5)?));
                }
                layers.push(Layer::Relu);
                channels = out;
            }
            layers.push(Layer::MaxPool2d { kernel: 2, stride: 2, padding: 0 });
        }
        layers.push(Layer::Flatten);
        let side = self.input_side >> self.arch.stages.len();
        let mut features = channels * side * side;
        for (i, &out) in self.classifier.iter().enumerate() {
            if i > 0 {
                layers.extend([Layer::Relu, Layer::Dropout]);
            }
            let bound = (6.0 / features as f32).sqrt();
            let weight = rng.uniform(&[out, features], -bound, bound)?;
            let bias = rng.uniform(&[out], -0.1, 0.1)?;
            layers.push(Layer::Linear(Linear::new(weight, Some(bias))));
            features = out;
        }
        let input = ActShape::Map { c: self.in_channels, h: self.input_side, w: self.input_side };
        Model::new(input, layers, Default::default())
    }
}

/// A seeded source of the random tensors both builders draw.
struct Random(StdRng);

impl Random {
    fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// Uniform values in `lo..hi`.
    fn uniform(&mut self, shape: &[usize], lo: f32, hi: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.0.random_range(lo..hi)).collect();
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }

    /// A Kaiming-uniform convolution weight `out x in x k x k`.
    fn conv(&mut self, out: usize, inp: usize, k: usize) -> Result<Tensor> {
        let bound = (6.0 / (inp * k * k) as f32).sqrt();
        self.uniform(&[out, inp, k, k], -bound, bound)
    }

    /// BatchNorm's `weight`, `bias`, `running_mean`, `running_var`, away
    /// from the identity.
    fn batch_norm(&mut self, c: usize) -> Result<[Tensor; 4]> {
        Ok([
            self.uniform(&[c], 0.5, 1.5)?,
            self.uniform(&[c], -0.2, 0.2)?,
            self.uniform(&[c], -0.2, 0.2)?,
            self.uniform(&[c], 0.5, 1.5)?,
        ])
    }
}

/// The stem of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// torchvision's: 7x7 stride-2 conv, then a 3x3 stride-2 max-pool.
    ImageNet,
    /// For 32x32 inputs: a 3x3 stride-1 conv, no max-pool.
    Cifar,
}

/// The shape of a random ResNet.
#[derive(Clone, Debug)]
pub struct ResNetSpec {
    /// Block design and blocks per stage.
    pub arch: ResNetArch,
    /// Stem design.
    pub stem: Stem,
    /// Output channels of the stem convolution.
    pub stem_width: usize,
    /// `planes` of each stage: the body width; a stage outputs `planes`
    /// channels (BasicBlock) or `4 * planes` (Bottleneck).
    pub planes: Vec<usize>,
    /// Input channels.
    pub in_channels: usize,
    /// Input side.
    pub input_side: usize,
    /// Number of classes.
    pub classes: usize,
}

impl ResNetSpec {
    /// A ResNet of family `arch` whose stages have `planes`, `2 planes`,
    /// `4 planes`, ... channels in their bodies, like torchvision's with
    /// `planes = 64`.
    pub fn uniform(arch: ResNetArch, stem: Stem, planes: usize, in_channels: usize, side: usize) -> Self {
        let stages = arch.blocks.len();
        Self {
            arch,
            stem,
            stem_width: planes,
            planes: (0..stages).map(|s| planes << s).collect(),
            in_channels,
            input_side: side,
            classes: 10,
        }
    }

    /// The torchvision `state_dict` of the network, weights drawn from a
    /// generator seeded by `seed`.
    pub fn state_dict(&self, seed: u64) -> Result<BTreeMap<String, Tensor>> {
        let mut rng = Random::new(seed);
        let mut tensors = BTreeMap::new();
        let put_bn = |tensors: &mut BTreeMap<String, Tensor>, rng: &mut Random, name: &str, c: usize| -> Result<()> {
            let [gamma, beta, mean, var] = rng.batch_norm(c)?;
            for (suffix, t) in [("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)] {
                tensors.insert(format!("{name}.{suffix}"), t);
            }
            Ok(())
        };
        let stem_kernel = match self.stem {
            Stem::ImageNet => 7,
            Stem::Cifar => 3,
        };
        tensors.insert("conv1.weight".into(), rng.conv(self.stem_width, self.in_channels, stem_kernel)?);
        put_bn(&mut tensors, &mut rng, "bn1", self.stem_width)?;
        let mut channels = self.stem_width;
        for (s, (&blocks, &planes)) in self.arch.blocks.iter().zip(&self.planes).enumerate() {
            let out = match self.arch.kind {
                BlockKind::Basic => planes,
                BlockKind::Bottleneck => 4 * planes,
            };
            for b in 0..blocks {
                let name = format!("layer{}.{b}", s + 1);
                let body: Vec<(usize, usize, usize)> = match self.arch.kind {
                    BlockKind::Basic => vec![(planes, channels, 3), (out, planes, 3)],
                    BlockKind::Bottleneck => vec![(planes, channels, 1), (planes, planes, 3), (out, planes, 1)],
                };
                for (k, &(o, i, kernel)) in body.iter().enumerate() {
                    tensors.insert(format!("{name}.conv{}.weight", k + 1), rng.conv(o, i, kernel)?);
                    put_bn(&mut tensors, &mut rng, &format!("{name}.bn{}", k + 1), o)?;
                }
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                if stride != 1 || channels != out {
                    tensors.insert(format!("{name}.downsample.0.weight"), rng.conv(out, channels, 1)?);
                    put_bn(&mut tensors, &mut rng, &format!("{name}.downsample.1"), out)?;
                }
                channels = out;
            }
        }
        let bound = (6.0 / channels as f32).sqrt();
        tensors.insert("fc.weight".into(), rng.uniform(&[self.classes, channels], -bound, bound)?);
        tensors.insert("fc.bias".into(), rng.uniform(&[self.classes], -0.1, 0.1)?);
        Ok(tensors)
    }

    /// Builds the model with weights drawn from a generator seeded by `seed`.
    pub fn build(&self, seed: u64) -> Result<Model> {
        let side = self.input_side;
        let metadata = BTreeMap::from([("input".to_string(), format!("{}x{side}x{side}", self.in_channels))]);
        crate::checkpoint::from_state_dict(self.state_dict(seed)?, metadata, None)
    }
}

/// Makes output unit `copy` of the convolution `layer` of a ResNet
/// `state_dict` (`conv1`, `layer1.0.conv2`, `layer2.0.downsample`) and of
/// the BatchNorm after it exactly `scale > 0` times unit `source`: the
/// same filter, and `gamma`, `beta` scaled. Since ReLU commutes with
/// positive scaling and zero padding stays zero, the copy stays an exact
/// multiple of its source wherever it flows, which is what known-answer
/// tests of squeezing need.
pub fn plant_scaled_copy(
    state: &mut BTreeMap<String, Tensor>,
    layer: &str,
    source: usize,
    copy: usize,
    scale: f32,
) -> Result<()> {
    let (conv, bn) = match layer.strip_suffix(".downsample") {
        Some(block) => (format!("{block}.downsample.0"), format!("{block}.downsample.1")),
        None => {
            let (prefix, index) = layer.rsplit_once("conv").ok_or_else(|| crate::Error::Invalid {
                layer: layer.into(),
                message: "not a ResNet convolution name".into(),
            })?;
            (layer.to_string(), format!("{prefix}bn{index}"))
        }
    };
    let set_row = |state: &mut BTreeMap<String, Tensor>, key: String, factor: f32| -> Result<()> {
        let t =
            state.get(&key).ok_or_else(|| crate::Error::Invalid { layer: key.clone(), message: "missing".into() })?;
        let rows = t.dims()[0];
        let row = t.narrow(0, source, 1)?.affine(f64::from(factor), 0.0)?;
        let parts: Vec<Tensor> = (0..rows)
            .map(|r| if r == copy { Ok(row.clone()) } else { t.narrow(0, r, 1) })
            .collect::<candle_core::Result<_>>()?;
        state.insert(key, Tensor::cat(&parts, 0)?);
        Ok(())
    };
    set_row(state, format!("{conv}.weight"), 1.0)?;
    set_row(state, format!("{bn}.weight"), scale)?;
    set_row(state, format!("{bn}.bias"), scale)?;
    set_row(state, format!("{bn}.running_mean"), 1.0)?;
    set_row(state, format!("{bn}.running_var"), 1.0)
}
