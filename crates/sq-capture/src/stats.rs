//! Per-producer statistics: merge, save and load.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use sq_linalg::{Matrix, Moments};
use sq_models::Model;

use crate::error::{Error, Result};

/// Format tag written into the metadata of statistics files.
const FORMAT: &str = "squeeze-stats/2";

/// The format before files carried a checksum: refused with a word on why.
const FORMAT_WITHOUT_CHECKSUM: &str = "squeeze-stats/1";

/// The tensor of the image fingerprints (no layer tensor is without a `.`).
const IMAGES: &str = "images";

/// The largest statistics file [`Stats::load`] reads: 4 GiB (a 4096-unit
/// layer's Gram matrix takes 128 MiB).
pub const MAX_STATS: sq_io::Cap = sq_io::Cap { bytes: 4 << 30, what: "a statistics file" };

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
///
/// Besides the numbers they record where they come from, so that merging
/// cannot silently produce garbage: the [`model_fingerprint`] of the model
/// they were captured on (when known) and one fingerprint per shard of data
/// ([`capture`](crate::capture) hashes the input images it was given, in
/// order, whatever the batching; statistics built otherwise are known by a
/// hash of their own numbers). Merging statistics of two different models,
/// or two that share a shard — a file merged with itself or with a copy, or
/// two captures of the same images — is an error. [`capture`](crate::capture)
/// also records a fingerprint of every image, so that two captures that
/// overlap in part (the first 200 and the first 300 images of a split)
/// cannot be merged either.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    layers: Vec<LayerStats>,
    model: Option<String>,
    shards: Vec<String>,
    /// One fingerprint per image seen, ascending; empty when unknown.
    images: Vec<u64>,
}

impl Stats {
    /// Wraps per-layer statistics (in network order), of unknown model,
    /// as one shard.
    pub fn new(layers: Vec<LayerStats>) -> Self {
        let mut stats = Self { layers, model: None, shards: Vec::new(), images: Vec::new() };
        stats.shards = vec![stats.content_fingerprint()];
        stats
    }

    /// Records the [`model_fingerprint`] of the model these statistics were
    /// captured on.
    pub fn with_model(mut self, fingerprint: String) -> Self {
        self.model = Some(fingerprint);
        self
    }

    /// Records the fingerprint of the data these statistics were captured
    /// from (one shard), replacing the default fingerprint of the numbers.
    pub fn with_data(mut self, fingerprint: String) -> Self {
        self.shards = vec![fingerprint];
        self
    }

    /// Records a fingerprint of every image these statistics were captured
    /// from (in any order; [`image_fingerprint`] of each), so that merging
    /// them with statistics of any of the same images is refused.
    pub fn with_images(mut self, mut fingerprints: Vec<u64>) -> Self {
        fingerprints.sort_unstable();
        self.images = fingerprints;
        self
    }

    /// The fingerprints of the images seen, ascending (empty when unknown).
    pub fn images(&self) -> &[u64] {
        &self.images
    }

    /// The [`model_fingerprint`] of the model these statistics were captured on, if recorded.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// One fingerprint per shard of data merged into these statistics.
    pub fn shards(&self) -> &[String] {
        &self.shards
    }

