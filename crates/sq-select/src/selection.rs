//! Replayable selections: which units each layer keeps, how they were
//! chosen, and what they retain; saved as JSON and validated when loaded.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};
use sq_linalg::Matrix;

use crate::budget::{keep_count, Budget};
use crate::covariance::retained_fraction;
use crate::error::{Error, LayerDefect, Result};
use crate::strategy::{select_units, Strategy};

/// The largest selection file [`Selection::load`] reads: 256 MiB of JSON.
pub const MAX_SELECTION: sq_io::Cap = sq_io::Cap { bytes: 256 << 20, what: "a selection file" };

/// Chooses the units one layer keeps: resolves `budget` to `k` with
/// [`keep_count`], picks them with [`select_units`] and records the fraction
/// of the layer's variance they explain. `l1_norms` is as for
/// [`select_units`].
pub fn select_layer(
    name: impl Into<String>,
    cov: &Matrix,
    budget: Budget,
    strategy: Strategy,
    l1_norms: Option<&[f64]>,
) -> Result<LayerSelection> {
    let k = keep_count(cov, &budget)?;
    let kept = select_units(cov, k, &strategy, l1_norms)?;
    let retained_variance = retained_fraction(cov, &kept)?;
    LayerSelection::new(name, cov.rows(), kept, strategy, budget, retained_variance)
}

/// The units one layer keeps, with how they were chosen.
///
/// Always valid: at least one kept unit, indices strictly increasing and
/// below the width, retained variance in `[0, 1]`. The number of kept units
/// `k` is `kept().len()`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "LayerRecord")]
pub struct LayerSelection(LayerRecord);

/// A layer selection as stored, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LayerRecord {
    name: String,
    width: usize,
    kept: Vec<usize>,
    strategy: Strategy,
    budget: Budget,
    retained_variance: f64,
}

impl LayerSelection {
    /// A layer `name` of `width` units that keeps `kept` (sorted ascending,
    /// unique, non-empty, below `width`), chosen by `strategy` under
    /// `budget`, retaining the fraction `retained_variance` of the variance.
    pub fn new(
        name: impl Into<String>,
        width: usize,
        kept: Vec<usize>,
        strategy: Strategy,
        budget: Budget,
        retained_variance: f64,
    ) -> Result<Self> {
        LayerRecord { name: name.into(), width, kept, strategy, budget, retained_variance }.try_into()
    }

    /// The producer layer's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The layer's original number of units, `n`.
    pub fn width(&self) -> usize {
        self.0.width
    }

    /// The kept units, sorted ascending.
    pub fn kept(&self) -> &[usize] {
        &self.0.kept
    }

    /// The number of kept units, `k`.
    pub fn k(&self) -> usize {
        self.0.kept.len()
    }

    /// The removed units (the complement of [`kept`](Self::kept)), sorted
    /// ascending: those that compensation reconstructs.
    pub fn removed(&self) -> Vec<usize> {
        let mut kept = self.0.kept.iter().peekable();
        (0..self.0.width).filter(|&i| kept.next_if_eq(&&i).is_none()).collect()
    }

    /// The strategy that chose the kept units.
    pub fn strategy(&self) -> Strategy {
        self.0.strategy
    }

    /// The budget that fixed their number.
    pub fn budget(&self) -> Budget {
        self.0.budget
    }

    /// The fraction of the layer's variance that the kept units explain,
    /// `V(S) / trace(C)`.
    pub fn retained_variance(&self) -> f64 {
        self.0.retained_variance
    }
}

impl TryFrom<LayerRecord> for LayerSelection {
    type Error = Error;

    fn try_from(record: LayerRecord) -> Result<Self> {
        match record.defect() {
            None => Ok(LayerSelection(record)),
            Some(defect) => Err(Error::InvalidLayer { layer: record.name, defect }),
        }
    }
}

impl LayerRecord {
    /// The first thing wrong with this record, if any.
    fn defect(&self) -> Option<LayerDefect> {
        if self.kept.is_empty() {
            return Some(LayerDefect::Empty);
        }
        if let Some(&index) = self.kept.iter().find(|&&i| i >= self.width) {
            return Some(LayerDefect::OutOfRange { index, width: self.width });
        }
        if let Some(pair) = self.kept.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Some(if pair[0] == pair[1] {
                LayerDefect::Duplicate(pair[0])
            } else {
                LayerDefect::Unsorted(pair[1])
            });
        }
        if !(0.0..=1.0).contains(&self.retained_variance) {
            return Some(LayerDefect::RetainedVariance(self.retained_variance));
        }
        None
    }
}

impl Serialize for LayerSelection {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The selections of a whole model, one per squeezed layer, in squeezing
/// order; layer names are unique.
///
/// This is the replayable result of a squeeze: applying it again needs the
/// kept indices (and, for compensation, the statistics), not the strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SelectionRecord")]
pub struct Selection {
    layers: Vec<LayerSelection>,
}

/// A selection as stored, before validation.
#[derive(Deserialize)]
struct SelectionRecord {
    layers: Vec<LayerRecord>,
}

impl Selection {
    /// A selection of `layers`; fails if two share a name.
    pub fn new(layers: Vec<LayerSelection>) -> Result<Self> {
        let mut names = HashSet::new();
        if let Some(layer) = layers.iter().find(|l| !names.insert(l.name())) {
            return Err(Error::DuplicateLayer(layer.name().to_owned()));
        }
        Ok(Selection { layers })
    }

    /// Appends the selection of the next layer; fails if its name is taken.
    pub fn push(&mut self, layer: LayerSelection) -> Result<()> {
        if self.get(layer.name()).is_some() {
            return Err(Error::DuplicateLayer(layer.name().to_owned()));
        }
        self.layers.push(layer);
        Ok(())
    }

    /// The layer selections, in order.
    pub fn layers(&self) -> &[LayerSelection] {
        &self.layers
    }

    /// The selection of the layer called `name`.
    pub fn get(&self, name: &str) -> Option<&LayerSelection> {
        self.layers.iter().find(|l| l.name() == name)
    }

    /// The selection as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a selection always serializes")
    }

    /// Parses and validates a selection written by [`to_json`](Self::to_json);
    /// an invalid layer is reported by name ([`Error::InvalidLayer`]).
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str::<SelectionRecord>(json)?.try_into()
    }

    /// Writes the selection to `path` as JSON, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(sq_io::write_atomic(path.as_ref(), self.to_json().as_bytes())?)
    }

    /// Reads and validates a selection saved by [`save`](Self::save); errors
    /// name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json =
            sq_io::read_input(path, MAX_SELECTION).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let json = String::from_utf8(json).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        })?;
        Self::from_json(&json).map_err(|source| Error::Load { path: path.to_owned(), source: Box::new(source) })
    }
}

impl TryFrom<SelectionRecord> for Selection {
    type Error = Error;

    fn try_from(record: SelectionRecord) -> Result<Self> {
        let layers = record.layers.into_iter().map(LayerSelection::try_from).collect::<Result<_>>()?;
        Selection::new(layers)
    }
}
