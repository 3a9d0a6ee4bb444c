//! Randomly initialised VGG networks of any size, for tests and benchmarks.
//!
//! A real checkpoint is one fixed size; tests of loaders, surgery and
//! capture need many small ones (every family, with and without BatchNorm,
//! feature maps larger than 1x1 before the flatten). Weights are
//! Kaiming-uniform and BatchNorm statistics are perturbed away from the
//! identity, so that no test passes merely because a layer is trivial.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::layer::{conv2d, BatchNorm2d, Layer, Linear};
use crate::model::{ActShape, Model};
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
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform = |shape: &[usize], lo: f32, hi: f32| -> Result<Tensor> {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
            Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
        };
        let mut layers = Vec::new();
        let mut channels = self.in_channels;
        let mut widths = self.widths.iter();
        for &convs in &self.arch.stages {
            for _ in 0..convs {
                let out = *widths.next().expect("one width per conv");
                let bound = (6.0 / (channels * 9) as f32).sqrt();
                let weight = uniform(&[out, channels, 3, 3], -bound, bound)?;
                let bias = uniform(&[out], -0.1, 0.1)?;
                layers.push(Layer::Conv2d(conv2d(weight, Some(bias), 1)?));
                if self.arch.batch_norm {
                    let bn = BatchNorm2d::new(
                        uniform(&[out], 0.5, 1.5)?,
                        uniform(&[out], -0.2, 0.2)?,
                        uniform(&[out], -0.2, 0.2)?,
                        uniform(&[out], 0.5, 1.5)?,
                        1e-5,
                    )?;
                    layers.push(Layer::BatchNorm2d(bn));
                }
                layers.push(Layer::Relu);
                channels = out;
            }
            layers.push(Layer::MaxPool2d { kernel: 2, stride: 2 });
        }
        layers.push(Layer::Flatten);
        let side = self.input_side >> self.arch.stages.len();
        let mut features = channels * side * side;
        for (i, &out) in self.classifier.iter().enumerate() {
            if i > 0 {
                layers.extend([Layer::Relu, Layer::Dropout]);
            }
            let bound = (6.0 / features as f32).sqrt();
            let weight = uniform(&[out, features], -bound, bound)?;
            let bias = uniform(&[out], -0.1, 0.1)?;
            layers.push(Layer::Linear(Linear::new(weight, Some(bias))));
            features = out;
        }
        let input = ActShape::Map { c: self.in_channels, h: self.input_side, w: self.input_side };
        Model::new(input, layers, Default::default())
    }
}
