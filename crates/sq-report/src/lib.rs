//! What squeeze's command line and `cargo xtask` show a person: line charts
//! ([`plot`]) and progress bars ([`progress`]).
//!
//! ```
//! use sq_report::plot::{line_chart, Axes, Series};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("curve.svg");
//! let axes = Axes {
//!     title: "explained variance".into(),
//!     x_label: "k / n".into(),
//!     y_label: "retained".into(),
//!     x_range: (0.0, 1.0),
//!     y_range: (0.0, 1.0),
//! };
//! let series = [Series { label: "features.0".into(), points: vec![(0.0, 0.0), (0.5, 0.9), (1.0, 1.0)] }];
//! line_chart(&axes, &series, &path)?;
//! assert!(std::fs::read_to_string(&path)?.contains("<svg"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Charts are drawn in memory and written with [`sq_io::write_atomic`], like
//! every other output of the project, so a failed plot leaves no partial
//! file. The format is chosen by the file extension and checked before any
//! drawing ([`plot::Format::of`]), so that callers can reject a bad path
//! before doing expensive work.
#![deny(missing_docs)]

pub mod plot;
pub mod progress;
