//! The editable model description: an ordered chain of layers.
//!
//! A [`Model`] is data, not code: a list of [`Layer`] values plus the input
//! shape and free-form metadata. Nothing is hidden in closures, so model
//! surgery (`sq-rewrite`) can read every tensor and build a new model, and
//! the runner can show any layer's input to a caller through a hook.
//! Residual networks are chains too: a [`Layer::Fork`] opens a block and a
//! [`Layer::Add`] closes it, so what crosses a point of the chain is the
//! activation plus the inputs of the blocks open there (a [`Flow`]).
//!
//! Layer names are not stored: they follow from the structure exactly as
//! torchvision names its modules. A VGG numbers its `nn.Sequential`s
//! (`features.N` before the flatten, `classifier.N` after it), so a model
//! whose BatchNorms were folded away gets the names of the plain VGG; a
//! ResNet gets `conv1`, `layer2.0.conv1`, `layer2.0.downsample`, `fc`
//! (see `resnet`). A checkpoint we write loads in torchvision as is.
//!
//! Running a model goes through an execution plan compiled from the layers
//! on first use and cached (see `plan`): BatchNorm folded into the
//! convolutions, bias and ReLU fused into the GEMM. The description is
//! never edited in place (edits go through [`Model::into_parts`] and
//! [`Model::new`]), so a cached plan always matches its layers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::layer::{Layer, Shortcut};
use crate::plan::{Activation, Plan, PlanFlow};
use crate::samples::Samples;
use crate::shape::ActShape;
use crate::vgg::Arch;

/// A producer/consumer pair: the units that `producer` outputs are read by
/// `consumer` and by nothing else, with only unit-wise layers (BatchNorm,
/// ReLU, pooling, dropout, flatten; [`Layer::is_unit_wise`]) in between.
/// These are the places squeeze can cut. In a ResNet they are the
/// convolutions inside a block; the channels of the residual stream, which
/// every block reads and writes, are not links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Index of the conv/linear layer whose output units may be removed.
    pub producer: usize,
    /// Index of the next conv/linear layer, which reads those units.
    pub consumer: usize,
    /// Index of the layer whose *input* is the per-unit tensor the consumer
    /// actually sees: the consumer itself, or the flatten in between (so a
    /// conv producer's units stay channels, one sample per spatial position).
    pub tap: usize,
    /// Shape of the tapped tensor for one image.
    pub shape: ActShape,
}

impl Link {
    /// Number of units the producer outputs.
    pub fn units(&self) -> usize {
        self.shape.units()
    }
    /// The unit-wise layers strictly between producer and consumer.
    pub fn between(&self) -> Range<usize> {
        self.producer + 1..self.consumer
    }
}

/// A feed-forward network as an ordered list of layers.
#[derive(Clone, Debug)]
pub struct Model {
    input: ActShape,
    layers: Vec<Layer>,
    /// `shapes[i]` is the input of layer `i`; the last entry is the output.
    shapes: Vec<ActShape>,
    /// `open[i]` holds the input shapes of the residual blocks open at the
    /// input of layer `i`, outermost first.
    open: Vec<Vec<ActShape>>,
    names: Vec<String>,
    metadata: BTreeMap<String, String>,
    /// The compiled layers, built on first use; `None` inside when some
    /// layer has no fast kernel. Shared by clones.
    plan: OnceLock<Option<Arc<Plan>>>,
}

impl Model {
    /// Builds a model and checks that consecutive layers fit together.
    pub fn new(input: ActShape, layers: Vec<Layer>, metadata: BTreeMap<String, String>) -> Result<Self> {
        let names = names(&layers);
        let mut shapes = Vec::with_capacity(layers.len() + 1);
        let mut open = vec![Vec::new()];
        shapes.push(input);
        for (i, layer) in layers.iter().enumerate() {
            let mut blocks = open[i].clone();
            let next = next_shape(layer, shapes[i], &mut blocks)
                .map_err(|message| Error::Invalid { layer: names[i].clone(), message })?;
            shapes.push(next);
            open.push(blocks);
        }
        if !open[layers.len()].is_empty() {
            let fork = (0..layers.len()).rev().find(|&i| matches!(layers[i], Layer::Fork)).unwrap_or(0);
            return Err(Error::Invalid {
                layer: names[fork].clone(),
                message: "opens a residual block that no add closes".into(),
            });
        }
        Ok(Self { input, layers, shapes, open, names, metadata, plan: OnceLock::new() })
    }

