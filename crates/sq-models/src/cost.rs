//! Parameter and multiply-accumulate counts, per layer and in total.

use serde::Serialize;

use crate::layer::{Layer, Shortcut};
use crate::model::Model;
use crate::shape::ActShape;

/// The size and compute cost of one layer for one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    /// torchvision-style layer name.
    pub name: String,
    /// Layer kind (`conv2d`, `linear`, ...).
    pub kind: &'static str,
    /// Stored parameters (BatchNorm running statistics included).
    pub params: usize,
    /// Multiply-accumulate operations for one image (0 for unit-wise layers).
    pub macs: usize,
}

impl Model {
    /// Cost of every layer, in order.
    pub fn layer_costs(&self) -> Vec<LayerCost> {
        self.layers()
            .iter()
            .enumerate()
            .map(|(i, layer)| LayerCost {
                name: self.name(i),
                kind: layer.kind(),
                params: layer.param_count(),
                macs: layer_macs(layer, self.shape_before(i + 1)),
            })
            .collect()
    }

    /// Total stored parameters.
    pub fn param_count(&self) -> usize {
        self.layers().iter().map(Layer::param_count).sum()
    }

    /// The most values one image's activation holds anywhere in the model:
    /// the largest of its input and every layer's output, which sizes the
    /// batches a pass can afford.
    pub fn largest_activation(&self) -> usize {
        (0..=self.layers().len()).map(|i| self.shape_before(i).numel()).max().unwrap_or(0)
    }

    /// Total multiply-accumulates for one image, the usual "FLOPs" of CNN
    /// papers (conv and linear layers, ResNet projections included).
    pub fn macs(&self) -> usize {
        self.layer_costs().iter().map(|c| c.macs).sum()
    }
}

impl Layer {
    /// Parameters and multiply-accumulates per image this layer would have
    /// if it read `units_in` units (input channels, or features for a linear
    /// layer) and, for a conv or linear layer, wrote `units_out`, at
    /// `positions` output positions: the cost of a narrower version of it,
    /// without building one. Unit-wise layers write as many units as they
    /// read (BatchNorm stores four numbers per unit).
    pub fn cost_at(&self, units_in: usize, units_out: usize, positions: usize) -> (usize, usize) {
        match self {
            Layer::Conv2d(conv) => {
                let dims = conv.weight().dims();
                let taps = dims[2] * dims[3];
                let bias = if conv.bias().is_some() { units_out } else { 0 };
                (units_out * units_in * taps + bias, units_out * units_in * taps * positions)
            }
            Layer::Linear(linear) => {
                let bias = if linear.bias().is_some() { units_out } else { 0 };
                (units_out * units_in + bias, units_out * units_in)
            }
            Layer::BatchNorm2d(_) => (4 * units_in, 0),
            Layer::Add(Shortcut::Projection { conv, .. }) => {
                // The 1x1 projection from the block's input (`units_in`)
                // to its output (`units_out`), and its BatchNorm.
                let taps = conv.weight().dims()[2] * conv.weight().dims()[3];
                (units_out * units_in * taps + 4 * units_out, units_out * units_in * taps * positions)
            }
            Layer::Relu
            | Layer::MaxPool2d { .. }
            | Layer::Flatten
            | Layer::Dropout
            | Layer::Fork
            | Layer::Add(Shortcut::Identity)
            | Layer::GlobalAvgPool => (0, 0),
        }
    }
}

/// MACs of `layer` given the shape it outputs.
fn layer_macs(layer: &Layer, output: ActShape) -> usize {
    match layer {
        Layer::Conv2d(conv) | Layer::Add(Shortcut::Projection { conv, .. }) => {
            conv.weight().elem_count() * output.positions()
        }
        Layer::Linear(linear) => linear.weight().elem_count(),
        _ => 0,
    }
}