    /// A hash of the numbers themselves: two captures of the same images on
    /// the same model have the same one.
    fn content_fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        self.hash_layers(&mut hash);
        hex(&hash.finalize()[..16])
    }

    /// A hash of everything a file records, provenance included: a file
    /// whose counts, shards or model were edited after it was written no
    /// longer matches the checksum it carries.
    fn checksum(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(FORMAT.as_bytes());
        hash.update([0]);
        hash.update(self.model.as_deref().unwrap_or("").as_bytes());
        hash.update([0]);
        for shard in &self.shards {
            hash.update(shard.as_bytes());
            hash.update([0]);
        }
        hash.update(self.images.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>());
        self.hash_layers(&mut hash);
        hex(&hash.finalize())
    }

    fn hash_layers(&self, hash: &mut Sha256) {
        for l in &self.layers {
            hash.update(l.name.as_bytes());
            hash.update([0]);
            hash.update((l.positions_per_image as u64).to_le_bytes());
            hash.update(l.moments.count().to_le_bytes());
            let gram = l.moments.gram();
            let values = l.moments.sum().iter().chain(gram.as_slice());
            hash.update(values.flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        }
    }

    /// Checks that these statistics describe `model`: the same producers,
    /// widths and positions per image, and, when recorded, the same weights
    /// ([`model_fingerprint`]).
    pub fn check_model(&self, model: &Model) -> Result<()> {
        let links = model.links();
        let expected: Vec<(String, usize, usize)> =
            links.iter().map(|l| (model.name(l.producer), l.units(), l.shape.positions())).collect();
        let found: Vec<(String, usize, usize)> =
            self.layers.iter().map(|l| (l.name.clone(), l.moments.dim(), l.positions_per_image)).collect();
        if expected != found {
            let show = |v: &[(String, usize, usize)]| {
                v.iter().map(|(n, u, p)| format!("{n} ({u} units x {p} positions)")).collect::<Vec<_>>().join(", ")
            };
            return Err(Error::WrongModel(format!(
                "the statistics describe {} but the model has {}",
                show(&found),
                show(&expected)
            )));
        }
        if let Some(recorded) = &self.model {
            let actual = model_fingerprint(model)?;
            if *recorded != actual {
                return Err(Error::WrongModel(format!(
                    "the statistics were captured on another model with the same layers (weights fingerprint {recorded}, this model's is {actual})"
                )));
            }
        }
        Ok(())
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
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if the two describe different layers, were
    /// captured on different models, or share a shard of data (which would
    /// count those images twice); `self` is then unchanged.
    pub fn merge(&mut self, other: &Stats) -> Result<()> {
        if let (Some(a), Some(b)) = (&self.model, &other.model) {
            if a != b {
                return Err(Error::Mismatch(format!(
                    "they were captured on different models (weights fingerprints {a} and {b})"
                )));
            }
        }
        if let Some(shared) = self.shards.iter().find(|s| other.shards.contains(s)) {
            return Err(Error::Mismatch(format!(
                "both hold the statistics of the same images (shard {shared}): merging would count them twice"
            )));
        }
        let names = |s: &Stats| s.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        if names(self) != names(other) {
            return Err(Error::Mismatch(format!(
                "they describe different layers: {} and {}",
                names(self).join(", "),
                names(other).join(", ")
            )));
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
        }
        let shared = shared_count(&self.images, &other.images);
        if shared > 0 {
            return Err(Error::Mismatch(format!(
                "{shared} of their images were captured in both: merging would count them twice"
            )));
        }
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            a.moments.merge(&b.moments)?;
        }
        self.model = self.model.take().or_else(|| other.model.clone());
        self.shards.extend(other.shards.iter().cloned());
        if self.images.is_empty() || other.images.is_empty() {
            // One side's images are unknown: so are the merged statistics'.
            self.images.clear();
        } else {
            self.images.extend_from_slice(&other.images);
            self.images.sort_unstable();
        }
        Ok(())
    }

    /// Writes the statistics as a safetensors file (`NAME.sum`, `NAME.gram`
    /// in f64, `NAME.count`, `NAME.positions` in u64), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes(path)?;
        Ok(sq_io::write_atomic(path, &bytes)?)
    }

    /// The file [`Stats::save`] would write, in memory, for callers that
    /// write several outputs together; `path` is only used in errors.
    pub fn to_bytes(&self, path: &Path) -> Result<Vec<u8>> {
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
        if !self.images.is_empty() {
            let image_bytes: Vec<u8> = self.images.iter().flat_map(|f| f.to_le_bytes()).collect();
            owned.push((IMAGES.to_string(), Dtype::U64, vec![self.images.len()], image_bytes));
        }
        let format_err = |e: safetensors::SafeTensorError| Error::Format { path: path.into(), message: e.to_string() };
        let views = owned
            .iter()
            .map(|(name, dtype, shape, data)| {
                Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data).map_err(format_err)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let order = self.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",");
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("layers".to_string(), order),
            ("shards".to_string(), self.shards.join(",")),
            ("checksum".to_string(), self.checksum()),
        ]);
        if let Some(model) = &self.model {
            metadata.insert("model".to_string(), model.clone());
        }
        safetensors::serialize(views, Some(metadata)).map_err(format_err)
    }

    /// Reads statistics written by [`Stats::save`], checking every number:
    /// NaN or infinity, a negative sum of squares, a sample count that is not
    /// a positive whole number of images, layers that saw different numbers
    /// of images, a layer or shard listed twice, or a checksum that does not
    /// match the contents (a file edited after it was written) is an error
    /// naming the file and the tensor or layer. The file is read bounded
    /// ([`sq_io::read_safetensors`], at most [`MAX_STATS`]).
    pub fn load(path: &Path) -> Result<Stats> {
        let bytes = sq_io::read_safetensors(path, MAX_STATS).map_err(|source| match source.kind() {
            std::io::ErrorKind::InvalidData => Error::Format { path: path.into(), message: source.to_string() },
            _ => Error::Io { path: path.into(), source },
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Like [`Stats::load`] for a file already in memory; `path` is only used in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Stats> {
        let bad = |message: String| Error::Format { path: path.into(), message };
        let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        match meta.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some(FORMAT_WITHOUT_CHECKSUM) => {
                return Err(bad(format!(
                    "written by an older squeeze (format `{FORMAT_WITHOUT_CHECKSUM}`, without a checksum); \
                     capture the statistics again"
                )))
            }
            _ => return Err(bad(format!("metadata `format` is not `{FORMAT}`: not a squeeze statistics file"))),
        }
        let order = meta.get("layers").ok_or_else(|| bad("metadata has no `layers`".into()))?;
        // `shape`: the expected shape, `None` standing for any length.
        let tensor = |key: String, dtype: Dtype, shape: &[Option<usize>]| -> Result<Vec<u8>> {
            let t = file.tensor(&key).map_err(|_| bad(format!("missing tensor `{key}`")))?;
            if t.dtype() != dtype {
                return Err(bad(format!("tensor `{key}` is {:?}, expected {dtype:?}", t.dtype())));
            }
            let fits =
                t.shape().len() == shape.len() && t.shape().iter().zip(shape).all(|(d, e)| e.is_none_or(|e| *d == e));
            if !fits {
                let expected: Vec<String> = shape.iter().map(|e| e.map_or("n".into(), |e| e.to_string())).collect();
                return Err(bad(format!(
                    "tensor `{key}` has shape {}, expected {}",
                    sq_io::dims_text(t.shape()),
                    expected.join("x")
                )));
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
        let mut layers: Vec<LayerStats> = Vec::new();
        for name in order.split(',') {
            if name.is_empty() || layers.iter().any(|l| l.name == name) {
                return Err(bad(format!("metadata `layers` = `{order}` names a layer twice or an empty one")));
            }
            let sum = f64s(tensor(format!("{name}.sum"), Dtype::F64, &[None])?);
            let n = sum.len();
            let gram_data = f64s(tensor(format!("{name}.gram"), Dtype::F64, &[Some(n), Some(n)])?);
            let non_finite = |v: &[f64]| v.iter().filter(|x| !x.is_finite()).count();
            for (what, count) in [("sum", non_finite(&sum)), ("gram", non_finite(&gram_data))] {
                if count > 0 {
                    return Err(bad(format!("tensor `{name}.{what}` has {count} NaN or infinite values")));
                }
            }
            let gram = Matrix::from_rows(n, n, gram_data).map_err(|e| bad(format!("{name}.gram: {e}")))?;
            if (0..n).any(|i| (0..i).any(|j| gram[(i, j)] != gram[(j, i)])) {
                return Err(bad(format!("tensor `{name}.gram` is not symmetric: not a sum of outer products")));
            }
            if (0..n).any(|i| gram[(i, i)] < 0.0) {
                return Err(bad(format!("tensor `{name}.gram` has a negative diagonal entry: not a sum of squares")));
            }
            let count = u64_of(tensor(format!("{name}.count"), Dtype::U64, &[Some(1)])?)?;
            let positions = u64_of(tensor(format!("{name}.positions"), Dtype::U64, &[Some(1)])?)?;
            let positions = usize::try_from(positions).ok().filter(|&p| p > 0 && count % p as u64 == 0 && count > 0);
            let Some(positions) = positions else {
                return Err(bad(format!(
                    "layer `{name}`: {count} samples is not a positive whole number of images at its positions per image"
                )));
            };
            let moments = Moments::from_parts(count, sum, gram).map_err(|e| bad(format!("{name}: {e}")))?;
            layers.push(LayerStats { name: name.to_string(), positions_per_image: positions, moments });
        }
        if let Some((first, other)) =
            layers.iter().find_map(|l| (l.images() != layers[0].images()).then(|| (&layers[0], l)))
        {
            return Err(bad(format!(
                "layer `{}` holds {} images but layer `{}` holds {}: every layer sees the same images",
                first.name,
                first.images(),
                other.name,
                other.images()
            )));
        }
        let model = meta.get("model").cloned();
        let list = meta.get("shards").ok_or_else(|| bad("metadata has no `shards`".into()))?;
        let shards: Vec<String> = list.split(',').map(str::to_owned).collect();
        for (i, shard) in shards.iter().enumerate() {
            if shard.is_empty() {
                return Err(bad(format!("metadata `shards` = `{list}` names an empty shard")));
            }
            if shards[..i].contains(shard) {
                return Err(bad(format!("metadata `shards` lists shard {shard} twice: its images would count twice")));
            }
        }
        let known = |key: &str| {
            key == IMAGES
                || key.rsplit_once('.').is_some_and(|(layer, part)| {
                    ["sum", "gram", "count", "positions"].contains(&part) && layers.iter().any(|l| l.name == layer)
                })
        };
        let mut unknown: Vec<&str> = file.names().into_iter().filter(|key| !known(key)).collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(bad(format!("tensors {} belong to no layer it lists", unknown.join(", "))));
        }
        let images = match file.tensor(IMAGES) {
            Err(_) => Vec::new(),
            Ok(t) if t.dtype() == Dtype::U64 && t.shape().len() == 1 => {
                t.data().chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
            }
            Ok(_) => return Err(bad(format!("tensor `{IMAGES}` is not a list of U64 image fingerprints"))),
        };
        if let Some(layer) = layers.first().filter(|l| !images.is_empty() && l.images() != images.len() as u64) {
            return Err(bad(format!(
                "it records {} image fingerprints but its layers saw {} images",
                images.len(),
                layer.images()
            )));
        }
        if images.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad(format!("tensor `{IMAGES}` is not in ascending order")));
        }
        let stats = Stats { layers, model, shards, images };
        let recorded = meta.get("checksum").ok_or_else(|| bad("metadata has no `checksum`".into()))?;
        if *recorded != stats.checksum() {
            return Err(bad(
                "its checksum does not match its contents: the file was changed after squeeze wrote it".into()
            ));
        }
        Ok(stats)
    }
}

/// A fingerprint of a model's weights: a hash of every layer's kind, shapes
/// and `f32` values. Two checkpoints that hold the same values have the same
/// fingerprint, whatever their file names.
pub fn model_fingerprint(model: &Model) -> Result<String> {
    let mut hash = Sha256::new();
    for layer in model.layers() {
        hash.update(layer.kind().as_bytes());
        for (suffix, tensor) in layer.tensors() {
            hash.update(suffix.as_bytes());
            tensor.dims().iter().for_each(|&d| hash.update((d as u64).to_le_bytes()));
            let values = tensor.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            hash.update(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        }
    }
    Ok(hex(&hash.finalize()[..16]))
}

/// A fingerprint of one preprocessed image: the first 8 bytes of the
/// sha256 of its values (little-endian `f32`), as a number.
pub fn image_fingerprint(values: &[f32]) -> u64 {
    let digest = Sha256::digest(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    u64::from_le_bytes(digest[..8].try_into().expect("a sha256 digest has 32 bytes"))
}

/// How many entries two ascending lists share.
fn shared_count(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
