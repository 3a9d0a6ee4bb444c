//! [`Flow`]: what crosses one point of a model's chain for a batch.

use candle_core::Tensor;

/// What crosses one point of a model's chain for a batch: the activation
/// and the inputs of the residual blocks open there, outermost first, which
/// their [`Layer::Add`](crate::Layer::Add)s will read. Outside any block
/// `open` is empty and a flow is just its tensor.
#[derive(Clone, Debug)]
pub struct Flow {
    /// The activation (`N x C x H x W` or `N x F`).
    pub x: Tensor,
    /// Inputs of the open residual blocks, innermost last.
    pub open: Vec<Tensor>,
}

impl Flow {
    /// A flow outside every residual block.
    pub fn new(x: Tensor) -> Self {
        Self { x, open: Vec::new() }
    }
}
