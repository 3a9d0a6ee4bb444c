//! Model surgery for squeeze: delete units, fold their reconstruction into the consumer.
//!
//! Surgery is two pure steps, kept apart so each can be tested alone (the
//! tract idea of a *patch*: a value describing a change, with a label):
//!
//! 1. [`plan`] turns a producer/consumer [`Link`](sq_models::Link), the
//!    units to keep and the statistics of what the consumer reads into a
//!    [`Patch`]: kept and removed units plus the affine map
//!    `x_R ~ B x_S + c` with `B = C[R,S] C[S,S]^-1`, `c = mu_R - B mu_S`
//!    (the least-squares reconstruction of the removed units), or no map for
//!    plain deletion. Given joint statistics of the original and the
//!    current input ([`Statistics::Joint`]), the map instead reconstructs
//!    the *original* input from the kept units, correcting earlier cuts too.
//! 2. [`apply`] turns a model and a patch into a new, smaller model: the
//!    producer loses the removed output units (weight rows, bias, BatchNorm
//!    entries), and the consumer absorbs the map, `W'[:,S] = W[:,S] + W[:,R] B`
//!    and `b' = b + W[:,R] c` (in general `W' = W A`, `b' = b + W c`), per kernel tap for a conv consumer and per
//!    spatial position through a flatten into a linear consumer.
//!
//! A patch only changes its producer's outputs and its consumer's inputs,
//! so patches of different links compose in any order. The network's input
//! and the classifier's output are never touched: they are not producers.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sq_linalg::Moments;
//! use sq_models::{ActShape, Layer, Linear, Model};
//! use sq_rewrite::{apply, plan, Compensation, Statistics};
//!
//! // x (2) -> producer (3 units: x0, x1, x0 + x1) -> consumer (2 outputs).
//! let t = |v: Vec<f32>, shape: (usize, usize)| Tensor::from_vec(v, shape, &Device::Cpu);
//! let producer = Linear::new(t(vec![1., 0., 0., 1., 1., 1.], (3, 2))?, None);
//! let consumer = Linear::new(t(vec![1., 2., 3., -1., 0.5, 2.], (2, 3))?, Some(t(vec![0.1, 0.2], (1, 2))?.flatten_all()?));
//! let model = Model::new(ActShape::Vector(2), vec![Layer::Linear(producer), Layer::Linear(consumer)], Default::default())?;
//!
//! // Statistics of what the consumer reads, on some inputs.
//! let x = t(vec![1., 2., -1., 0.5, 3., 1., 0., -2.], (4, 2))?;
//! let hidden = model.forward_range(&x, 0..1)?;
//! let mut moments = Moments::new(3);
//! moments.update_f32(&hidden.flatten_all()?.to_vec1()?, 4)?;
//!
//! // Unit 2 is a combination of units 0 and 1: removing it changes nothing.
//! let link = &model.links()[0];
//! let patch = plan(link, "features.0", &[0, 1], Statistics::Current(&moments), Compensation::Lstsq)?;
//! let squeezed = apply(&model, &patch)?;
//! assert_eq!(squeezed.param_count(), model.param_count() - 2 - 2);
//! let gap = (model.forward(&x)? - squeezed.forward(&x)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(gap < 1e-4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod apply;
mod error;
mod plan;

pub use apply::{apply, apply_stream, consumer_gram, rescale_outputs};
pub use error::{Error, Result};
pub use plan::{plan, plan_stream, AffineMap, Compensation, Patch, Statistics, StreamPatch};
