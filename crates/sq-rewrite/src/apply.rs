//! Applying a patch: a new model with a narrower producer and a compensated consumer.

use candle_core::{Device, Tensor};
use sq_linalg::Matrix;
use sq_models::{BatchNorm2d, Conv2d, Layer, Linear, Link, Model, Shortcut};

use crate::error::{Error, Result};
use crate::plan::{AffineMap, Patch, StreamPatch};

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
    keep_outputs(&mut layers, link.producer, &patch.kept, &name)?;
    for i in link.between() {
        keep_batch_norm(&mut layers, i, &patch.kept)?;
    }
    let consumer = model.name(link.consumer);
    fold_into_reader(&mut layers, link.consumer, link.units(), &patch.kept, patch.map.as_ref(), &consumer)?;
    Ok(Model::new(input, layers, metadata)?)
}

/// Returns `model` with a residual stream cut: every writer keeps only
/// `patch.kept` output channels (convolution rows with the BatchNorms after
/// them, or a projection with its BatchNorm), and every reader reads only
/// those, with its own reconstruction of the removed ones folded in.
///
/// The rewrite is exact when, at every reader's tap, the removed channels
/// are affine combinations of the kept ones: each kept channel of the
/// stream is computed from the same inputs as before (every reader gets
/// back the tensor it read), and a removed channel is no longer computed
/// anywhere, because only readers ever looked at it.
pub fn apply_stream(model: &Model, patch: &StreamPatch) -> Result<Model> {
    let stream = &patch.stream;
    if !model.streams().contains(stream) {
        return Err(Error::Mismatch {
            layer: stream.name.clone(),
            message: format!("the model has no residual stream {} of {} channels", stream.name, stream.units),
        });
    }
    let (input, mut layers, metadata) = model.clone().into_parts();
    for &writer in &stream.writers {
        keep_outputs(&mut layers, writer, &patch.kept, &model.name(writer))?;
        // The BatchNorms (and other unit-wise layers) between a writer and the add.
        let mut i = writer + 1;
        while layers.get(i).is_some_and(Layer::is_unit_wise) {
            keep_batch_norm(&mut layers, i, &patch.kept)?;
            i += 1;
        }
    }
    for (reader, map) in stream.readers.iter().zip(&patch.maps) {
        let name = model.name(reader.layer);
        fold_into_reader(&mut layers, reader.layer, stream.units, &patch.kept, map.as_ref(), &name)?;
    }
    Ok(Model::new(input, layers, metadata)?)
}

/// Keeps only the output units `kept` of layer `index`: rows of a conv or
/// linear weight and bias, or of a residual block's projection and its
/// BatchNorm.
fn keep_outputs(layers: &mut [Layer], index: usize, kept: &[usize], name: &str) -> Result<()> {
    let kept = index_tensor(kept)?;
    let rows = |conv: &Conv2d| -> Result<Conv2d> {
        Ok(Conv2d::new(
            conv.weight().index_select(&kept, 0)?,
            conv.bias().map(|b| b.index_select(&kept, 0)).transpose()?,
            *conv.config(),
        ))
    };
    layers[index] = match &layers[index] {
        Layer::Conv2d(conv) => Layer::Conv2d(rows(conv)?),
        Layer::Linear(linear) => Layer::Linear(Linear::new(
            linear.weight().index_select(&kept, 0)?,
            linear.bias().map(|b| b.index_select(&kept, 0)).transpose()?,
        )),
        Layer::Add(Shortcut::Projection { conv, bn }) => {
            Layer::Add(Shortcut::Projection { conv: rows(conv)?, bn: select_batch_norm(bn, &kept)? })
        }
        other => {
            return Err(Error::Mismatch {
                layer: name.to_string(),
                message: format!("a {} layer cannot be a producer", other.kind()),
            })
        }
    };
    Ok(())
}

/// Keeps only the channels `kept` of layer `index` if it is a BatchNorm.
fn keep_batch_norm(layers: &mut [Layer], index: usize, kept: &[usize]) -> Result<()> {
    if let Layer::BatchNorm2d(bn) = &layers[index] {
        layers[index] = Layer::BatchNorm2d(select_batch_norm(bn, &index_tensor(kept)?)?);
    }
    Ok(())
}

