//! Information content of each producer's outputs: how many principal
//! components carry a given share of the variance, and which units are dead.

use std::collections::BTreeMap;

use serde::Serialize;
use sq_capture::{LayerStats, Stats};
use sq_linalg::Spectrum;
use sq_select::Tau;

use crate::error::Result;

/// The information content of one producer's units.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// Producer name (`features.0`, `classifier.0`, ...).
    pub name: String,
    /// Number of units `n`.
    pub width: usize,
    /// Samples the statistics were computed from (images x positions).
    pub samples: u64,
    /// `k(tau)` for every requested tau, keyed by the tau's shortest decimal form (`"0.99"`).
    pub k: BTreeMap<String, usize>,
    /// Share of the total variance carried by the first principal component.
    pub first_component_share: f64,
    /// Units whose variance is numerically zero (never active, or constant).
    pub dead: usize,
    /// Cumulative explained variance: entry `i` is the share of the top `i + 1` components.
    pub explained: Vec<f64>,
}

/// Analyses every producer in `stats` at the retained-variance targets `taus`.
pub fn analyze(stats: &Stats, taus: &[Tau]) -> Result<Vec<LayerReport>> {
    stats
        .layers()
        .iter()
        .map(|layer| {
            analyze_layer(layer, taus)
                .map_err(|e| crate::Error::Layer { layer: layer.name.clone(), source: Box::new(e) })
        })
        .collect()
}

fn analyze_layer(layer: &LayerStats, taus: &[Tau]) -> Result<LayerReport> {
    let cov = layer.moments.covariance()?;
    let spectrum = Spectrum::from_covariance(&cov)?;
    let n = cov.rows();
    let trace: f64 = (0..n).map(|i| cov[(i, i)]).sum();
    let zero = sq_linalg::negligible_variance(n, trace);
    let k = taus.iter().map(|&t| Ok((t.to_string(), spectrum.k_for(t.get())?))).collect::<Result<_>>()?;
    let explained = spectrum.cumulative_explained();
    Ok(LayerReport {
        name: layer.name.clone(),
        width: n,
        samples: layer.moments.count(),
        k,
        first_component_share: explained.first().copied().unwrap_or(0.0),
        dead: (0..n).filter(|&i| cov[(i, i)] <= zero).count(),
        explained,
    })
}
