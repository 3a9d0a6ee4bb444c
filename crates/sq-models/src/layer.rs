//! The layers VGG- and ResNet-style networks are made of, as plain values.
//!
//! Convolutions and linear layers are candle-nn's own modules; BatchNorm is
//! ours because inference only needs the per-channel affine map it reduces
//! to, which we precompute once (two passes over the activation instead of
//! four). Every layer exposes its tensors so that model surgery can read them
//! and build a new, smaller layer.

use candle_core::{Module, Tensor};
pub use candle_nn::{Conv2d, Conv2dConfig, Linear};

use crate::error::{Error, Result};
use crate::flow::Flow;

/// torchvision's BatchNorm2d default epsilon.
pub(crate) const BN_EPS: f64 = 1e-5;

/// BatchNorm2d in inference mode: `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
    /// `gamma / sqrt(var + eps)`, shaped `(1, C, 1, 1)`.
    scale: Tensor,
    /// `beta - mean * scale`, shaped `(1, C, 1, 1)`.
    shift: Tensor,
}

impl BatchNorm2d {
    /// Builds a BatchNorm from its four per-channel vectors (all of length C).
    pub fn new(
        gamma: Tensor,
        beta: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        eps: f64,
    ) -> candle_core::Result<Self> {
        let c = gamma.dims1()?;
        for (name, t) in [("beta", &beta), ("running_mean", &running_mean), ("running_var", &running_var)] {
            if t.dims1()? != c {
                candle_core::bail!("batch norm: {name} has {} entries, gamma has {c}", t.dims1()?);
            }
        }
        let scale = gamma.div(&(running_var.affine(1.0, eps)?.sqrt()?))?;
        let shift = beta.sub(&running_mean.mul(&scale)?)?;
        Ok(Self {
            scale: scale.reshape((1, c, 1, 1))?,
            shift: shift.reshape((1, c, 1, 1))?,
            gamma,
            beta,
            running_mean,
            running_var,
            eps,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.gamma.dims()[0]
    }
    /// The learned scale (`weight` in PyTorch).
    pub fn gamma(&self) -> &Tensor {
        &self.gamma
    }
    /// The learned shift (`bias` in PyTorch).
    pub fn beta(&self) -> &Tensor {
        &self.beta
    }
    /// Running mean recorded during training.
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }
    /// Running variance recorded during training.
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }
    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }
    /// Per-channel factor of the equivalent affine map, shape `(C)`.
    pub fn scale(&self) -> candle_core::Result<Tensor> {
        self.scale.flatten_all()
    }
    /// Per-channel offset of the equivalent affine map, shape `(C)`.
    pub fn shift(&self) -> candle_core::Result<Tensor> {
        self.shift.flatten_all()
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

/// What a residual block adds back to its body's output: its own input,
/// either as is or through torchvision's `downsample` (a 1x1 convolution,
/// possibly strided, and a BatchNorm) when the block changes the width or
/// the resolution.
#[derive(Clone, Debug)]
pub enum Shortcut {
    /// The block's input, unchanged.
    Identity,
    /// `bn(conv(input))`.
    Projection {
        /// The 1x1 convolution (`downsample.0`).
        conv: Conv2d,
        /// Its BatchNorm (`downsample.1`).
        bn: BatchNorm2d,
    },
}

impl Shortcut {
    /// Runs the shortcut on the block's input.
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Shortcut::Identity => Ok(input.clone()),
            Shortcut::Projection { conv, bn } => bn.forward(&conv.forward(input)?),
        }
    }
}

/// One layer of a feed-forward chain.
///
/// Residual networks stay a chain: [`Layer::Fork`] opens a block and keeps
/// its input aside, the block's body follows as ordinary layers, and
/// [`Layer::Add`] closes it by adding the kept input back through its
/// [`Shortcut`]. Blocks may nest; each `Add` closes the innermost open one.
#[derive(Clone, Debug)]
pub enum Layer {
    /// 2-D convolution (weight `out x in x kh x kw`).
    Conv2d(Conv2d),
    /// Per-channel normalisation with running statistics.
    BatchNorm2d(BatchNorm2d),
    /// Rectified linear unit.
    Relu,
    /// Max pooling with a square window.
    MaxPool2d {
        /// Window side.
        kernel: usize,
        /// Step between windows.
        stride: usize,
        /// Implicit negative infinity added on every side (ResNet's
        /// ImageNet stem pools 3x3, stride 2, padding 1).
        padding: usize,
    },
    /// Opens a residual block: passes its input on unchanged and keeps it
    /// for the [`Layer::Add`] that closes the block.
    Fork,
    /// Closes the innermost open residual block: adds the block's input,
    /// through the shortcut, to the body's output.
    Add(Shortcut),
    /// Mean over all spatial positions, keeping a `C x 1 x 1` map
    /// (torchvision's `AdaptiveAvgPool2d((1, 1))`, ResNet's `avgpool`).
    GlobalAvgPool,
    /// `N x C x H x W -> N x (C*H*W)`, channel-major as in PyTorch.
    Flatten,
    /// Fully connected layer (weight `out x in`).
    Linear(Linear),
    /// Dropout: the identity at inference, kept so that names match PyTorch.
    Dropout,
}

