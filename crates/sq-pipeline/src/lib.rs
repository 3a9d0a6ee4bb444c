//! The one-shot squeeze of a whole model, and the analysis of its layers:
//! the loop that ties `sq-capture`, `sq-select` and `sq-rewrite` together.
//!
//! * [`compress`] squeezes every producer of a model, first to last:
//!   statistics of what its consumer reads ([`Mode::Sequential`]: on the
//!   already-squeezed prefix; [`Mode::OnePass`]: on the original model), the
//!   units to keep ([`Widths`] and a [`sq_select::Strategy`]), the
//!   least-squares map of the removed units onto the kept ones, and the
//!   rewrite of producer and consumer. No gradient step anywhere.
//! * [`squeeze_streams`] squeezes the residual streams of a ResNet (the
//!   channels every block of a stage reads and writes) as coupled groups:
//!   one kept set per stream, one reconstruction per reader.
//! * [`analyze`] reports each producer's information content from captured
//!   statistics: `k(tau)`, the explained-variance curve, dead units.
//!
//! ```
//! use sq_data::{Dataset, Preprocess};
//! use sq_models::synthetic::VggSpec;
//! use sq_pipeline::{compress, Settings, Widths};
//! use sq_select::{Budget, Tau};
//!
//! // A small random VGG-11 and 32 random 28x28 grey images.
//! let model = VggSpec::uniform("vgg11_bn".parse()?, 8, 1, 32, 16).build(0)?;
//! let pixels: Vec<u8> = (0..32 * 28 * 28).map(|i| (i * 7 % 251) as u8).collect();
//! let calib = Dataset::new("random", (1, 28, 28), pixels, vec![0; 32], 10)?;
//! let pre = Preprocess::new(vec![0.5], vec![0.25], (28, 28), (32, 32))?;
//!
//! let settings = Settings { widths: Widths::Uniform(Budget::Tau(Tau::new(0.9)?)), ..Settings::default() };
//! let outcome = compress(&model, &calib, &pre, &settings, |_, _| {})?;
//! assert!(outcome.model.param_count() < model.param_count());
//! assert_eq!(outcome.layers.len(), model.links().len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! * **Pure functions of their inputs.** The model, the calibration images
//!   and the [`Settings`] decide the result; nothing is read from or written
//!   to files here, so the command line, the xtask and library users share
//!   one code path and get identical models.
//! * **Replayable.** The [`Outcome`] carries the [`sq_select::Selection`]
//!   (kept units per producer), which [`Widths::PerLayer`] can replay with
//!   another strategy at identical widths.
#![deny(missing_docs)]

mod allocate;
mod analysis;
mod budget;
mod compress;
mod error;
mod multiple;
mod preflight;
mod sensitivity;
mod stream;

pub use allocate::{allocate, total_cost, Allocation, CostModel, LossCurve, Profile};
pub use analysis::{analyze, LayerReport};
pub use budget::{ModelBudget, Resource};
pub use compress::{
    capture_batch, compress, compress_links, LayerOutcome, Mode, Objective, Outcome, Settings, Target, Widths,
    BATCH_ACTIVATION_BYTES,
};
pub use error::{Error, Result};
pub use multiple::Multiple;
pub use preflight::{
    check_budget, check_samples, check_stats_samples, check_widths, shortfalls, stats_shortfalls, Shortfall,
};
pub use sensitivity::{
    default_validation, grid, measured_curves, measured_macs_per_image, variance_curves, Allocator, MAX_VALIDATION,
    MIN_VALIDATION, VALIDATION_MACS,
};
pub use stream::{squeeze_streams, StreamOutcome};
