//! The execution plan: a model's layers compiled into fused steps.
//!
//! [`Model`](crate::Model) stays an editable description with BatchNorm as
//! its own layer; this module turns the description into what actually
//! runs. Each *step* covers a range of layers:
//!
//! * a convolution or linear layer, a BatchNorm right after it folded into
//!   its weights, and every unit-wise layer after that (ReLU, dropout,
//!   further BatchNorms) applied in the GEMM epilogue ([`conv`]);
//! * a max-pool or a global average pool ([`pool`]); a flatten;
//! * a residual block's fork (the input is kept aside) and its add (the
//!   kept input, through its projection if any, is added back, and the
//!   unit-wise layers after the add run in the same pass);
//! * unit-wise layers that follow neither a convolution, a linear layer
//!   nor an add.
//!
//! So every conv, linear and flatten layer starts a step: the inputs of
//! those layers (the *tap points*, [`Layer::is_tap_point`]) are exactly
//! what the plan can show to a hook, and the only places where a range of
//! layers can start or end without falling back to the layer-by-layer
//! path. Activations between steps are channel-last ([`activation`]).
//!
//! A plan is built from the layers once and never changes; the model
//! caches it, and an edited model is a new model with a new plan.

mod activation;
mod conv;
mod gemm;
mod pool;
mod unit;

use std::fmt;
use std::ops::Range;

pub(crate) use activation::{transpose_images, Activation};
use conv::Conv;
use unit::UnitOp;

use rayon::prelude::*;

use crate::error::Result;
use crate::layer::{fold_into_conv, BatchNorm2d, Conv2d, Layer, Shortcut};

/// What one step computes.
enum Op {
    /// Convolution or linear layer with its fused epilogue.
    Conv(Conv),
    /// Max pooling.
    MaxPool { kernel: usize, stride: usize, padding: usize },
    /// Mean over the spatial positions.
    GlobalAvgPool,
    /// Opens a residual block: keeps the activation.
    Fork,
    /// Closes a residual block: adds the kept input (through the
    /// projection, BatchNorm folded, if any), then the epilogue.
    Add { projection: Option<Conv>, epilogue: Vec<UnitOp> },
    /// Unit-wise layers on their own.
    Unit(Vec<UnitOp>),
    /// Channel-last map to PyTorch's channel-major vector.
    Flatten,
}

/// One fused group of consecutive layers.
struct Step {
    layers: Range<usize>,
    /// Whether `layers.start` is a tap point.
    tap: bool,
    op: Op,
}

impl Step {
    /// Appends a unit-wise operation to a convolution's epilogue or to a
    /// unit step (dropout, `None`, adds nothing).
    fn push(&mut self, op: Option<UnitOp>) {
        match (&mut self.op, op) {
            (Op::Conv(conv), Some(op)) => conv.push(op),
            (Op::Unit(ops) | Op::Add { epilogue: ops, .. }, Some(op)) => ops.push(op),
            _ => {}
        }
    }

    /// Whether unit-wise layers that follow this step can run in its pass.
    fn takes_epilogue(&self) -> bool {
        matches!(self.op, Op::Conv(_) | Op::Unit(_) | Op::Add { .. })
    }

    /// Runs the step on a batch.
    fn run(&self, mut flow: PlanFlow) -> PlanFlow {
        let x = flow.x;
        flow.x = match &self.op {
            Op::Conv(conv) => conv.run(&x),
            Op::MaxPool { kernel, stride, padding } => pool::max_pool(&x, *kernel, *stride, *padding),
            Op::GlobalAvgPool => pool::global_avg_pool(&x),
            Op::Unit(ops) => {
                let mut x = x;
                let channels = x.hwc().2;
                unit::apply(ops, &mut x.data, 0..channels);
                x
            }
            Op::Flatten => x.flatten(),
            Op::Fork => {
                flow.open.push(x.clone());
                x
            }
            Op::Add { projection, epilogue } => {
                let input = flow.open.pop().expect("the model checked that every add closes a fork");
                let shortcut = match projection {
                    Some(conv) => conv.run(&input),
                    None => input,
                };
                let mut x = x;
                let channels = x.hwc().2;
                x.data
                    .par_chunks_mut(channels.max(1) * 64)
                    .zip(shortcut.data.par_chunks(channels.max(1) * 64))
                    .for_each(|(x, s)| {
                        x.iter_mut().zip(s).for_each(|(x, s)| *x += s);
                        unit::apply(epilogue, x, 0..channels);
                    });
                x
            }
        };
        flow
    }
}

/// What crosses a step boundary inside the plan: the activation and the
/// inputs of the residual blocks open there (the plan's [`crate::Flow`]).
pub(crate) struct PlanFlow {
    pub(crate) x: Activation,
    pub(crate) open: Vec<Activation>,
}

impl PlanFlow {
    /// A flow outside every residual block.
    pub(crate) fn new(x: Activation) -> Self {
        Self { x, open: Vec::new() }
    }
}

/// The steps of a whole model, in order.
pub(crate) struct Plan {
    steps: Vec<Step>,
    layers: usize,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan").field("steps", &self.steps.len()).field("layers", &self.layers).finish()
    }
}

