//! The layers a VGG-style network is made of, as plain values.
//!
//! Convolutions and linear layers are candle-nn's own modules; BatchNorm is
//! ours because inference only needs the per-channel affine map it reduces
//! to, which we precompute once (two passes over the activation instead of
//! four). Every layer exposes its tensors so that model surgery can read them
//! and build a new, smaller layer.

use candle_core::{Module, Tensor};
pub use candle_nn::{Conv2d, Conv2dConfig, Linear};

use crate::error::{Error, Result};

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

/// One layer of a feed-forward chain.
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
    },
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

    /// Runs the layer in inference mode.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Layer::Conv2d(conv) => conv.forward(x),
            Layer::BatchNorm2d(bn) => bn.forward(x),
            Layer::Relu => x.relu(),
            Layer::MaxPool2d { kernel, stride } => x.max_pool2d_with_stride(*kernel, *stride),
            Layer::Flatten => x.flatten_from(1),
            Layer::Linear(linear) => linear.forward(x),
            Layer::Dropout => Ok(x.clone()),
        }
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
            Layer::Relu | Layer::MaxPool2d { .. } | Layer::Flatten | Layer::Dropout => Vec::new(),
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

fn with_bias<'a>(weight: &'a Tensor, bias: Option<&'a Tensor>) -> Vec<(&'static str, &'a Tensor)> {
    let mut v = vec![("weight", weight)];
    if let Some(b) = bias {
        v.push(("bias", b));
    }
    v
}

/// A 3x3-style convolution with stride 1 and the given padding, as VGG uses.
pub fn conv2d(weight: Tensor, bias: Option<Tensor>, padding: usize) -> Result<Conv2d> {
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
    let config = Conv2dConfig { padding, stride: 1, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    Ok(Conv2d::new(weight, bias, config))
}
