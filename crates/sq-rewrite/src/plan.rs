//! Planning a patch: which units go, and how the consumer reconstructs them.

use serde::{Deserialize, Serialize};
use sq_linalg::{solve_spd, Matrix, Moments};
use sq_models::Link;

use crate::error::{Result, RewriteError};

/// How the consumer makes up for the removed units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Compensation {
    /// Least-squares reconstruction of the removed units from the kept ones
    /// (the method).
    #[default]
    Lstsq,
    /// Plain deletion, as magnitude pruning does (for ablation).
    None,
}

impl std::str::FromStr for Compensation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lstsq" => Ok(Self::Lstsq),
            "none" => Ok(Self::None),
            _ => Err(format!("unknown compensation `{s}` (expected lstsq or none)")),
        }
    }
}

impl std::fmt::Display for Compensation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lstsq => "lstsq",
            Self::None => "none",
        })
    }
}

/// The affine reconstruction `x_R ~ b x_S + c` of the removed units.
#[derive(Clone, Debug, PartialEq)]
pub struct AffineMap {
    /// `|R| x |S|` coefficients.
    pub b: Matrix,
    /// `|R|` offsets.
    pub c: Vec<f64>,
    /// Ridge added to `C[S,S]` to solve (0 unless it was singular).
    pub ridge: f64,
}

/// One producer/consumer cut, ready to apply.
#[derive(Clone, Debug)]
pub struct Patch {
    /// The link being cut.
    pub link: Link,
    /// Units kept, ascending.
    pub kept: Vec<usize>,
    /// Units removed, ascending.
    pub removed: Vec<usize>,
    /// Reconstruction folded into the consumer; `None` for plain deletion.
    pub map: Option<AffineMap>,
    /// Why: a human-readable description of the change.
    pub label: String,
}

impl Patch {
    /// Relative error of the consumer's input after the patch, measured on
    /// the statistics `moments` the patch was planned from:
    /// `sqrt(E||x_hat - x||^2 / E||x||^2)`, where `x_hat` replaces the
    /// removed units by their reconstruction (or by zero without one).
    pub fn relative_error(&self, moments: &Moments) -> Result<f64> {
        let cov = moments.covariance()?;
        let mean = moments.mean()?;
        let total: f64 = (0..cov.rows()).map(|i| cov[(i, i)] + mean[i] * mean[i]).sum();
        let r = &self.removed;
        let err = match &self.map {
            // E||x_R - B x_S - c||^2 = trace(C_RR) - trace(B C_SR), the mean being matched exactly.
            Some(map) => {
                let c_sr = cov.select(&self.kept, r)?;
                let explained: f64 = (0..r.len()).map(|i| (0..self.kept.len()).map(|j| map.b[(i, j)] * c_sr[(j, i)]).sum::<f64>()).sum();
                r.iter().map(|&u| cov[(u, u)]).sum::<f64>() - explained
            }
            None => r.iter().map(|&u| cov[(u, u)] + mean[u] * mean[u]).sum(),
        };
        Ok(if total > 0.0 { (err.max(0.0) / total).sqrt() } else { 0.0 })
    }
}

/// Plans the cut of `link` keeping `kept` (any order, no duplicates) of
/// its units. `moments` are the statistics of the tensor the consumer
/// reads; `name` is the producer's name, for labels and errors.
pub fn plan(link: &Link, name: &str, kept: &[usize], moments: &Moments, compensation: Compensation) -> Result<Patch> {
    let n = link.units();
    let invalid = |message: String| RewriteError::InvalidKept { layer: name.to_string(), message };
    if moments.dim() != n {
        return Err(invalid(format!("statistics have {} units, the layer has {n}", moments.dim())));
    }
    let mut kept = kept.to_vec();
    kept.sort_unstable();
    if kept.is_empty() {
        return Err(invalid("at least one unit must be kept".into()));
    }
    if let Some(pair) = kept.windows(2).find(|p| p[0] == p[1]) {
        return Err(invalid(format!("unit {} listed twice", pair[0])));
    }
    if let Some(&bad) = kept.iter().find(|&&u| u >= n) {
        return Err(invalid(format!("unit {bad} out of range for width {n}")));
    }
    let removed: Vec<usize> = (0..n).filter(|u| kept.binary_search(u).is_err()).collect();
    let map = match compensation {
        Compensation::None => None,
        Compensation::Lstsq if removed.is_empty() => None,
        Compensation::Lstsq => Some(least_squares(moments, &kept, &removed)?),
    };
    let label = format!("{name}: keep {}/{n} units, compensation {compensation}", kept.len());
    Ok(Patch { link: link.clone(), kept, removed, map, label })
}

/// `B = C[R,S] C[S,S]^-1` (solved as `C[S,S] B^T = C[S,R]`), `c = mu_R - B mu_S`.
fn least_squares(moments: &Moments, kept: &[usize], removed: &[usize]) -> Result<AffineMap> {
    let cov = moments.covariance()?;
    let mean = moments.mean()?;
    let solve = solve_spd(&cov.select(kept, kept)?, &cov.select(kept, removed)?)?;
    let b = solve.x.transpose();
    let c = removed
        .iter()
        .enumerate()
        .map(|(i, &r)| mean[r] - kept.iter().enumerate().map(|(j, &s)| b[(i, j)] * mean[s]).sum::<f64>())
        .collect();
    Ok(AffineMap { b, c, ridge: solve.ridge })
}
