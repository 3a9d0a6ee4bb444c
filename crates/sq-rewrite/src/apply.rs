//! Applying a patch: a new model with a narrower producer and a compensated consumer.

use candle_core::{Device, Tensor};
use sq_linalg::Matrix;
use sq_models::{BatchNorm2d, Conv2d, Layer, Linear, Link, Model};

use crate::error::{Error, Result};
use crate::plan::{AffineMap, Patch};

/// Returns `model` with `patch` applied: the producer keeps only
/// `patch.kept` output units (so do the BatchNorms between producer and
/// consumer), and the consumer reads only those units, with the
/// reconstruction of the removed ones folded into its weights and bias.
pub fn apply(model: &Model, patch: &Patch) -> Result<Model> {
    let link = &patch.link;
    let name = model.name(link.producer);
    let mismatch = |message: String| Error::Mismatch { layer: name.clone(), message };
    let current = model.links().into_iter().find(|l| l.producer == link.producer);
    if current.as_ref() != Some(link) {
        return Err(mismatch(format!(
            "the model has no link {} -> {} of {} units",
            name,
            model.name(link.consumer),
            link.units()
        )));
    }
    let (input, mut layers, metadata) = model.clone().into_parts();
    let kept = index_tensor(&patch.kept)?;

    layers[link.producer] = match &layers[link.producer] {
        Layer::Conv2d(conv) => Layer::Conv2d(Conv2d::new(
            conv.weight().index_select(&kept, 0)?,
            conv.bias().map(|b| b.index_select(&kept, 0)).transpose()?,
            *conv.config(),
        )),
        Layer::Linear(linear) => Layer::Linear(Linear::new(
            linear.weight().index_select(&kept, 0)?,
            linear.bias().map(|b| b.index_select(&kept, 0)).transpose()?,
        )),
        other => return Err(mismatch(format!("a {} layer cannot be a producer", other.kind()))),
    };
    for i in link.between() {
        if let Layer::BatchNorm2d(bn) = &layers[i] {
            layers[i] = Layer::BatchNorm2d(BatchNorm2d::new(
                bn.gamma().index_select(&kept, 0)?,
                bn.beta().index_select(&kept, 0)?,
                bn.running_mean().index_select(&kept, 0)?,
                bn.running_var().index_select(&kept, 0)?,
                bn.eps(),
            )?);
        }
    }
    // The consumer's weight, seen as out x units x taps: taps are the kernel
    // positions of a conv, or the spatial positions a flatten spreads each
    // channel over for a linear layer (1 for a plain linear -> linear link).
    let units = link.units();
    layers[link.consumer] = match &layers[link.consumer] {
        Layer::Conv2d(conv) => {
            let dims = conv.weight().dims4()?;
            let (weight, bias) = fold(conv.weight(), conv.bias(), units, patch)?;
            Layer::Conv2d(Conv2d::new(
                weight.reshape((dims.0, patch.kept.len(), dims.2, dims.3))?,
                Some(bias),
                *conv.config(),
            ))
        }
        Layer::Linear(linear) => {
            let out = linear.weight().dims2()?.0;
            let (weight, bias) = fold(linear.weight(), linear.bias(), units, patch)?;
            Layer::Linear(Linear::new(weight.reshape((out, ()))?, Some(bias)))
        }
        other => return Err(mismatch(format!("a {} layer cannot be a consumer", other.kind()))),
    };
    Ok(Model::new(input, layers, metadata)?)
}

fn index_tensor(indices: &[usize]) -> Result<Tensor> {
    let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    Ok(Tensor::from_vec(idx, indices.len(), &Device::Cpu)?)
}

/// A consumer's weight (`out x units x taps`, flattened in that order) as an
/// `(out * taps) x units` matrix: row `(o, t)`, column `u`. Taps are the
/// kernel positions of a conv, or the spatial positions a flatten spreads
/// each channel over for a linear layer.
fn tap_matrix(weight: &Tensor, units: usize) -> Result<Matrix> {
    let out = weight.dims()[0];
    let taps = weight.elem_count() / (out * units);
    let raw = weight.flatten_all()?.to_vec1::<f32>()?;
    let at = |ot: usize, u: usize| f64::from(raw[((ot / taps) * units + u) * taps + ot % taps]);
    Ok(Matrix::from_rows(
        out * taps,
        units,
        (0..out * taps).flat_map(|ot| (0..units).map(move |u| at(ot, u))).collect(),
    )?)
}

