//! Rebuilding a VGG from a torchvision `state_dict` (`features.N.*`,
//! `classifier.N.*`): layer kinds from the tensors, widths from their
//! shapes, pools from the gaps in torchvision's numbering or from an
//! explicit [`Arch`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::layer::{conv2d, BatchNorm2d, Layer, Linear, BN_EPS};
use crate::model::Model;
use crate::shape::{recorded_input, ActShape};
use crate::vgg::Arch;

/// Builds a VGG from a torchvision `state_dict` (keys without
/// `num_batches_tracked`), with the pools `arch` places if given;
/// `path` is only used in errors.
pub(super) fn from_tensors(
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
    arch: Option<&Arch>,
    path: &Path,
) -> Result<Model> {
    let mut groups = Groups { path: path.into(), features: BTreeMap::new(), classifier: BTreeMap::new() };
    tensors.into_iter().try_for_each(|(key, tensor)| groups.insert(&key, tensor))?;
    groups.into_model(arch, metadata)
}

/// Tensors of one torchvision layer index, by suffix (`weight`, `bias`, ...).
type Params = BTreeMap<String, Tensor>;

/// The checkpoint's tensors grouped by section and layer index.
struct Groups {
    path: PathBuf,
    features: BTreeMap<usize, Params>,
    classifier: BTreeMap<usize, Params>,
}

impl Groups {
    fn insert(&mut self, key: &str, tensor: Tensor) -> Result<()> {
        let unexpected = || Error::Layout {
            path: self.path.clone(),
            message: format!("unexpected tensor `{key}`: a VGG checkpoint holds only features.N.* and classifier.N.*"),
        };
        let mut parts = key.splitn(3, '.');
        let (Some(section), Some(index), Some(suffix)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(unexpected());
        };
        let index: usize = index.parse().map_err(|_| unexpected())?;
        let section = match section {
            "features" => &mut self.features,
            "classifier" => &mut self.classifier,
            _ => return Err(unexpected()),
        };
        section.entry(index).or_default().insert(suffix.to_string(), tensor);
        Ok(())
    }

