//! Per-producer statistics: merge, save and load.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sq_linalg::{Matrix, Moments};

use crate::error::{Error, Result};

/// Format tag written into the metadata of statistics files.
const FORMAT: &str = "squeeze-stats/1";

/// The statistics of one producer's units, as its consumer reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStats {
    /// Name of the producer layer (`features.0`, `classifier.0`, ...).
    pub name: String,
    /// Samples contributed by each image (spatial positions of the tapped map; 1 for vectors).
    pub positions_per_image: usize,
    /// Count, sum and Gram matrix of the unit vectors.
    pub moments: Moments,
}

impl LayerStats {
    /// Empty statistics for a producer of `units` units.
    pub fn new(name: String, units: usize, positions_per_image: usize) -> Self {
        Self { name, positions_per_image, moments: Moments::new(units) }
    }

    /// Number of images seen.
    pub fn images(&self) -> u64 {
        self.moments.count() / self.positions_per_image.max(1) as u64
    }
}

/// Statistics of every producer of a model, in network order.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    layers: Vec<LayerStats>,
}

impl Stats {
    /// Wraps per-layer statistics (in network order).
    pub fn new(layers: Vec<LayerStats>) -> Self {
        Self { layers }
    }

    /// All layers, in network order.
    pub fn layers(&self) -> &[LayerStats] {
        &self.layers
    }

    /// Consumes the statistics, returning the layers in network order.
    pub fn into_layers(self) -> Vec<LayerStats> {
        self.layers
    }

    /// The statistics of the producer called `name`.
    pub fn get(&self, name: &str) -> Option<&LayerStats> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Adds the statistics of a disjoint shard of data captured on the same
    /// model. The result equals a capture over the concatenated data.
    pub fn merge(&mut self, other: &Stats) -> Result<()> {
        let names = |s: &Stats| s.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        if names(self) != names(other) {
            return Err(Error::Mismatch(format!("layers {:?} vs {:?}", names(self), names(other))));
        }
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            if a.positions_per_image != b.positions_per_image || a.moments.dim() != b.moments.dim() {
                return Err(Error::Mismatch(format!(
                    "{}: {} units x {} positions vs {} x {}",
                    a.name,
                    a.moments.dim(),
                    a.positions_per_image,
                    b.moments.dim(),
                    b.positions_per_image
                )));
            }
            a.moments.merge(&b.moments)?;
        }
        Ok(())
    }

    /// Writes the statistics as a safetensors file (`NAME.sum`, `NAME.gram`
    /// in f64, `NAME.count`, `NAME.positions` in u64), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for l in &self.layers {
            let n = l.moments.dim();
            let f64_bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            owned.push((format!("{}.sum", l.name), Dtype::F64, vec![n], f64_bytes(l.moments.sum())));
            owned.push((format!("{}.gram", l.name), Dtype::F64, vec![n, n], f64_bytes(l.moments.gram().as_slice())));
            owned.push((format!("{}.count", l.name), Dtype::U64, vec![1], l.moments.count().to_le_bytes().to_vec()));
            let positions = l.positions_per_image as u64;
            owned.push((format!("{}.positions", l.name), Dtype::U64, vec![1], positions.to_le_bytes().to_vec()));
        }
        let format_err = |e: safetensors::SafeTensorError| Error::Format { path: path.into(), message: e.to_string() };
        let views = owned
            .iter()
            .map(|(name, dtype, shape, data)| {
                Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data).map_err(format_err)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let order = self.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",");
        let metadata = HashMap::from([("format".to_string(), FORMAT.to_string()), ("layers".to_string(), order)]);
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(format_err)?;
        Ok(sq_io::write_atomic(path, &bytes)?)
    }

    /// Reads statistics written by [`Stats::save`].
    pub fn load(path: &Path) -> Result<Stats> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let bad = |message: String| Error::Format { path: path.into(), message };
        let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!("metadata `format` is not `{FORMAT}`")));
        }
        let order = meta.get("layers").ok_or_else(|| bad("metadata has no `layers`".into()))?;
        let tensor = |key: String, dtype: Dtype| -> Result<Vec<u8>> {
            let t = file.tensor(&key).map_err(|_| bad(format!("missing tensor `{key}`")))?;
            if t.dtype() != dtype {
                return Err(bad(format!("tensor `{key}` is {:?}, expected {dtype:?}", t.dtype())));
            }
            Ok(t.data().to_vec())
        };
        let f64s = |b: Vec<u8>| {
            b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect::<Vec<_>>()
        };
        let u64_of = |b: Vec<u8>| -> Result<u64> {
            let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| bad("a count is not one u64".into()))?;
            Ok(u64::from_le_bytes(arr))
        };
        let mut layers = Vec::new();
        for name in order.split(',').filter(|s| !s.is_empty()) {
            let sum = f64s(tensor(format!("{name}.sum"), Dtype::F64)?);
            let gram_data = f64s(tensor(format!("{name}.gram"), Dtype::F64)?);
            let n = sum.len();
            let gram = Matrix::from_rows(n, n, gram_data).map_err(|e| bad(format!("{name}.gram: {e}")))?;
            let count = u64_of(tensor(format!("{name}.count"), Dtype::U64)?)?;
            let positions = u64_of(tensor(format!("{name}.positions"), Dtype::U64)?)? as usize;
            let moments = Moments::from_parts(count, sum, gram).map_err(|e| bad(format!("{name}: {e}")))?;
            layers.push(LayerStats { name: name.to_string(), positions_per_image: positions, moments });
        }
        Ok(Stats { layers })
    }
}