/// How strongly `link`'s consumer reads each pair of its input units:
/// `Q = sum over taps t of W_t^T W_t` (`n x n`, symmetric PSD), where `W_t`
/// is the consumer's `out x n` weight at tap `t`. An error `e` in the
/// consumer's input costs `e^T Q e` in its output, summed over taps; this is
/// the weight of output-aware selection.
pub fn consumer_gram(model: &Model, link: &Link) -> Result<Matrix> {
    let weight = match &model.layers()[link.consumer] {
        Layer::Conv2d(conv) => conv.weight(),
        Layer::Linear(linear) => linear.weight(),
        other => {
            return Err(Error::Mismatch {
                layer: model.name(link.consumer),
                message: format!("a {} layer cannot be a consumer", other.kind()),
            })
        }
    };
    let w = tap_matrix(weight, link.units())?;
    Ok(w.transpose().matmul(&w)?)
}

/// The consumer's new weight (`out x |S| x taps`, flattened) and bias:
/// `W' = W a` tap by tap and `b' = b + sum over taps of W c`, or only the
/// kept columns of `W` without a map.
fn fold(weight: &Tensor, bias: Option<&Tensor>, units: usize, patch: &Patch) -> Result<(Tensor, Tensor)> {
    let out = weight.dims()[0];
    let taps = weight.elem_count() / (out * units);
    let w = tap_matrix(weight, units)?;
    let mut b: Vec<f64> = match bias {
        Some(b) => b.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
        None => vec![0.0; out],
    };
    let s = &patch.kept;
    let folded = match &patch.map {
        Some(AffineMap { a, c, .. }) => {
            for (ot, row) in (0..out * taps).map(|ot| (ot, w.row(ot))) {
                b[ot / taps] += row.iter().zip(c).map(|(w, c)| w * c).sum::<f64>();
            }
            w.matmul(a)?
        }
        None => w.select(&(0..out * taps).collect::<Vec<_>>(), s)?,
    };
    let new_w: Vec<f32> = (0..out)
        .flat_map(|o| (0..s.len()).flat_map(move |j| (0..taps).map(move |t| (o, j, t))))
        .map(|(o, j, t)| folded[(o * taps + t, j)] as f32)
        .collect();
    let b: Vec<f32> = b.into_iter().map(|x| x as f32).collect();
    let len = new_w.len();
    Ok((Tensor::from_vec(new_w, len, &Device::Cpu)?, Tensor::from_vec(b, out, &Device::Cpu)?))
}

/// Returns `model` with the outputs of the conv or linear layer `layer`
/// mapped unit by unit through `y -> scale * y + shift` (folded into its
/// weights and bias).
pub fn rescale_outputs(model: &Model, layer: usize, scale: &[f64], shift: &[f64]) -> Result<Model> {
    let (input, mut layers, metadata) = model.clone().into_parts();
    let name = model.name(layer);
    let fold = |weight: &Tensor, bias: Option<&Tensor>| -> Result<(Tensor, Tensor)> {
        let out = weight.dims()[0];
        if scale.len() != out || shift.len() != out {
            return Err(Error::Mismatch {
                layer: name.clone(),
                message: format!("{} scales for {out} outputs", scale.len()),
            });
        }
        let mut shape = vec![1; weight.rank()];
        shape[0] = out;
        let a = Tensor::from_vec(scale.iter().map(|&v| v as f32).collect::<Vec<_>>(), out, &Device::Cpu)?;
        let b = Tensor::from_vec(shift.iter().map(|&v| v as f32).collect::<Vec<_>>(), out, &Device::Cpu)?;
        let w = weight.broadcast_mul(&a.reshape(shape)?)?;
        let bias = match bias {
            Some(bias) => bias.mul(&a)?.add(&b)?,
            None => b,
        };
        Ok((w, bias))
    };
    layers[layer] = match &layers[layer] {
        Layer::Conv2d(conv) => {
            let (w, b) = fold(conv.weight(), conv.bias())?;
            Layer::Conv2d(Conv2d::new(w, Some(b), *conv.config()))
        }
        Layer::Linear(linear) => {
            let (w, b) = fold(linear.weight(), linear.bias())?;
            Layer::Linear(Linear::new(w, Some(b)))
        }
        other => {
            return Err(Error::Mismatch {
                layer: name,
                message: format!("a {} layer has no outputs to rescale", other.kind()),
            })
        }
    };
    Ok(Model::new(input, layers, metadata)?)
}