    /// The same layers on inputs of `h x w` pixels, recorded in the
    /// metadata's `input` so that a saved copy loads at that size. A
    /// ResNet's global pool reads any size; a VGG's classifier reads only
    /// the feature map of the size it was trained at.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the model reads vectors, not images, or its
    /// layers do not fit inputs of that size.
    pub fn with_input_size(self, (h, w): (usize, usize)) -> Result<Model> {
        let (input, layers, mut metadata) = self.into_parts();
        let ActShape::Map { c, .. } = input else {
            return Err(Error::Invalid { layer: "input".into(), message: format!("reads {input}, not images") });
        };
        metadata.insert("input".into(), format!("{c}x{h}x{w}"));
        Model::new(ActShape::Map { c, h, w }, layers, metadata)
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ActShape {
        self.input
    }
    /// Shape of one image's output (the logits).
    pub fn output_shape(&self) -> ActShape {
        *self.shapes.last().expect("shapes has len + 1 entries")
    }
    /// The layers in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// Consumes the model, returning its layers (to edit them and call [`Model::new`]).
    pub fn into_parts(self) -> (ActShape, Vec<Layer>, BTreeMap<String, String>) {
        (self.input, self.layers, self.metadata)
    }
    /// Shape of the input of layer `i` (`i == layers().len()` gives the output).
    pub fn shape_before(&self, i: usize) -> ActShape {
        self.shapes[i]
    }
    /// Free-form string metadata (preprocessing, provenance, squeeze settings).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// Mutable access to the metadata.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// The torchvision-style name of layer `i` (`features.7`, `classifier.3`,
    /// `flatten`, `layer2.0.conv1`, `fc`).
    pub fn name(&self, i: usize) -> String {
        self.names[i].clone()
    }

    /// Index of the layer with the given name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The torchvision architecture name (`vgg16_bn`, `resnet18`), or
    /// `vgg-custom` / `resnet-custom` for a stage pattern outside the
    /// standard ones.
    pub fn arch_name(&self) -> String {
        if self.is_residual() {
            crate::resnet::arch_name(&self.layers)
        } else {
            Arch::of(self).name()
        }
    }

    /// Whether the model has residual blocks (a ResNet).
    pub fn is_residual(&self) -> bool {
        self.layers.iter().any(|l| matches!(l, Layer::Fork))
    }

    /// Number of residual blocks open at the input of layer `i` (the length
    /// of [`Flow::open`] there).
    pub fn open_blocks(&self, i: usize) -> usize {
        self.open[i].len()
    }

    /// Shape of the input of the innermost residual block open at the input
    /// of layer `i` (for a [`Layer::Add`], the block it closes).
    pub fn block_input(&self, i: usize) -> Option<ActShape> {
        self.open[i].last().copied()
    }

    /// All producer/consumer pairs, first to last: consecutive conv/linear
    /// layers with only unit-wise layers in between. The network's input is
    /// never a producer, and the last conv/linear layer (the classifier's
    /// output) has no consumer, so it is never one either. A fork or add in
    /// between means the producer's units also flow elsewhere (the residual
    /// stream), so that pair is not a link.
    pub fn links(&self) -> Vec<Link> {
        let ops: Vec<usize> = (0..self.layers.len()).filter(|&i| self.layers[i].is_linear_operator()).collect();
        ops.windows(2)
            .filter(|pair| self.layers[pair[0] + 1..pair[1]].iter().all(Layer::is_unit_wise))
            .map(|pair| {
                let (producer, consumer) = (pair[0], pair[1]);
                let tap =
                    (producer + 1..consumer).find(|&i| matches!(self.layers[i], Layer::Flatten)).unwrap_or(consumer);
                Link { producer, consumer, tap, shape: self.shapes[tap] }
            })
            .collect()
    }

    /// Runs the whole model on a batch `N x C x H x W`, returning `N x classes` logits.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.forward_range(x, 0..self.layers.len())
    }