impl Plan {
    /// Compiles `layers`, or returns `None` when some layer has no fast
    /// kernel (a grouped or dilated convolution, weights that are not f32).
    pub(crate) fn build(layers: &[Layer]) -> Result<Option<Self>> {
        let mut steps: Vec<Step> = Vec::new();
        let mut i = 0;
        while i < layers.len() {
            let start = i;
            let op = match &layers[i] {
                Layer::Conv2d(conv) => {
                    let bn = match layers.get(i + 1) {
                        Some(Layer::BatchNorm2d(bn)) => {
                            i += 1;
                            Some(bn)
                        }
                        _ => None,
                    };
                    let Some(conv) = plan_conv(conv, bn)? else { return Ok(None) };
                    Op::Conv(conv)
                }
                Layer::Linear(linear) => {
                    if linear.weight().dtype() != candle_core::DType::F32 {
                        return Ok(None);
                    }
                    Op::Conv(Conv::linear(linear.weight(), linear.bias())?)
                }
                Layer::MaxPool2d { kernel, stride, padding } => {
                    Op::MaxPool { kernel: *kernel, stride: *stride, padding: *padding }
                }
                Layer::GlobalAvgPool => Op::GlobalAvgPool,
                Layer::Flatten => Op::Flatten,
                Layer::Fork => Op::Fork,
                Layer::Add(Shortcut::Identity) => Op::Add { projection: None, epilogue: Vec::new() },
                Layer::Add(Shortcut::Projection { conv, bn }) => {
                    let Some(conv) = plan_conv(conv, Some(bn))? else { return Ok(None) };
                    Op::Add { projection: Some(conv), epilogue: Vec::new() }
                }
                Layer::BatchNorm2d(_) | Layer::Relu | Layer::Dropout => {
                    let op = unit_op(&layers[i])?;
                    if let Some(last) = steps.last_mut().filter(|s| s.takes_epilogue()) {
                        last.layers.end = i + 1;
                        last.push(op);
                        i += 1;
                        continue;
                    }
                    Op::Unit(op.into_iter().collect())
                }
            };
            i += 1;
            steps.push(Step { layers: start..i, tap: layers[start].is_tap_point(), op });
        }
        Ok(Some(Self { steps, layers: layers.len() }))
    }

    /// True when a range of layers may start or end at layer `i`: `i` starts
    /// a step, or is the end of the model.
    pub(crate) fn is_boundary(&self, i: usize) -> bool {
        i == self.layers || self.steps.binary_search_by_key(&i, |s| s.layers.start).is_ok()
    }

    /// Runs the steps covering `range` (both ends boundaries) on `x`, the
    /// input of `range.start`.
    ///
    /// The loop itself runs on a thread of rayon's pool, so that the
    /// parallel loops of the steps start from inside the pool: a caller
    /// outside it then hands over and waits once per pass instead of once
    /// per step.
    pub(crate) fn run(&self, flow: PlanFlow, range: Range<usize>) -> PlanFlow {
        let steps = self.steps_in(range);
        let pass = move || steps.fold(flow, |flow, step| step.run(flow));
        rayon::scope(|_| pass())
    }

    /// The steps covering `range`, whose ends are boundaries.
    fn steps_in(&self, range: Range<usize>) -> impl Iterator<Item = &Step> + Send {
        debug_assert!(self.is_boundary(range.start) && self.is_boundary(range.end));
        let first = self.steps.partition_point(|s| s.layers.start < range.start);
        self.steps[first..].iter().take_while(move |s| s.layers.start < range.end)
    }

    /// Like [`Plan::run`], calling `hook(i, input)` before every tap point
    /// `i` in the range. The hook runs inside the pool like the steps, so
    /// a tapped pass hands over to the pool once, however many taps it
    /// has, and the hook's own parallel loops start from a worker too.
    pub(crate) fn run_with_taps<E: Send>(
        &self,
        x: PlanFlow,
        range: Range<usize>,
        mut hook: impl FnMut(usize, &Activation) -> std::result::Result<(), E> + Send,
    ) -> std::result::Result<PlanFlow, E> {
        let steps = self.steps_in(range);
        let pass = move || {
            let mut flow = x;
            for step in steps {
                if step.tap {
                    hook(step.layers.start, &flow.x)?;
                }
                flow = step.run(flow);
            }
            Ok(flow)
        };
        rayon::scope(|_| pass())
    }
}

/// A convolution with the BatchNorm that follows it folded in, packed for
/// the plan, or `None` when it has no fast kernel (grouped, dilated, not f32).
fn plan_conv(conv: &Conv2d, bn: Option<&BatchNorm2d>) -> Result<Option<Conv>> {
    let config = conv.config();
    if config.groups != 1 || config.dilation != 1 || conv.weight().dtype() != candle_core::DType::F32 {
        return Ok(None);
    }
    let folded = bn.map(|bn| fold_into_conv(conv, bn)).transpose()?;
    let conv = folded.as_ref().unwrap_or(conv);
    Ok(Some(Conv::new(conv.weight(), conv.bias(), config.stride, config.padding)?))
}

/// The per-channel operation of a unit-wise layer (`None` for dropout,
/// the identity at inference, and for any other layer).
fn unit_op(layer: &Layer) -> Result<Option<UnitOp>> {
    Ok(match layer {
        Layer::BatchNorm2d(bn) => Some(UnitOp::Affine { scale: bn.scale()?.to_vec1()?, shift: bn.shift()?.to_vec1()? }),
        Layer::Relu => Some(UnitOp::Relu),
        _ => None,
    })
}
