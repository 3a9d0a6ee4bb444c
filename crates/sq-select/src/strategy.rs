//! [`Strategy`]: how the kept units are chosen, and [`select_units`], the
//! single entry point that applies one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sq_linalg::Matrix;

use crate::baselines::{l1, random};
use crate::covariance::check;
use crate::elimination::eliminate;
use crate::error::{Error, Result};
use crate::forward::qr;

/// A rule for choosing which `k` units of a layer to keep.
///
/// Written and parsed as `eliminate`, `qr`, `l1`, `random` (seed 0) or
/// `random:<seed>`; serialized the same way, as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Strategy {
    /// Greedy backward elimination: from the full layer, repeatedly remove
    /// the unit whose removal loses the least explained variance. The
    /// default, and the paper's method.
    #[default]
    Eliminate,
    /// Greedy forward selection by pivoted Cholesky (QR with column pivoting
    /// on the centred data): repeatedly keep the unit with the largest
    /// variance not yet explained.
    Qr,
    /// Baseline: keep the units whose producer filters have the largest L1
    /// norm (Li et al. 2017), ignoring the statistics.
    L1,
    /// Baseline: a uniformly random subset.
    Random {
        /// Seed of the random generator.
        seed: u64,
    },
}

/// Chooses `k` units (`1 <= k <= n`) of a layer with covariance `cov`
/// (`n x n`, symmetric positive semi-definite) and returns their indices
/// sorted ascending.
///
/// `l1_norms` (one per unit) is required by [`Strategy::L1`] and ignored by
/// the others. Exact ties keep the lower index.
pub fn select_units(cov: &Matrix, k: usize, strategy: &Strategy, l1_norms: Option<&[f64]>) -> Result<Vec<usize>> {
    let n = check(cov)?;
    if k == 0 || k > n {
        return Err(Error::KeepOutOfRange { k, n });
    }
    match *strategy {
        Strategy::Eliminate => eliminate(cov, None, k),
        Strategy::Qr => qr(cov, k),
        Strategy::L1 => l1(l1_norms.ok_or(Error::MissingNorms)?, n, k),
        Strategy::Random { seed } => Ok(random(n, k, seed)),
    }
}

/// Keeps `k` units by backward elimination on an *output-weighted*
/// objective: each removal loses the least of `trace(Q Sigma_res)`, where
/// `Sigma_res` is the covariance left unexplained by the kept units and `Q`
/// (`n x n`, symmetric PSD) weighs it by how the consumer reads the units:
/// `Q = sum over taps of W_t^T W_t` for consumer weights `W_t` (out x n), so
/// the objective is the variance of the error in the consumer's output
/// (ignoring correlations between spatial positions). `Q = I` is
/// [`Strategy::Eliminate`].
pub fn eliminate_for_output(cov: &Matrix, weight: &Matrix, k: usize) -> Result<Vec<usize>> {
    let n = check(cov)?;
    if weight.rows() != n || weight.cols() != n {
        return Err(
            sq_linalg::Error::DimensionMismatch { what: "output weight", expected: n, found: weight.rows() }.into()
        );
    }
    if k == 0 || k > n {
        return Err(Error::KeepOutOfRange { k, n });
    }
    eliminate(cov, Some(weight), k)
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Eliminate => f.write_str("eliminate"),
            Strategy::Qr => f.write_str("qr"),
            Strategy::L1 => f.write_str("l1"),
            Strategy::Random { seed } => write!(f, "random:{seed}"),
        }
    }
}

impl FromStr for Strategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "eliminate" => Ok(Strategy::Eliminate),
            "qr" => Ok(Strategy::Qr),
            "l1" => Ok(Strategy::L1),
            "random" => Ok(Strategy::Random { seed: 0 }),
            _ => s
                .strip_prefix("random:")
                .and_then(|seed| seed.parse().ok())
                .map(|seed| Strategy::Random { seed })
                .ok_or_else(|| Error::ParseStrategy(s.to_owned())),
        }
    }
}

impl From<Strategy> for String {
    fn from(strategy: Strategy) -> String {
        strategy.to_string()
    }
}

impl TryFrom<String> for Strategy {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}