fn select_batch_norm(bn: &BatchNorm2d, kept: &Tensor) -> Result<BatchNorm2d> {
    Ok(BatchNorm2d::new(
        bn.gamma().index_select(kept, 0)?,
        bn.beta().index_select(kept, 0)?,
        bn.running_mean().index_select(kept, 0)?,
        bn.running_var().index_select(kept, 0)?,
        bn.eps(),
    )?)
}

/// Makes layer `index` read only the units `kept` of the `units` it read,
/// with the reconstruction `map` of all of them folded into its weights and
/// bias (or the removed units' columns simply dropped without a map). A
/// bias-free convolution followed by a BatchNorm (ResNet) stays bias-free,
/// so torchvision still loads the checkpoint: `bn(y + b)` is `bn(y)` with
/// the running mean moved by `-b`.
fn fold_into_reader(
    layers: &mut [Layer],
    index: usize,
    units: usize,
    kept: &[usize],
    map: Option<&AffineMap>,
    name: &str,
) -> Result<()> {
    // A conv with the BatchNorm after it, folded, with the bias moved into
    // the BatchNorm when the conv had none.
    let fold_conv = |conv: &Conv2d, bn: Option<&BatchNorm2d>| -> Result<(Conv2d, Option<BatchNorm2d>)> {
        let dims = conv.weight().dims4()?;
        let (weight, bias) = fold(conv.weight(), conv.bias(), units, kept, map)?;
        let weight = weight.reshape((dims.0, kept.len(), dims.2, dims.3))?;
        Ok(match (conv.bias(), bn) {
            (None, Some(bn)) => {
                let bn = BatchNorm2d::new(
                    bn.gamma().clone(),
                    bn.beta().clone(),
                    bn.running_mean().sub(&bias)?,
                    bn.running_var().clone(),
                    bn.eps(),
                )?;
                (Conv2d::new(weight, None, *conv.config()), Some(bn))
            }
            _ => (Conv2d::new(weight, Some(bias), *conv.config()), bn.cloned()),
        })
    };
    match &layers[index] {
        Layer::Conv2d(conv) => {
            let next = match layers.get(index + 1) {
                Some(Layer::BatchNorm2d(bn)) => Some(bn),
                _ => None,
            };
            let (conv, bn) = fold_conv(conv, next)?;
            layers[index] = Layer::Conv2d(conv);
            if let Some(bn) = bn {
                layers[index + 1] = Layer::BatchNorm2d(bn);
            }
        }
        Layer::Linear(linear) => {
            // The weight seen as out x units x taps: taps are the spatial
            // positions a flatten spreads each channel over (1 for a plain
            // linear -> linear link).
            let out = linear.weight().dims2()?.0;
            let (weight, bias) = fold(linear.weight(), linear.bias(), units, kept, map)?;
            layers[index] = Layer::Linear(Linear::new(weight.reshape((out, ()))?, Some(bias)));
        }
        Layer::Add(Shortcut::Projection { conv, bn }) => {
            let (conv, bn) = fold_conv(conv, Some(bn))?;
            let bn = bn.expect("a projection keeps its BatchNorm");
            layers[index] = Layer::Add(Shortcut::Projection { conv, bn });
        }
        other => {
            return Err(Error::Mismatch {
                layer: name.to_string(),
                message: format!("a {} layer cannot be a consumer", other.kind()),
            })
        }
    }
    Ok(())
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
/// kept columns `s` of `W` without a map.
fn fold(
    weight: &Tensor,
    bias: Option<&Tensor>,
    units: usize,
    s: &[usize],
    map: Option<&AffineMap>,
) -> Result<(Tensor, Tensor)> {
    let out = weight.dims()[0];
    let taps = weight.elem_count() / (out * units);
    let w = tap_matrix(weight, units)?;
    let mut b: Vec<f64> = match bias {
        Some(b) => b.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
        None => vec![0.0; out],
    };
    let folded = match map {
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