    /// Runs the whole model like [`Model::forward`] and calls
    /// `hook(i, input)` once for every *tap point* `i` — every layer for
    /// which [`Layer::is_tap_point`] holds (convolution, linear, flatten) —
    /// in increasing order of `i`, just before that layer runs, with the
    /// tensor it reads: `N x C x H x W` or `N x F`, contiguous, exactly what
    /// [`Model::forward_layers`] would feed it. The inputs of other layers
    /// (BatchNorm, ReLU, max-pool, dropout) are not shown: they are fused
    /// into the step that precedes them. Every [`Link::tap`] is a tap point,
    /// so this is all that statistics capture needs. The first error the
    /// hook returns stops the pass and is returned. On the execution plan
    /// the hook runs on a worker of rayon's global pool, like the pass
    /// itself (hence `Send`), so its own parallel loops start from there.
    pub fn forward_with<E, F>(&self, x: &Tensor, mut hook: F) -> std::result::Result<Tensor, E>
    where
        E: From<Error> + Send,
        F: FnMut(usize, &Tensor) -> std::result::Result<(), E> + Send,
    {
        self.forward_tapped(x, |i, tapped| match tapped {
            Tapped::Plan(input) => hook(i, &input.to_tensor()?),
            Tapped::Tensor(input) => hook(i, input),
        })
    }

