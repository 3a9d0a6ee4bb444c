//! [`ActShape`]: the shape of one image's activation between two layers,
//! and the input shape a checkpoint's metadata records.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// Shape of one image's activation between two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActShape {
    /// A feature map: channels x height x width.
    Map {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// A flat vector of features.
    Vector(usize),
}

impl ActShape {
    /// Number of units (channels of a map, entries of a vector).
    pub fn units(&self) -> usize {
        match *self {
            ActShape::Map { c, .. } => c,
            ActShape::Vector(n) => n,
        }
    }
    /// Number of scalars per image.
    pub fn numel(&self) -> usize {
        match *self {
            ActShape::Map { c, h, w } => c * h * w,
            ActShape::Vector(n) => n,
        }
    }
    /// Spatial positions per image (1 for a vector).
    pub fn positions(&self) -> usize {
        match *self {
            ActShape::Map { h, w, .. } => h * w,
            ActShape::Vector(_) => 1,
        }
    }
}

impl fmt::Display for ActShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActShape::Map { c, h, w } => write!(f, "{c}x{h}x{w}"),
            ActShape::Vector(n) => write!(f, "{n}"),
        }
    }
}

/// The input `(height, width)` a checkpoint's `input` metadata records
/// (`1x32x32`, optionally followed by words), checked against the
/// `in_channels` its first convolution reads; `None` without one.
pub(crate) fn recorded_input(
    metadata: &BTreeMap<String, String>,
    in_channels: usize,
    path: &Path,
) -> Result<Option<(usize, usize)>> {
    let Some(value) = metadata.get("input") else { return Ok(None) };
    let layout = |message: String| Error::Layout { path: path.into(), message };
    let shape = value.split_whitespace().next().unwrap_or("");
    let dims: Option<Vec<usize>> = shape.split('x').map(|d| d.parse().ok()).collect();
    match dims.as_deref() {
        Some(&[c, h, w]) if c > 0 && h > 0 && w > 0 && c == in_channels => Ok(Some((h, w))),
        Some(&[c, h, w]) if c > 0 && h > 0 && w > 0 => {
            Err(layout(format!("metadata `input` gives {c} channels but the first convolution reads {in_channels}")))
        }
        _ => Err(layout(format!("metadata `input` = `{value}` is not CxHxW with positive sides (e.g. 1x32x32)"))),
    }
}
