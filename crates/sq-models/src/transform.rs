//! Whole-model transformations that keep the function the model computes.

use crate::error::Result;
use crate::layer::Layer;
use crate::model::Model;

pub use crate::layer::fold_into_conv;

/// Folds every BatchNorm that directly follows a convolution into it:
/// `W' = W * scale` per output channel and `b' = b * scale + shift`, where
/// `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`.
///
/// The result computes the same function (up to float round-off) with one
/// layer fewer per block, and is named like the plain (non-BN) VGG.
pub fn fold_batchnorm(model: &Model) -> Result<Model> {
    let mut layers: Vec<Layer> = Vec::with_capacity(model.layers().len());
    for layer in model.layers() {
        match (layers.last_mut(), layer) {
            (Some(Layer::Conv2d(conv)), Layer::BatchNorm2d(bn)) => *conv = fold_into_conv(conv, bn)?,
            _ => layers.push(layer.clone()),
        }
    }
    let (input, _, metadata) = model.clone().into_parts();
    Model::new(input, layers, metadata)
}