    /// Like [`Model::forward_with`], but the hook sees each tapped input as
    /// [`Samples`]: rows of unit values, channel-last, which is the layout
    /// the execution plan computes in, so they are lent without a copy.
    /// This is what statistics capture reads (a Gram product over rows),
    /// and it saves the two transposes that going through an
    /// `N x C x H x W` tensor would cost.
    pub fn forward_with_samples<E, F>(&self, x: &Tensor, mut hook: F) -> std::result::Result<Tensor, E>
    where
        E: From<Error> + Send,
        F: FnMut(usize, &Samples<'_>) -> std::result::Result<(), E> + Send,
    {
        self.forward_tapped(x, |i, tapped| match tapped {
            Tapped::Plan(input) => {
                let (h, w, c) = input.hwc();
                hook(i, &Samples::borrowed(&input.data, input.n * h * w, c))
            }
            Tapped::Tensor(input) => hook(i, &Samples::from_tensor(input)?),
        })
    }

    /// The pass behind [`Model::forward_with`] and
    /// [`Model::forward_with_samples`]: the plan when there is one, layer
    /// by layer otherwise, with the hook called at every tap point on the
    /// input in whichever layout the pass holds it.
    fn forward_tapped<E, F>(&self, x: &Tensor, mut hook: F) -> std::result::Result<Tensor, E>
    where
        E: From<Error> + Send,
        F: FnMut(usize, Tapped<'_>) -> std::result::Result<(), E> + Send,
    {
        self.check_input(x)?;
        let Some(plan) = self.plan() else {
            let mut flow = Flow::new(x.clone());
            for (i, layer) in self.layers.iter().enumerate() {
                if layer.is_tap_point() {
                    hook(i, Tapped::Tensor(&flow.x))?;
                }
                layer.forward(&mut flow).map_err(Error::from)?;
            }
            return Ok(flow.x);
        };
        let x = PlanFlow::new(Activation::from_tensor(x, self.input)?);
        let out = plan.run_with_taps(x, 0..self.layers.len(), |i, input| hook(i, Tapped::Plan(input)))?;
        Ok(out.x.to_tensor()?)
    }

    /// Runs only `layers[range]` on `x`, which must be the input of
    /// `range.start` (`N x shape_before(range.start)`). Used to advance
    /// cached activations from one tap to the next. It runs the execution
    /// plan when each end of the range is `0`, `layers().len()` or a tap
    /// point ([`Layer::is_tap_point`]); any other range runs layer by layer
    /// ([`Model::forward_layers`]), with the same result.
    ///
    /// `range.start` must lie outside every residual block; where blocks
    /// are open, use [`Model::forward_flow`] with their inputs. Blocks
    /// still open at `range.end` are dropped from the result.
    pub fn forward_range(&self, x: &Tensor, range: Range<usize>) -> Result<Tensor> {
        Ok(self.forward_flow(Flow::new(x.clone()), range)?.x)
    }

    /// Like [`Model::forward_range`] for a range that may start and end
    /// inside residual blocks: `flow` carries the activation at
    /// `range.start` and the inputs of the blocks open there
    /// ([`Model::open_blocks`] of them), and so does the result at
    /// `range.end`.
    pub fn forward_flow(&self, flow: Flow, range: Range<usize>) -> Result<Flow> {
        self.check_flow(&flow, range.start)?;
        match self.plan() {
            Some(plan) if !range.is_empty() && plan.is_boundary(range.start) && plan.is_boundary(range.end) => {
                let to_plan = |(x, shape): (&Tensor, &ActShape)| Activation::from_tensor(x, *shape);
                let x = Activation::from_tensor(&flow.x, self.shapes[range.start])?;
                let open = flow.open.iter().zip(&self.open[range.start]).map(to_plan).collect::<Result<_>>()?;
                let out = plan.run(PlanFlow { x, open }, range);
                Ok(Flow {
                    x: out.x.to_tensor()?,
                    open: out.open.iter().map(Activation::to_tensor).collect::<Result<_>>()?,
                })
            }
            _ => self.forward_layers_flow(flow, range),
        }
    }

    /// Runs `layers[range]` one at a time with candle's operations
    /// ([`Layer::forward`]), without the execution plan: several times
    /// slower, defined for any range. It is the reference that the plan is
    /// tested against, and the fallback for a model with a layer the plan
    /// cannot compile (a grouped or dilated convolution, weights that are
    /// not f32).
    ///
    /// Like [`Model::forward_range`], `range.start` must lie outside every
    /// residual block.
    pub fn forward_layers(&self, x: &Tensor, range: Range<usize>) -> Result<Tensor> {
        self.check_flow(&Flow::new(x.clone()), range.start)?;
        Ok(self.forward_layers_flow(Flow::new(x.clone()), range)?.x)
    }

    fn forward_layers_flow(&self, mut flow: Flow, range: Range<usize>) -> Result<Flow> {
        for layer in &self.layers[range] {
            layer.forward(&mut flow)?;
        }
        Ok(flow)
    }

    /// Checks that `flow` has what the input of layer `at` needs: the
    /// activation's shape and one input per open residual block.
    fn check_flow(&self, flow: &Flow, at: usize) -> Result<()> {
        let open = &self.open[at];
        if flow.open.len() != open.len() {
            return Err(Error::Input {
                expected: format!(
                    "{} inside {} residual block(s): pass their inputs with forward_flow",
                    self.names.get(at).map_or("the output", String::as_str),
                    open.len()
                ),
                found: flow.x.dims().to_vec(),
            });
        }
        let fits = |shape: ActShape, dims: &[usize]| match (shape, dims) {
            (ActShape::Map { c, h, w }, [_, xc, xh, xw]) => (c, h, w) == (*xc, *xh, *xw),
            (ActShape::Vector(n), [_, xn]) => n == *xn,
            _ => false,
        };
        let expected = std::iter::once(self.shapes[at]).chain(open.iter().copied());
        let found = std::iter::once(&flow.x).chain(&flow.open);
        for (shape, x) in expected.zip(found) {
            if !fits(shape, x.dims()) {
                return Err(Error::Input { expected: format!("N x {shape}"), found: x.dims().to_vec() });
            }
        }
        Ok(())
    }

    /// Whether [`Model::forward`] runs the fused execution plan (`false`:
    /// the layer-by-layer fallback of [`Model::forward_layers`]).
    pub fn uses_plan(&self) -> bool {
        self.plan().is_some()
    }

    /// The cached plan, compiled on first use.
    fn plan(&self) -> Option<&Plan> {
        self.plan.get_or_init(|| Plan::build(&self.layers).ok().flatten().map(Arc::new)).as_deref()
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let ok = match (self.input, x.dims()) {
            (ActShape::Map { c, h, w }, [_, xc, xh, xw]) => (c, h, w) == (*xc, *xh, *xw),
            (ActShape::Vector(n), [_, xn]) => n == *xn,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Input { expected: format!("N x {}", self.input), found: x.dims().to_vec() })
        }
    }
}

impl Arch {
    /// Reads the stage pattern off a model: convs between max-pools.
    pub fn of(model: &Model) -> Arch {
        Arch::of_layers(model.layers())
    }
}

/// The torchvision names of `layers`: a ResNet's when the chain has residual
/// blocks, a VGG's otherwise.
fn names(layers: &[Layer]) -> Vec<String> {
    if layers.iter().any(|l| matches!(l, Layer::Fork)) {
        return crate::resnet::names(layers);
    }
    let flatten = layers.iter().position(|l| matches!(l, Layer::Flatten));
    (0..layers.len())
        .map(|i| match flatten {
            Some(f) if i == f => "flatten".to_string(),
            Some(f) if i > f => format!("classifier.{}", i - f - 1),
            _ => format!("features.{i}"),
        })
        .collect()
}

/// Shape after `layer` given its input shape and the input shapes of the
/// open residual blocks (which a fork or an add changes), or why they do
/// not fit.
fn next_shape(layer: &Layer, input: ActShape, open: &mut Vec<ActShape>) -> std::result::Result<ActShape, String> {
    match layer {
        Layer::Fork => {
            open.push(input);
            Ok(input)
        }
        Layer::Add(shortcut) => {
            let block_input = open.pop().ok_or("closes no open residual block")?;
            let added = match shortcut {
                Shortcut::Identity => block_input,
                Shortcut::Projection { conv, bn } => {
                    let projected = output_shape(&Layer::Conv2d(conv.clone()), block_input)
                        .map_err(|e| format!("downsample.0 {e}"))?;
                    output_shape(&Layer::BatchNorm2d(bn.clone()), projected).map_err(|e| format!("downsample.1 {e}"))?
                }
            };
            if added != input {
                return Err(format!(
                    "adds a shortcut of shape {added} to the block's output of shape {input}{}",
                    if matches!(shortcut, Shortcut::Identity) { " (the block needs a downsample)" } else { "" }
                ));
            }
            Ok(input)
        }
        layer => output_shape(layer, input),
    }
}

/// Shape after a layer that reads only the activation, or why they do not fit.
fn output_shape(layer: &Layer, input: ActShape) -> std::result::Result<ActShape, String> {
    let dims = |t: &Tensor| t.dims().to_vec();
    match (layer, input) {
        (Layer::Conv2d(conv), ActShape::Map { c, h, w }) => {
            let wd = dims(conv.weight());
            let (out_c, in_c, k) = (wd[0], wd[1], wd[2]);
            if out_c == 0 || in_c == 0 || k == 0 {
                return Err(format!(
                    "has a weight of shape {}: a layer needs at least one unit in and out",
                    sq_io::dims_text(&wd)
                ));
            }
            if in_c != c {
                return Err(format!("reads {in_c} channels but its input has {c}"));
            }
            let p = conv.config().padding;
            let s = conv.config().stride;
            if h + 2 * p < k || w + 2 * p < k {
                return Err(format!("kernel {k}x{k} larger than padded input {h}x{w}"));
            }
            Ok(ActShape::Map { c: out_c, h: (h + 2 * p - k) / s + 1, w: (w + 2 * p - k) / s + 1 })
        }
        (Layer::BatchNorm2d(bn), ActShape::Map { c, .. }) => {
            if bn.channels() != c {
                return Err(format!("normalises {} channels but its input has {c}", bn.channels()));
            }
            Ok(input)
        }
        (Layer::MaxPool2d { kernel, stride, padding }, ActShape::Map { c, h, w }) => {
            let (h, w) = (h + 2 * padding, w + 2 * padding);
            if h < *kernel || w < *kernel || *stride == 0 {
                return Err(format!("pool window {kernel} stride {stride} does not fit the padded input {h}x{w}"));
            }
            if 2 * padding > *kernel {
                return Err(format!("padding {padding} is more than half the window {kernel}"));
            }
            Ok(ActShape::Map { c, h: (h - kernel) / stride + 1, w: (w - kernel) / stride + 1 })
        }
        (Layer::GlobalAvgPool, ActShape::Map { c, .. }) => Ok(ActShape::Map { c, h: 1, w: 1 }),
        (Layer::Flatten, shape) => Ok(ActShape::Vector(shape.numel())),
        (Layer::Linear(linear), ActShape::Vector(n)) => {
            let wd = dims(linear.weight());
            if wd[0] == 0 || wd[1] == 0 {
                return Err(format!(
                    "has a weight of shape {}: a layer needs at least one unit in and out",
                    sq_io::dims_text(&wd)
                ));
            }
            if wd[1] != n {
                return Err(format!("reads {} features but its input has {n}", wd[1]));
            }
            Ok(ActShape::Vector(wd[0]))
        }
        (Layer::Relu | Layer::Dropout, shape) => Ok(shape),
        (layer, shape) => Err(format!("a {} layer cannot read an input of shape {shape}", layer.kind())),
    }
}

/// A tapped input as the pass that reached it holds it.
enum Tapped<'a> {
    /// Channel-last, from the execution plan.
    Plan(&'a Activation),
    /// `N x C x H x W` or `N x F`, from the layer-by-layer path.
    Tensor(&'a Tensor),
}
