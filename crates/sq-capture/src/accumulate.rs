//! Turning tapped tensors into moments, for one tensor or a whole dataset.

use candle_core::Tensor;
use sq_linalg::Moments;
use sq_models::dataset::{Dataset, Preprocess};
use sq_models::Model;

use crate::error::{CaptureError, Result};
use crate::stats::{LayerStats, Stats};

/// Adds the units of one tapped batch to `moments`: an `N x C x H x W`
/// tensor gives `N*H*W` samples of `C` units, an `N x F` tensor `N` samples
/// of `F` units. One matrix product per batch.
pub fn accumulate(moments: &mut Moments, x: &Tensor) -> Result<()> {
    let rows = match x.dims() {
        [n, _, h, w] => n * h * w,
        [n, _] => *n,
        dims => {
            return Err(
                candle_core::Error::Msg(format!("cannot take unit statistics of a tensor of shape {dims:?}")).into()
            )
        }
    };
    let samples = if x.rank() == 4 { x.permute((0, 2, 3, 1))? } else { x.clone() };
    let data = samples.flatten_all()?.to_vec1::<f32>()?;
    moments.update_f32(&data, rows)?;
    Ok(())
}

/// Captures the statistics of every link of `model` over all of `data`, one
/// forward pass per batch of `batch` images, through the runner's hook.
/// `progress` is called with the number of images done after every batch.
pub fn capture(
    model: &Model,
    data: &Dataset,
    pre: &Preprocess,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Stats> {
    let links = model.links();
    let mut layers: Vec<LayerStats> =
        links.iter().map(|l| LayerStats::new(model.name(l.producer), l.shape.units(), l.shape.positions())).collect();
    let batch = batch.max(1);
    for lo in (0..data.len()).step_by(batch) {
        let hi = (lo + batch).min(data.len());
        let x = pre.batch(data, lo..hi).map_err(sq_models::ModelError::from)?;
        model.forward_with(&x, |i, input| {
            for (stats, _) in layers.iter_mut().zip(&links).filter(|(_, l)| l.tap == i) {
                accumulate(&mut stats.moments, input)?;
            }
            Ok::<_, CaptureError>(())
        })?;
        progress(hi);
    }
    Ok(Stats::new(layers))
}
