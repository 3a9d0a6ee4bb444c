//! [`Frontier`]: the calibration set's activations at one layer, advanced
//! through the model as it is squeezed.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use sq_linalg::Moments;
use sq_models::{Flow, Model};

use crate::accumulate::accumulate;
use crate::error::{Error, Result};

/// How many bytes of activations a [`Frontier`] holds in memory by default
/// (1 GiB); the batches beyond are spilled to a temporary file.
pub const FRONTIER_MEMORY: usize = 1 << 30;

/// The activations of the calibration set at the input of one layer,
/// batch by batch, with the inputs of the residual blocks open there
/// ([`Flow`]).
///
/// Sequential squeezing reads each producer's statistics off the frontier
/// at its tap, cuts, drops the removed units from the frontier
/// ([`keep_units`](Self::keep_units): the unit-wise layers in between
/// commute with deleting units) and advances it through the next layers of
/// the *squeezed* model, so the whole squeeze costs one forward pass over
/// the calibration set.
///
/// Memory does not grow with the calibration set: batches are held in
/// memory up to a budget ([`FRONTIER_MEMORY`] unless
/// [`with_memory`](Self::with_memory) says otherwise), and the rest are
/// written to an anonymous temporary file in the system's temporary
/// directory (`$TMPDIR`), read back one batch at a time. The file has no
/// name from the moment it is created, so the operating system frees it
/// when the process ends, however it ends.
#[derive(Clone, Debug)]
pub struct Frontier {
    batches: Vec<Slot>,
    /// The file spilled batches are in (shared by clones, never rewritten).
    spill: Option<Arc<File>>,
    /// Bytes of activations held in memory at most.
    memory: usize,
    /// Index of the layer whose input `batches` are.
    at: usize,
}

/// One batch of a [`Frontier`]: in memory, or in the spill file.
#[derive(Clone, Debug)]
enum Slot {
    Memory(Flow),
    /// The tensors of a flow (`x`, then the open blocks' inputs), each
    /// `f32` values at `offset` with its dims.
    Spilled {
        offset: u64,
        dims: Vec<Vec<usize>>,
    },
}

impl Frontier {
    /// The frontier at the model's input: `batches` are preprocessed
    /// images. They are held in memory up to [`FRONTIER_MEMORY`] bytes and
    /// spilled to a temporary file beyond.
    pub fn new(batches: Vec<Tensor>) -> Result<Self> {
        Self::with_memory(batches.into_iter().map(Ok::<_, Error>), FRONTIER_MEMORY)
    }

    /// The frontier at the model's input, holding at most `memory` bytes of
    /// activations in memory: `batches` (preprocessed images) are taken one
    /// at a time, so the images beyond `memory` are never all in memory.
    pub fn with_memory<E>(
        batches: impl IntoIterator<Item = std::result::Result<Tensor, E>>,
        memory: usize,
    ) -> Result<Self>
    where
        Error: From<E>,
    {
        let mut store = Store::new(memory);
        for batch in batches {
            store.push(Flow::new(batch?), memory)?;
        }
        if store.slots.is_empty() {
            return Err(Error::Empty);
        }
        Ok(store.into_frontier(0))
    }