impl Layer {
    /// A short lowercase name of the layer kind, for tables and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Conv2d(_) => "conv2d",
            Layer::BatchNorm2d(_) => "batchnorm2d",
            Layer::Relu => "relu",
            Layer::MaxPool2d { .. } => "maxpool2d",
            Layer::Fork => "fork",
            Layer::Add(_) => "add",
            Layer::GlobalAvgPool => "avgpool",
            Layer::Flatten => "flatten",
            Layer::Linear(_) => "linear",
            Layer::Dropout => "dropout",
        }
    }

    /// True for the layers whose output units squeeze may remove and whose
    /// input units it may fold a reconstruction into: convolutions and
    /// linear layers.
    pub fn is_linear_operator(&self) -> bool {
        matches!(self, Layer::Conv2d(_) | Layer::Linear(_))
    }

    /// True for the layers whose input a hook of [`Model::forward_with`](crate::Model::forward_with)
    /// sees: convolutions, linear layers and the flatten. Every
    /// [`Link::tap`](crate::Link::tap) is one, and each starts a step of the
    /// execution plan, so the tensor it reads exists between two fused steps.
    pub fn is_tap_point(&self) -> bool {
        self.is_linear_operator() || matches!(self, Layer::Flatten)
    }

    /// True for the layers that compute each output unit from the same
    /// input unit alone (BatchNorm, ReLU, pooling, dropout, flatten): the
    /// units a producer removes can be dropped from their output by dropping
    /// them from their input. Only these may sit inside a [`Link`](crate::Link).
    pub fn is_unit_wise(&self) -> bool {
        matches!(
            self,
            Layer::BatchNorm2d(_)
                | Layer::Relu
                | Layer::MaxPool2d { .. }
                | Layer::GlobalAvgPool
                | Layer::Flatten
                | Layer::Dropout
        )
    }

    /// Runs the layer in inference mode on `flow`, the activation with the
    /// inputs of the residual blocks still open (a [`Layer::Fork`] pushes
    /// one, a [`Layer::Add`] pops one; every other layer reads only the
    /// activation).
    pub fn forward(&self, flow: &mut Flow) -> candle_core::Result<()> {
        let x = &flow.x;
        flow.x = match self {
            Layer::Conv2d(conv) => conv.forward(x)?,
            Layer::BatchNorm2d(bn) => bn.forward(x)?,
            Layer::Relu => x.relu()?,
            Layer::MaxPool2d { kernel, stride, padding } => {
                pad_for_max(x, *padding)?.max_pool2d_with_stride(*kernel, *stride)?
            }
            Layer::Flatten => x.flatten_from(1)?,
            Layer::Linear(linear) => linear.forward(x)?,
            Layer::Dropout => x.clone(),
            Layer::Fork => {
                flow.open.push(x.clone());
                return Ok(());
            }
            Layer::Add(shortcut) => {
                let input = flow
                    .open
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("an add closes no open residual block".into()))?;
                x.add(&shortcut.forward(&input)?)?
            }
            Layer::GlobalAvgPool => x.mean_keepdim(3)?.mean_keepdim(2)?,
        };
        Ok(())
    }

    /// The learnable tensors of the layer with their PyTorch suffixes
    /// (`weight`, `bias`, `running_mean`, `running_var`).
    pub fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Layer::Conv2d(conv) => with_bias(conv.weight(), conv.bias()),
            Layer::Linear(linear) => with_bias(linear.weight(), linear.bias()),
            Layer::BatchNorm2d(bn) => vec![
                ("weight", bn.gamma()),
                ("bias", bn.beta()),
                ("running_mean", bn.running_mean()),
                ("running_var", bn.running_var()),
            ],
            // The layer is named `layerS.B.downsample`, like torchvision's
            // `Sequential(conv, bn)`.
            Layer::Add(Shortcut::Projection { conv, bn }) => {
                let mut v = vec![("0.weight", conv.weight())];
                if let Some(bias) = conv.bias() {
                    v.push(("0.bias", bias));
                }
                v.extend([
                    ("1.weight", bn.gamma()),
                    ("1.bias", bn.beta()),
                    ("1.running_mean", bn.running_mean()),
                    ("1.running_var", bn.running_var()),
                ]);
                v
            }
            Layer::Relu
            | Layer::MaxPool2d { .. }
            | Layer::Flatten
            | Layer::Dropout
            | Layer::Fork
            | Layer::Add(Shortcut::Identity)
            | Layer::GlobalAvgPool => Vec::new(),
        }
    }

    /// The L1 norm of each output unit's weights (a conv filter or a row of
    /// a linear layer): the magnitude score of L1 filter pruning (Li et al.
    /// 2017). `None` for layers without output units of their own.
    pub fn unit_l1_norms(&self) -> Option<candle_core::Result<Vec<f64>>> {
        let weight = match self {
            Layer::Conv2d(conv) => conv.weight(),
            Layer::Linear(linear) => linear.weight(),
            _ => return None,
        };
        let norms = || {
            let out = weight.dims()[0];
            Ok(weight.abs()?.reshape((out, ()))?.sum(1)?.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
        };
        Some(norms())
    }

    /// Number of learnable parameters (running statistics of BatchNorm count
    /// as parameters too: they are stored and shipped with the model).
    pub fn param_count(&self) -> usize {
        self.tensors().iter().map(|(_, t)| t.elem_count()).sum()
    }
}

