//! [`Frontier`]: the calibration set's activations at one layer, advanced
//! through the model as it is squeezed.

use candle_core::{Device, Tensor};
use sq_linalg::Moments;
use sq_models::{Flow, Model};

use crate::accumulate::accumulate;
use crate::error::{Error, Result};

/// The activations of the calibration set at the input of one layer,
/// held in memory, batch by batch, with the inputs of the residual blocks
/// open there ([`Flow`]).
///
/// Sequential squeezing reads each producer's statistics off the frontier
/// at its tap, cuts, drops the removed units from the frontier
/// ([`keep_units`](Self::keep_units): the unit-wise layers in between
/// commute with deleting units) and advances it through the next layers of
/// the *squeezed* model, so the whole squeeze costs one forward pass over
/// the calibration set. Memory is the largest tapped activation of the set
/// (plus, inside a residual block, the block's input).
#[derive(Clone, Debug)]
pub struct Frontier {
    batches: Vec<Flow>,
    /// Index of the layer whose input `batches` are.
    at: usize,
}

impl Frontier {
    /// The frontier at the model's input: `batches` are preprocessed images.
    pub fn new(batches: Vec<Tensor>) -> Result<Self> {
        if batches.is_empty() {
            return Err(Error::Empty);
        }
        Ok(Self { batches: batches.into_iter().map(Flow::new).collect(), at: 0 })
    }

    /// Index of the layer whose input the activations are.
    pub fn at(&self) -> usize {
        self.at
    }

    /// The activations, batch by batch, with the inputs of the open blocks.
    pub fn batches(&self) -> &[Flow] {
        &self.batches
    }

    /// Runs `model`'s layers from the current position up to (not including)
    /// layer `to`.
    pub fn advance(&mut self, model: &Model, to: usize) -> Result<()> {
        if to < self.at {
            return Err(Error::Backwards { at: self.at, to });
        }
        for flow in &mut self.batches {
            *flow = model.forward_flow(flow.clone(), self.at..to)?;
        }
        self.at = to;
        Ok(())
    }

    /// Keeps only the units `kept` (dimension 1) of the activations, as a
    /// producer narrowed to those units would have computed them.
    pub fn keep_units(&mut self, kept: &[usize]) -> Result<()> {
        let index: Vec<u32> = kept.iter().map(|&i| i as u32).collect();
        let index = Tensor::from_vec(index, kept.len(), &Device::Cpu)?;
        for flow in &mut self.batches {
            flow.x = flow.x.index_select(&index, 1)?;
        }
        Ok(())
    }

    /// Number of units (dimension 1) of the activations.
    pub fn units(&self) -> usize {
        self.batches[0].x.dims().get(1).copied().unwrap_or(0)
    }

    /// Moments of the units over the whole calibration set.
    pub fn moments(&self) -> Result<Moments> {
        let mut moments = Moments::new(self.units());
        for flow in &self.batches {
            accumulate(&mut moments, &flow.x)?;
        }
        Ok(moments)
    }

    /// Joint moments of `[reference; self]` (`2n` units): what the consumer
    /// read in the original model (`reference`, at the same layer) and what
    /// it reads now, sample by sample, for fitting a reconstruction of the
    /// former from the latter.
    pub fn joint_moments(&self, reference: &Frontier) -> Result<Moments> {
        if reference.batches.len() != self.batches.len() {
            return Err(Error::Mismatch(format!(
                "{} reference batches vs {} current ones",
                reference.batches.len(),
                self.batches.len()
            )));
        }
        let mut joint = Moments::new(reference.units() + self.units());
        for (y, x) in reference.batches.iter().zip(&self.batches) {
            accumulate(&mut joint, &Tensor::cat(&[&y.x, &x.x], 1)?)?;
        }
        Ok(joint)
    }
}