    /// Index of the layer whose input the activations are.
    pub fn at(&self) -> usize {
        self.at
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether there are no batches (never, for a frontier that was built).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Whether some batches are in the spill file rather than in memory.
    pub fn is_spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// The activations, batch by batch, with the inputs of the open blocks:
    /// borrowed from memory, or read back from the spill file.
    pub fn flows(&self) -> impl Iterator<Item = Result<Cow<'_, Flow>>> + '_ {
        self.batches.iter().map(move |slot| match slot {
            Slot::Memory(flow) => Ok(Cow::Borrowed(flow)),
            Slot::Spilled { offset, dims } => self.read(*offset, dims).map(Cow::Owned),
        })
    }

    /// Runs `model`'s layers from the current position up to (not including)
    /// layer `to`.
    pub fn advance(&mut self, model: &Model, to: usize) -> Result<()> {
        if to < self.at {
            return Err(Error::Backwards { at: self.at, to });
        }
        let at = self.at;
        self.map(|flow| Ok(model.forward_flow(flow, at..to)?))?;
        self.at = to;
        Ok(())
    }

    /// Keeps only the units `kept` (dimension 1) of the activations, as a
    /// producer narrowed to those units would have computed them.
    pub fn keep_units(&mut self, kept: &[usize]) -> Result<()> {
        let index: Vec<u32> = kept.iter().map(|&i| i as u32).collect();
        let index = Tensor::from_vec(index, kept.len(), &Device::Cpu)?;
        self.map(|mut flow| {
            flow.x = flow.x.index_select(&index, 1)?;
            Ok(flow)
        })
    }

    /// Number of units (dimension 1) of the activations.
    pub fn units(&self) -> usize {
        let dims = match self.batches.first() {
            Some(Slot::Memory(flow)) => flow.x.dims().to_vec(),
            Some(Slot::Spilled { dims, .. }) => dims[0].clone(),
            None => Vec::new(),
        };
        dims.get(1).copied().unwrap_or(0)
    }

    /// Moments of the units over the whole calibration set.
    pub fn moments(&self) -> Result<Moments> {
        let mut moments = Moments::new(self.units());
        for flow in self.flows() {
            accumulate(&mut moments, &flow?.x)?;
        }
        Ok(moments)
    }

    /// Replaces every batch by `f` of it, keeping the memory budget: the
    /// old batches still in memory count against it until replaced.
    fn map(&mut self, mut f: impl FnMut(Flow) -> Result<Flow>) -> Result<()> {
        let mut store = Store::new(self.memory);
        let mut old_held: usize =
            self.batches.iter().map(|slot| if let Slot::Memory(flow) = slot { flow_bytes(flow) } else { 0 }).sum();
        for slot in std::mem::take(&mut self.batches) {
            let (flow, held) = match slot {
                Slot::Memory(flow) => {
                    let bytes = flow_bytes(&flow);
                    (flow, bytes)
                }
                Slot::Spilled { offset, dims } => (self.read(offset, &dims)?, 0),
            };
            let next = f(flow)?;
            old_held -= held;
            store.push(next, self.memory.saturating_sub(old_held))?;
        }
        *self = store.into_frontier(self.at);
        Ok(())
    }

    /// The flow spilled at `offset` with tensors of `dims`.
    fn read(&self, mut offset: u64, dims: &[Vec<usize>]) -> Result<Flow> {
        let file = self.spill.as_ref().expect("a spilled batch has a spill file");
        let mut tensors = Vec::with_capacity(dims.len());
        for dims in dims {
            let mut bytes = vec![0u8; dims.iter().product::<usize>() * 4];
            file.read_exact_at(&mut bytes, offset).map_err(Error::Spill)?;
            offset += bytes.len() as u64;
            let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.push(Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?);
        }
        let mut tensors = tensors.into_iter();
        let x = tensors.next().expect("a flow has an activation");
        Ok(Flow { x, open: tensors.collect() })
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
        for (y, x) in reference.flows().zip(self.flows()) {
            accumulate(&mut joint, &Tensor::cat(&[&y?.x, &x?.x], 1)?)?;
        }
        Ok(joint)
    }
}

/// Bytes of a flow's tensors.
fn flow_bytes(flow: &Flow) -> usize {
    std::iter::once(&flow.x).chain(&flow.open).map(|t| t.elem_count() * 4).sum()
}

/// Batches being collected into a frontier: each in memory if it fits
/// the room left, else appended to a new anonymous temporary file.
struct Store {
    slots: Vec<Slot>,
    memory: usize,
    held: usize,
    file: Option<File>,
    end: u64,
}

impl Store {
    fn new(memory: usize) -> Self {
        Self { slots: Vec::new(), memory, held: 0, file: None, end: 0 }
    }

    /// Adds `flow`, in memory if this store then holds at most `limit` bytes.
    fn push(&mut self, flow: Flow, limit: usize) -> Result<()> {
        let bytes = flow_bytes(&flow);
        let tensors: Vec<&Tensor> = std::iter::once(&flow.x).chain(&flow.open).collect();
        if self.held + bytes <= limit {
            self.held += bytes;
            self.slots.push(Slot::Memory(flow));
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(tempfile::tempfile().map_err(Error::Spill)?);
        }
        let file = self.file.as_mut().expect("created above");
        let offset = self.end;
        let mut dims = Vec::with_capacity(tensors.len());
        for tensor in tensors {
            let values = tensor.flatten_all()?.to_vec1::<f32>()?;
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write_all(&raw).map_err(Error::Spill)?;
            self.end += raw.len() as u64;
            dims.push(tensor.dims().to_vec());
        }
        self.slots.push(Slot::Spilled { offset, dims });
        Ok(())
    }

    fn into_frontier(self, at: usize) -> Frontier {
        Frontier { batches: self.slots, spill: self.file.map(Arc::new), memory: self.memory, at }
    }
}
