//! [`ModelBudget`]: how small the whole squeezed model must be.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sq_select::Tau;

use crate::error::{Error, Result};

/// What a global budget limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// Stored parameters (BatchNorm statistics included), i.e. size on disk.
    Params,
    /// Multiply-accumulates per image, the usual "FLOPs" of CNN papers.
    Flops,
}

impl Resource {
    /// The name used in budget specs: `params` or `flops`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Params => "params",
            Resource::Flops => "flops",
        }
    }
}

/// A budget on the whole model: the paper's uniform rule, or a reduction of
/// one resource by a factor, with per-layer widths left to an allocation.
///
/// Written and parsed as `tau:T` (every producer keeps `k(T)` units),
/// `params:Rx` or `flops:Rx` (at most `1/R` of the original model's
/// parameters or multiply-accumulates, `R > 1`; the `x` is optional);
/// serialized the same way, as a string.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ModelBudget {
    /// Every producer keeps `k(tau)` units.
    Tau(Tau),
    /// The squeezed model has at most `1 / ratio` of the original's `resource`.
    Ratio {
        /// What is limited.
        resource: Resource,
        /// The reduction factor, above 1.
        ratio: f64,
    },
}

impl fmt::Display for ModelBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelBudget::Tau(tau) => write!(f, "tau:{tau}"),
            ModelBudget::Ratio { resource, ratio } => write!(f, "{}:{ratio}x", resource.as_str()),
        }
    }
}

impl FromStr for ModelBudget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::ParseBudget { spec: s.to_owned(), reason: reason.to_owned() };
        let (kind, value) = s.split_once(':').ok_or_else(|| bad("expected tau:T, params:Rx or flops:Rx"))?;
        let resource = match kind {
            "tau" => return Ok(ModelBudget::Tau(value.parse()?)),
            "params" => Resource::Params,
            "flops" => Resource::Flops,
            _ => return Err(bad("expected tau:T, params:Rx or flops:Rx")),
        };
        let number = value.strip_suffix('x').unwrap_or(value);
        let ratio: f64 = number.parse().map_err(|_| bad("the ratio is not a number"))?;
        if !(ratio.is_finite() && ratio > 1.0) {
            return Err(bad("ratio must be above 1 (e.g. params:4.9x keeps at most 1/4.9 of the parameters)"));
        }
        Ok(ModelBudget::Ratio { resource, ratio })
    }
}

impl From<ModelBudget> for String {
    fn from(budget: ModelBudget) -> String {
        budget.to_string()
    }
}

impl TryFrom<String> for ModelBudget {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}
