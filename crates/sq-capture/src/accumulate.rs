//! Turning tapped tensors into moments, for one tensor or a whole pass over a model.

use candle_core::Tensor;
use sha2::{Digest, Sha256};
use sq_linalg::Moments;
use sq_models::{Model, Samples};

use crate::error::{Error, Result};
use crate::stats::{LayerStats, Stats};

/// Adds the units of one tapped batch to `moments`: an `N x C x H x W`
/// tensor gives `N*H*W` samples of `C` units, an `N x F` tensor `N` samples
/// of `F` units. Matrix products over the whole batch, after one copy
/// into channel-last rows ([`Samples::from_tensor`]).
pub fn accumulate(moments: &mut Moments, x: &Tensor) -> Result<()> {
    if !matches!(x.rank(), 2 | 4) {
        return Err(Error::Rank(x.dims().to_vec()));
    }
    accumulate_samples(moments, &Samples::from_tensor(x)?)
}

/// Adds tapped [`Samples`] (rows of unit values, as the runner holds them)
/// to `moments`: one Gram product, no layout copy.
pub fn accumulate_samples(moments: &mut Moments, samples: &Samples<'_>) -> Result<()> {
    Ok(moments.update_f32(samples.values(), samples.rows())?)
}

/// Captures the statistics of every link of `model` on the original model,
/// one forward pass per batch of preprocessed images, through the runner's
/// hook ([`Model::forward_with_samples`]: the tapped activations are read
/// where the runner holds them). `progress` is called with the number of
/// images done after every batch.
pub fn capture<E>(
    model: &Model,
    batches: impl IntoIterator<Item = Result<Tensor, E>>,
    mut progress: impl FnMut(usize),
) -> Result<Stats>
where
    Error: From<E>,
{
    let links = model.links();
    let mut layers: Vec<LayerStats> =
        links.iter().map(|l| LayerStats::new(model.name(l.producer), l.shape.units(), l.shape.positions())).collect();
    let mut done = 0;
    // The shard's identity: the input values in order, however they are
    // batched; and each image's, so that partly overlapping shards are known.
    let mut data = Sha256::new();
    let mut images = Vec::new();
    for x in batches {
        let x = x?;
        let values = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        data.update(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let per_image = values.len() / x.dims()[0].max(1);
        images.extend(values.chunks(per_image.max(1)).map(crate::stats::image_fingerprint));
        model.forward_with_samples(&x, |i, input| {
            for (stats, _) in layers.iter_mut().zip(&links).filter(|(_, l)| l.tap == i) {
                accumulate_samples(&mut stats.moments, input).map_err(|e| match e {
                    Error::Linalg(sq_linalg::Error::NonFinite) => Error::NonFinite { layer: stats.name.clone() },
                    e => e,
                })?;
            }
            Ok::<_, Error>(())
        })?;
        done += x.dims()[0];
        progress(done);
    }
    let data: String = data.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Stats::new(layers).with_model(crate::stats::model_fingerprint(model)?).with_data(data).with_images(images))
}

/// Moments of the tensors read at the tap points `taps` of `model` (see
/// [`Model::forward_with_samples`]), over all `batches`: one forward pass per
/// batch. Used for the taps of a residual stream, which are not links.
pub fn capture_taps<E>(
    model: &Model,
    batches: impl IntoIterator<Item = Result<Tensor, E>>,
    taps: &[usize],
) -> Result<Vec<Moments>>
where
    Error: From<E>,
{
    let mut moments: Vec<Moments> = taps.iter().map(|&t| Moments::new(model.shape_before(t).units())).collect();
    for x in batches {
        model.forward_with_samples(&x?, |i, input| {
            for (m, _) in moments.iter_mut().zip(taps).filter(|(_, &t)| t == i) {
                accumulate_samples(m, input).map_err(|e| match e {
                    Error::Linalg(sq_linalg::Error::NonFinite) => Error::NonFiniteTap { layer: model.name(i) },
                    e => e,
                })?;
            }
            Ok::<_, Error>(())
        })?;
    }
    Ok(moments)
}