    fn get(&self, params: &Params, key: &str, suffix: &str, rank: usize) -> Result<Tensor> {
        let full = format!("{key}.{suffix}");
        let t =
            params.get(suffix).ok_or_else(|| Error::MissingTensor { path: self.path.clone(), key: full.clone() })?;
        if t.rank() != rank {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                key: full,
                expected: format!("a {rank}-D tensor"),
                found: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    fn layout_err(&self, message: String) -> Error {
        Error::Layout { path: self.path.clone(), message }
    }

    /// Reads the conv and BatchNorm layers of `features`, in index order,
    /// with the number of parameter-free slots that follow each block.
    fn feature_blocks(&self) -> Result<Vec<Block>> {
        let mut blocks: Vec<Block> = Vec::new();
        for (&index, params) in &self.features {
            let key = format!("features.{index}");
            if is_batch_norm(params) {
                let var = self.get(params, &key, "running_var", 1)?;
                if var.flatten_all()?.to_vec1::<f32>()?.iter().any(|&v| v < 0.0) {
                    return Err(self.layout_err(format!("{key}.running_var has negative entries: not a variance")));
                }
                let bn = BatchNorm2d::new(
                    self.get(params, &key, "weight", 1)?,
                    self.get(params, &key, "bias", 1)?,
                    self.get(params, &key, "running_mean", 1)?,
                    self.get(params, &key, "running_var", 1)?,
                    BN_EPS,
                )
                .map_err(|e| self.layout_err(format!("{key}: {e}")))?;
                match blocks.last_mut() {
                    Some(b) if b.bn.is_none() && b.end + 1 == index => {
                        b.bn = Some(bn);
                        b.end = index;
                    }
                    _ => {
                        return Err(
                            self.layout_err(format!("{key} is a BatchNorm that does not directly follow a conv"))
                        )
                    }
                }
            } else {
                let weight = self.get(params, &key, "weight", 4)?;
                // torchvision's VGG convolutions all have a bias: without it the model would run, wrongly.
                let bias = self.get(params, &key, "bias", 1)?;
                let conv = conv2d(weight, Some(bias), 1).map_err(|e| self.layout_err(format!("{key}: {e}")))?;
                blocks.push(Block { start: index, end: index, conv, bn: None });
            }
        }
        if blocks.is_empty() {
            return Err(self.layout_err("no convolution found (no features.N.weight tensors)".into()));
        }
        if blocks[0].start != 0 {
            return Err(self.layout_err(format!(
                "features.{} is the first tensor; a VGG starts with features.0",
                blocks[0].start
            )));
        }
        Ok(blocks)
    }

    /// Whether a max-pool follows each conv block, from torchvision's
    /// numbering: one free slot after a block is its ReLU, two are ReLU and
    /// max-pool. `features` always ends with a max-pool.
    fn pools_from_gaps(&self, blocks: &[Block]) -> Result<Vec<bool>> {
        let mut pools = Vec::with_capacity(blocks.len());
        for pair in blocks.windows(2) {
            match pair[1].start - pair[0].end - 1 {
                1 => pools.push(false),
                2 => pools.push(true),
                gap => {
                    return Err(self.layout_err(format!(
                        "{gap} parameter-free layers between features.{} and features.{}; torchvision's VGG has 1 (ReLU) or 2 (ReLU, max-pool)",
                        pair[0].end, pair[1].start
                    )))
                }
            }
        }
        pools.push(true);
        Ok(pools)
    }

    fn pools_from_arch(&self, blocks: &[Block], arch: &Arch) -> Result<Vec<bool>> {
        let has_bn = blocks.iter().any(|b| b.bn.is_some());
        if blocks.len() != arch.conv_count() || has_bn != arch.batch_norm {
            return Err(self.layout_err(format!(
                "checkpoint has {} convs {} BatchNorm, which is not {arch}",
                blocks.len(),
                if has_bn { "with" } else { "without" }
            )));
        }
        Ok(arch.stages.iter().flat_map(|&n| (0..n).map(move |i| i + 1 == n)).collect())
    }

    /// Tensors that no layer reads: anything but `weight` and `bias` (and
    /// BatchNorm's running statistics), which would otherwise be dropped
    /// without a word.
    fn unknown_tensors(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for (section, layers) in [("features", &self.features), ("classifier", &self.classifier)] {
            for (index, params) in layers {
                let known: &[&str] = if section == "features" && is_batch_norm(params) {
                    &["weight", "bias", "running_mean", "running_var"]
                } else {
                    &["weight", "bias"]
                };
                let unknown = params.keys().filter(|suffix| !known.contains(&suffix.as_str()));
                keys.extend(unknown.map(|suffix| format!("{section}.{index}.{suffix}")));
            }
        }
        keys
    }

    fn into_model(self, arch: Option<&Arch>, metadata: BTreeMap<String, String>) -> Result<Model> {
        let unknown = self.unknown_tensors();
        if !unknown.is_empty() {
            return Err(Error::UnknownTensors { path: self.path.clone(), keys: unknown });
        }
        let blocks = self.feature_blocks()?;
        let pools = match arch {
            Some(arch) => self.pools_from_arch(&blocks, arch)?,
            None => self.pools_from_gaps(&blocks)?,
        };
        let in_channels = blocks[0].conv.weight().dims()[1];
        let last_channels = blocks.last().map(|b| b.conv.weight().dims()[0]).unwrap_or(0);
        let n_pools = pools.iter().filter(|&&p| p).count();

        let mut layers = Vec::new();
        for (block, pool) in blocks.into_iter().zip(pools) {
            layers.push(Layer::Conv2d(block.conv));
            if let Some(bn) = block.bn {
                layers.push(Layer::BatchNorm2d(bn));
            }
            layers.push(Layer::Relu);
            if pool {
                layers.push(Layer::MaxPool2d { kernel: 2, stride: 2, padding: 0 });
            }
        }
        layers.push(Layer::Flatten);

        let linears = self.classifier_layers()?;
        let first_in = match linears.first() {
            Some(Layer::Linear(l)) => l.weight().dims()[1],
            _ => return Err(self.layout_err("no classifier found (no classifier.N.weight tensors)".into())),
        };
        layers.extend(linears);

        // A recorded input size is the model's (its pools may floor odd sizes: 28 -> 14 -> 7 -> 3).
        if let Some((h, w)) = recorded_input(&metadata, in_channels, &self.path)? {
            let input = ActShape::Map { c: in_channels, h, w };
            return Model::new(input, layers, metadata).map_err(|e| self.layout_err(e.to_string()));
        }
        // Else the flatten reads last_channels x s x s, and the input is taken as s * 2^pools square.
        let positions = first_in / last_channels.max(1);
        let side = (positions as f64).sqrt().round() as usize;
        if positions * last_channels != first_in || side * side != positions {
            return Err(self.layout_err(format!(
                "classifier.0.weight reads {first_in} features, which is not the last conv's {last_channels} channels x s x s"
            )));
        }
        let input_side = u32::try_from(n_pools)
            .ok()
            .and_then(|pools| 1usize.checked_shl(pools))
            .and_then(|scale| side.checked_mul(scale))
            .ok_or_else(|| self.layout_err(format!("an input of {side} x 2^{n_pools} pixels a side is too large")))?;
        let input = ActShape::Map { c: in_channels, h: input_side, w: input_side };
        Model::new(input, layers, metadata).map_err(|e| self.layout_err(e.to_string()))
    }

    /// The classifier: Linear layers, with ReLU then Dropout in the gaps.
    fn classifier_layers(&self) -> Result<Vec<Layer>> {
        let mut layers = Vec::new();
        let mut next_index = None::<usize>;
        for (&index, params) in &self.classifier {
            let key = format!("classifier.{index}");
            if let Some(expected) = next_index {
                match index - expected {
                    0 => {}
                    1 => layers.push(Layer::Relu),
                    2 => layers.extend([Layer::Relu, Layer::Dropout]),
                    gap => {
                        return Err(self.layout_err(format!(
                            "{gap} parameter-free layers before {key}; torchvision's classifier has ReLU and Dropout between Linears"
                        )))
                    }
                }
            } else if index != 0 {
                return Err(self.layout_err(format!("{key} is the first classifier tensor; expected classifier.0")));
            }
            let weight = self.get(params, &key, "weight", 2)?;
            // torchvision's classifier Linears all have a bias.
            let bias = self.get(params, &key, "bias", 1)?;
            if bias.dims() != [weight.dims()[0]] {
                return Err(Error::TensorShape {
                    path: self.path.clone(),
                    key: format!("{key}.bias"),
                    expected: weight.dims()[0].to_string(),
                    found: bias.dims().to_vec(),
                });
            }
            layers.push(Layer::Linear(Linear::new(weight, Some(bias))));
            next_index = Some(index + 1);
        }
        Ok(layers)
    }
}

/// Whether a layer's tensors are a BatchNorm's: it has running statistics
/// or a 1-D weight (so that a checkpoint missing some of them is reported
/// as missing those tensors, not as holding unknown ones or a bad conv).
fn is_batch_norm(params: &Params) -> bool {
    params.contains_key("running_mean")
        || params.contains_key("running_var")
        || params.get("weight").is_some_and(|w| w.rank() == 1)
}

/// A conv, its optional BatchNorm, and the torchvision indices they span.
struct Block {
    start: usize,
    end: usize,
    conv: candle_nn::Conv2d,
    bn: Option<BatchNorm2d>,
}
