//! The layer chain as an ONNX graph: one operator (or none) per layer.
//!
//! [`build`] walks the layers in order and asks [`emit`] to translate each
//! one; `emit` is the single match over layer kinds, so a new kind is one
//! more arm that adds its nodes through the [`Builder`] and returns the
//! name of the value it produces. A kind that has no translation returns
//! [`Error::UnsupportedLayer`]. A residual block's fork adds no node: the
//! [`Builder`] remembers the block's input, and the block's add reads it
//! (through the `downsample` convolution, BatchNorm folded, if any).
//!
//! Every value is named after the layer that produces it (`features.3`,
//! `classifier.0`), every initializer after the checkpoint tensor it holds
//! (`features.3.weight`), so the ONNX file reads like the safetensors one.

use candle_core::{DType, Tensor};
use sq_models::transform::fold_into_conv;
use sq_models::{ActShape, Layer, Model, Shortcut};
use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::proto::{self, Dim};

/// Name of the graph's input, `N x C x H x W`.
pub const INPUT: &str = "input";
/// Name of the graph's output, `N x classes`.
pub const OUTPUT: &str = "logits";

/// Builds the graph of `model` (whose BatchNorms are already folded) with
/// `batch` as the first dimension of its input and output.
pub(crate) fn build(model: &Model, batch: Dim<'_>) -> Result<pb::GraphProto> {
    let ActShape::Map { c, h, w } = model.input_shape() else {
        return Err(Error::UnsupportedModel {
            reason: format!("its input is a vector of {}, not an image C x H x W", model.input_shape()),
        });
    };
    let ActShape::Vector(classes) = model.output_shape() else {
        return Err(Error::UnsupportedModel {
            reason: format!("its output is a feature map {}, not a vector of logits", model.output_shape()),
        });
    };
    let mut builder = Builder::default();
    let mut value = INPUT.to_owned();
    for index in 0..model.layers().len() {
        value = emit(&mut builder, model, index, value)?;
    }
    // The chain's last value is the output of the last node added (a map
    // input and a vector output imply at least a Flatten): rename it.
    match builder.nodes.last_mut() {
        Some(last) if last.output == [value] => last.output = vec![OUTPUT.to_owned()],
        _ => return Err(Error::UnsupportedModel { reason: "its layers produce no ONNX node".into() }),
    }
    Ok(pb::GraphProto {
        name: "squeeze".to_owned(),
        node: builder.nodes,
        initializer: builder.initializers,
        input: vec![proto::value_info(INPUT, &[batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)])],
        output: vec![proto::value_info(OUTPUT, &[batch, Dim::Fixed(classes)])],
        ..Default::default()
    })
}

/// Adds the nodes of layer `index`, which reads the value named `x`, and
/// returns the name of the value it produces.
fn emit(builder: &mut Builder, model: &Model, index: usize, x: String) -> Result<String> {
    let name = model.name(index);
    let layer = &model.layers()[index];
    match layer {
        Layer::Conv2d(conv) => {
            let (_, _, kh, kw) = conv.weight().dims4()?;
            let config = conv.config();
            let mut inputs = vec![x, builder.initializer(format!("{name}.weight"), conv.weight())?];
            if let Some(bias) = conv.bias() {
                inputs.push(builder.initializer(format!("{name}.bias"), bias)?);
            }
            let attributes = vec![
                proto::ints("kernel_shape", &[kh, kw]),
                proto::ints("pads", &[config.padding; 4]),
                proto::ints("strides", &[config.stride; 2]),
                proto::ints("dilations", &[config.dilation; 2]),
                proto::int("group", config.groups as i64),
            ];
            Ok(builder.node("Conv", name, inputs, attributes))
        }
        Layer::BatchNorm2d(_) => Err(Error::UnsupportedLayer {
            layer: name,
            kind: layer.kind(),
            reason: "only a BatchNorm directly after a convolution is exported (folded into it)".into(),
        }),
        Layer::Relu => Ok(builder.node("Relu", name, vec![x], Vec::new())),
        Layer::MaxPool2d { kernel, stride, padding } => {
            let attributes = vec![
                proto::ints("kernel_shape", &[*kernel; 2]),
                proto::ints("strides", &[*stride; 2]),
                proto::ints("pads", &[*padding; 4]),
            ];
            Ok(builder.node("MaxPool", name, vec![x], attributes))
        }
        Layer::GlobalAvgPool => Ok(builder.node("GlobalAveragePool", name, vec![x], Vec::new())),
        Layer::Fork => {
            builder.open.push(x.clone());
            Ok(x)
        }
        Layer::Add(shortcut) => {
            let input = builder
                .open
                .pop()
                .ok_or_else(|| Error::UnsupportedModel { reason: format!("{name} closes no open residual block") })?;
            let shortcut = match shortcut {
                Shortcut::Identity => input,
                Shortcut::Projection { conv, bn } => {
                    let conv = fold_into_conv(conv, bn)?;
                    let conv_name = format!("{name}.0");
                    let attributes = vec![
                        proto::ints("kernel_shape", &conv.weight().dims()[2..]),
                        proto::ints("pads", &[conv.config().padding; 4]),
                        proto::ints("strides", &[conv.config().stride; 2]),
                    ];
                    let mut inputs = vec![input, builder.initializer(format!("{conv_name}.weight"), conv.weight())?];
                    if let Some(bias) = conv.bias() {
                        inputs.push(builder.initializer(format!("{conv_name}.bias"), bias)?);
                    }
                    builder.node("Conv", conv_name, inputs, attributes)
                }
            };
            Ok(builder.node("Add", name, vec![x, shortcut], Vec::new()))
        }
        Layer::Flatten => Ok(builder.node("Flatten", name, vec![x], vec![proto::int("axis", 1)])),
        Layer::Linear(linear) => {
            // Gemm computes x W^T + b with W stored `out x in`, as PyTorch stores it.
            let mut inputs = vec![x, builder.initializer(format!("{name}.weight"), linear.weight())?];
            if let Some(bias) = linear.bias() {
                inputs.push(builder.initializer(format!("{name}.bias"), bias)?);
            }
            Ok(builder.node("Gemm", name, inputs, vec![proto::int("transB", 1)]))
        }
        // The identity at inference: no node, the value passes through.
        Layer::Dropout => Ok(x),
    }
}

/// The nodes and initializers of a graph under construction.
#[derive(Default)]
struct Builder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    /// The values entering the residual blocks open so far, innermost last.
    open: Vec<String>,
}

impl Builder {
    /// Adds node `name` computing `op` on `inputs`; its single output is
    /// also called `name`, which is returned.
    fn node(&mut self, op: &str, name: String, inputs: Vec<String>, attribute: Vec<pb::AttributeProto>) -> String {
        self.nodes.push(pb::NodeProto {
            op_type: op.to_owned(),
            name: name.clone(),
            input: inputs,
            output: vec![name.clone()],
            attribute,
            ..Default::default()
        });
        name
    }

    /// Adds `tensor` as an `f32` initializer called `name`, which is returned.
    fn initializer(&mut self, name: String, tensor: &Tensor) -> Result<String> {
        let values = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        self.initializers.push(proto::float_tensor(&name, tensor.dims(), &values));
        Ok(name)
    }
}
