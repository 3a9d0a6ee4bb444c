//! [`Budget`]: how many units a layer keeps, [`keep_count`], which resolves
//! it against the layer's covariance, and [`Tau`], the checked
//! retained-variance target.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sq_linalg::{Matrix, Spectrum};

use crate::covariance::check;
use crate::error::{Error, Result};

/// Relative distance to an integer below which `fraction * n` is taken to be
/// that integer, so that e.g. `0.07 * 100 = 7.000000000000001` keeps 7.
const INTEGER_SLACK: f64 = 1e-9;

/// How many units of a layer to keep.
///
/// Written and parsed as `tau:<t>`, `fraction:<f>` or `width:<w>`;
/// serialized the same way, as a string. Parsing rejects parameters outside
/// their domain, as [`keep_count`] does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Budget {
    /// `k(tau)`: the smallest number of principal components that carry a
    /// fraction `tau` in `(0, 1]` of the variance; the layer's information
    /// content, and the method's own budget.
    Tau(Tau),
    /// `ceil(fraction * n)` units, `fraction` in `(0, 1]`: a uniform
    /// compression rate, blind to the statistics.
    Fraction(f64),
    /// Exactly this many units (at most `n`), e.g. to compare strategies at
    /// identical widths.
    Width(usize),
}

/// The number of units `k` a layer with covariance `cov` keeps under
/// `budget`, always in `1..=n`.
///
/// A layer without variance keeps one unit (a layer cannot be deleted
/// outright), and a width above `n` keeps all `n`. Budget parameters outside
/// their domain are an error, as is a `0 x 0` covariance.
pub fn keep_count(cov: &Matrix, budget: &Budget) -> Result<usize> {
    let n = check(cov)?;
    budget.checked()?;
    if n == 0 {
        return Err(Error::NoUnits);
    }
    let k = match *budget {
        Budget::Tau(tau) => Spectrum::from_covariance(cov)?.k_for(tau.get())?,
        Budget::Fraction(fraction) => ceil_within_round_off(fraction * n as f64),
        Budget::Width(width) => width,
    };
    Ok(k.clamp(1, n))
}

impl Budget {
    /// The budget itself if its parameter is in its domain.
    fn checked(self) -> Result<Self> {
        let valid = match self {
            Budget::Tau(_) => true,
            Budget::Fraction(x) => x > 0.0 && x <= 1.0,
            Budget::Width(width) => width > 0,
        };
        if valid {
            Ok(self)
        } else {
            Err(Error::InvalidBudget(self))
        }
    }
}

/// `x.ceil()`, except that an `x` within round-off of an integer is that
/// integer.
fn ceil_within_round_off(x: f64) -> usize {
    let nearest = x.round();
    if (x - nearest).abs() <= INTEGER_SLACK * nearest.max(1.0) {
        nearest as usize
    } else {
        x.ceil() as usize
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Tau(tau) => write!(f, "tau:{tau}"),
            Budget::Fraction(fraction) => write!(f, "fraction:{fraction}"),
            Budget::Width(width) => write!(f, "width:{width}"),
        }
    }
}

impl FromStr for Budget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parsed = match s.split_once(':') {
            Some(("tau", t)) => return Ok(Budget::Tau(t.parse()?)),
            Some(("fraction", f)) => f.parse().ok().map(Budget::Fraction),
            Some(("width", w)) => w.parse().ok().map(Budget::Width),
            _ => None,
        };
        parsed.ok_or_else(|| Error::ParseBudget(s.to_owned()))?.checked()
    }
}

impl From<Budget> for String {
    fn from(budget: Budget) -> String {
        budget.to_string()
    }
}

impl TryFrom<String> for Budget {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

/// A retained-variance target `tau` in `(0, 1]`: a layer keeps `k(tau)`
/// units, the fewest principal components carrying a fraction `tau` of its
/// variance. Checked when built or parsed, so an invalid target cannot
/// exist; written and serialized as the plain number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Tau(f64);

impl Tau {
    /// `tau` if it lies in `(0, 1]`, else [`Error::InvalidTau`].
    pub fn new(tau: f64) -> Result<Tau> {
        if tau > 0.0 && tau <= 1.0 {
            Ok(Tau(tau))
        } else {
            Err(Error::InvalidTau(tau))
        }
    }

    /// The target as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Tau {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Tau {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Tau::new(s.trim().parse().map_err(|_| Error::ParseTau(s.to_owned()))?)
    }
}

impl From<Tau> for f64 {
    fn from(tau: Tau) -> f64 {
        tau.0
    }
}

impl TryFrom<f64> for Tau {
    type Error = Error;

    fn try_from(tau: f64) -> Result<Self> {
        Tau::new(tau)
    }
}
