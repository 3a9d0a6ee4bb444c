//! [`Multiple`]: hardware-friendly widths, every kept width a multiple of M.
//!
//! SIMD kernels and GEMM libraries process channels in blocks (8 or 16 f32
//! lanes, register tiles of several of those), so a layer 37 channels wide
//! often runs no faster than one 40 wide. Rounding *up* keeps every unit
//! the statistics asked for, so rounding never costs accuracy; a layer never
//! grows past its original width, which need not be a multiple itself.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Kept widths are rounded up to a multiple of this (1: no rounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct Multiple(NonZeroUsize);

impl Multiple {
    /// No rounding.
    pub const ONE: Multiple = Multiple(NonZeroUsize::MIN);

    /// Widths rounded to multiples of `m`; `m = 0` is an error.
    pub fn new(m: usize) -> Result<Self> {
        NonZeroUsize::new(m).map(Multiple).ok_or_else(|| Error::Parse("a width multiple must be at least 1".into()))
    }

    /// The multiple.
    pub fn get(self) -> usize {
        self.0.get()
    }

    /// `k` rounded up to the next multiple, but at most `n` (a producer of
    /// `n` units cannot grow): never below `min(k, n)`.
    pub fn round_up(self, k: usize, n: usize) -> usize {
        k.next_multiple_of(self.get()).min(n).max(k.min(n))
    }
}

impl Default for Multiple {
    fn default() -> Self {
        Multiple::ONE
    }
}

impl TryFrom<usize> for Multiple {
    type Error = Error;
    fn try_from(m: usize) -> Result<Self> {
        Multiple::new(m)
    }
}

impl From<Multiple> for usize {
    fn from(m: Multiple) -> usize {
        m.get()
    }
}

impl FromStr for Multiple {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let m = s.trim().parse::<usize>().map_err(|e| Error::Parse(format!("width multiple `{s}`: {e}")))?;
        Multiple::new(m)
    }
}

impl fmt::Display for Multiple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_within_the_layer() {
        let m = Multiple::new(8).unwrap();
        assert_eq!(m.round_up(1, 64), 8);
        assert_eq!(m.round_up(8, 64), 8);
        assert_eq!(m.round_up(9, 64), 16);
        assert_eq!(m.round_up(60, 62), 62, "never past the layer's width");
        assert_eq!(Multiple::ONE.round_up(37, 64), 37);
    }

    #[test]
    fn zero_and_garbage_are_refused() {
        assert!("0".parse::<Multiple>().is_err());
        assert!("eight".parse::<Multiple>().is_err());
        assert_eq!("16".parse::<Multiple>().unwrap().get(), 16);
    }
}