/// `x` with `padding` columns and rows of negative infinity on every side,
/// which no maximum ever picks.
fn pad_for_max(x: &Tensor, padding: usize) -> candle_core::Result<Tensor> {
    if padding == 0 {
        return Ok(x.clone());
    }
    let (n, c, h, w) = x.dims4()?;
    let rows = Tensor::full(f32::NEG_INFINITY, (n, c, padding, w), x.device())?;
    let x = Tensor::cat(&[&rows, x, &rows], 2)?;
    let cols = Tensor::full(f32::NEG_INFINITY, (n, c, h + 2 * padding, padding), x.device())?;
    Tensor::cat(&[&cols, &x, &cols], 3)
}

fn with_bias<'a>(weight: &'a Tensor, bias: Option<&'a Tensor>) -> Vec<(&'static str, &'a Tensor)> {
    let mut v = vec![("weight", weight)];
    if let Some(b) = bias {
        v.push(("bias", b));
    }
    v
}

/// A 3x3-style convolution with stride 1 and the given padding, as VGG uses.
pub fn conv2d(weight: Tensor, bias: Option<Tensor>, padding: usize) -> Result<Conv2d> {
    strided_conv2d(weight, bias, 1, padding)
}

/// A square convolution with the given stride and padding (ResNet's stems,
/// downsampling convolutions and 1x1 projections).
pub fn strided_conv2d(weight: Tensor, bias: Option<Tensor>, stride: usize, padding: usize) -> Result<Conv2d> {
    let (out_c, _, kh, kw) = weight.dims4()?;
    if kh != kw {
        return Err(Error::Invalid {
            layer: "conv2d".into(),
            message: format!("non-square kernel {kh}x{kw} is not supported"),
        });
    }
    if let Some(b) = &bias {
        if b.dims1()? != out_c {
            return Err(Error::Invalid {
                layer: "conv2d".into(),
                message: format!("bias has {} entries for {out_c} output channels", b.dims1()?),
            });
        }
    }
    if stride == 0 {
        return Err(Error::Invalid { layer: "conv2d".into(), message: "stride 0".into() });
    }
    let config = Conv2dConfig { padding, stride, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    Ok(Conv2d::new(weight, bias, config))
}

/// The convolution computing `bn(conv(x))`, with the formula of
/// [`fold_batchnorm`](crate::transform::fold_batchnorm).
pub fn fold_into_conv(conv: &Conv2d, bn: &BatchNorm2d) -> Result<Conv2d> {
    let scale = bn.scale()?;
    let out = scale.dims1()?;
    let weight = conv.weight().broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
    let bias = match conv.bias() {
        Some(b) => b.mul(&scale)?,
        None => Tensor::zeros(out, scale.dtype(), scale.device())?,
    }
    .add(&bn.shift()?)?;
    Ok(Conv2d::new(weight, Some(bias), *conv.config()))
}
