//! Planning a patch: which units go, and how the consumer reconstructs them.

use serde::{Deserialize, Serialize};
use sq_linalg::{solve_spd, Matrix, Moments};
use sq_models::{Link, Stream, StreamReader};

use crate::error::{Error, Result};

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

serde_plain::derive_fromstr_from_deserialize!(Compensation, |e| -> Error { Error::Parse(e.to_string()) });
serde_plain::derive_display_from_serialize!(Compensation);

/// The statistics a cut is planned from.
#[derive(Clone, Copy, Debug)]
pub enum Statistics<'a> {
    /// Moments of the consumer's current input (`n` units): the removed
    /// units are reconstructed from the kept ones, `x_R ~ B x_S + c`.
    Current(&'a Moments),
    /// Joint moments of `[y; x]` (`2n` units), where `y` is what the
    /// consumer read in the *original* model and `x` what it reads now,
    /// after earlier cuts. Every unit of `y` is reconstructed from the kept
    /// units of `x`, `y ~ A x_S + c`, so the cut also corrects the error
    /// that earlier cuts left in this layer's input.
    Joint(&'a Moments),
}

/// The affine map `y ~ a x_S + c` folded into the consumer, over all `n`
/// units the consumer used to read. For [`Statistics::Current`] the rows of
/// kept units are the identity and only removed units are reconstructed.
#[derive(Clone, Debug, PartialEq)]
pub struct AffineMap {
    /// `n x |S|` coefficients.
    pub a: Matrix,
    /// `n` offsets.
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
    /// Relative error of the consumer's new input against its target on
    /// the statistics the patch was planned from:
    /// `sqrt(E||y_hat - y||^2 / E||y||^2)`.
    pub relative_error: f64,
    /// Why: a human-readable description of the change.
    pub label: String,
}

/// Plans the cut of `link` keeping `kept` (any order, no duplicates) of
/// its units, from statistics of what the consumer reads; `name` is the
/// producer's name, for labels and errors.
pub fn plan(
    link: &Link,
    name: &str,
    kept: &[usize],
    stats: Statistics<'_>,
    compensation: Compensation,
) -> Result<Patch> {
    let fit = fit(name, link.units(), kept, stats, compensation)?;
    let label = format!("{name}: keep {}/{} units, compensation {compensation}", fit.kept.len(), link.units());
    Ok(Patch {
        link: link.clone(),
        kept: fit.kept,
        removed: fit.removed,
        map: fit.map,
        relative_error: fit.relative_error,
        label,
    })
}

/// The cut of a residual stream: the channels every writer keeps, and one
/// reconstruction per reader, each fitted to the tensor that reader reads.
#[derive(Clone, Debug)]
pub struct StreamPatch {
    /// The stream being cut.
    pub stream: Stream,
    /// Channels kept, ascending.
    pub kept: Vec<usize>,
    /// Channels removed, ascending.
    pub removed: Vec<usize>,
    /// One map per reader (as [`Stream::readers`]); `None` for plain deletion.
    pub maps: Vec<Option<AffineMap>>,
    /// Relative error of each reader's new input, as [`Patch::relative_error`].
    pub relative_errors: Vec<f64>,
}

/// Plans the cut of `stream` keeping `kept` of its channels, from the
/// moments of what each reader reads: `moments[t]` for the reader whose tap
/// is `stream.taps()[t]`.
pub fn plan_stream(
    stream: &Stream,
    kept: &[usize],
    moments: &[Moments],
    compensation: Compensation,
) -> Result<StreamPatch> {
    let taps = stream.taps();
    if moments.len() != taps.len() {
        return Err(Error::InvalidKept {
            layer: stream.name.clone(),
            message: format!("{} sets of moments for {} taps", moments.len(), taps.len()),
        });
    }
    let mut fits = Vec::with_capacity(taps.len());
    for m in moments {
        fits.push(fit(&stream.name, stream.units, kept, Statistics::Current(m), compensation)?);
    }
    let per_reader = |r: &StreamReader| &fits[taps.iter().position(|&t| t == r.tap).expect("every reader's tap")];
    Ok(StreamPatch {
        stream: stream.clone(),
        kept: fits[0].kept.clone(),
        removed: fits[0].removed.clone(),
        maps: stream.readers.iter().map(|r| per_reader(r).map.clone()).collect(),
        relative_errors: stream.readers.iter().map(|r| per_reader(r).relative_error).collect(),
    })
}

/// Kept and removed units and the reconstruction of one tapped tensor.
struct Fit {
    kept: Vec<usize>,
    removed: Vec<usize>,
    map: Option<AffineMap>,
    relative_error: f64,
}

/// Checks `kept` against `n` units and fits the reconstruction of the
/// removed ones (or of the original input, for joint statistics).
fn fit(name: &str, n: usize, kept: &[usize], stats: Statistics<'_>, compensation: Compensation) -> Result<Fit> {
    let invalid = |message: String| Error::InvalidKept { layer: name.to_string(), message };
    let expected = match stats {
        Statistics::Current(_) => n,
        Statistics::Joint(_) => 2 * n,
    };
    let moments = match stats {
        Statistics::Current(m) | Statistics::Joint(m) => m,
    };
    if moments.dim() != expected {
        return Err(invalid(format!(
            "statistics have {} units, expected {expected} for a layer of {n}",
            moments.dim()
        )));
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
    let problem = Problem::new(stats, n, &kept)?;
    let (map, relative_error) = match compensation {
        Compensation::None => (None, problem.deletion_error()),
        Compensation::Lstsq => {
            let map = problem.least_squares(&removed)?;
            let error = problem.fit_error(&map);
            (Some(map), error)
        }
    };
    Ok(Fit { kept, removed, map, relative_error })
}

/// The regression of the target `y` (n units) on the kept current units `x_S`.
struct Problem<'a> {
    kept: &'a [usize],
    /// Whether `y` is the current input itself.
    current: bool,
    cov: Matrix,
    mean: Vec<f64>,
    /// Offset of `x` inside `cov`/`mean` (0 for current, n for joint).
    x0: usize,
    n: usize,
}

impl<'a> Problem<'a> {
    fn new(stats: Statistics<'_>, n: usize, kept: &'a [usize]) -> Result<Self> {
        let (moments, current, x0) = match stats {
            Statistics::Current(m) => (m, true, 0),
            Statistics::Joint(m) => (m, false, n),
        };
        Ok(Self { kept, current, cov: moments.covariance()?, mean: moments.mean()?, x0, n })
    }

    fn xs(&self) -> Vec<usize> {
        self.kept.iter().map(|&s| self.x0 + s).collect()
    }

    /// `E||y||^2`, the scale of the relative error.
    fn total(&self) -> f64 {
        (0..self.n).map(|u| self.cov[(u, u)] + self.mean[u] * self.mean[u]).sum()
    }

    fn relative(&self, err: f64) -> f64 {
        let total = self.total();
        if total > 0.0 {
            (err.max(0.0) / total).sqrt()
        } else {
            0.0
        }
    }

    /// `a = C[y,S] C[S,S]^-1` and `c = mu_y - a mu_S` (for the current
    /// input: identity on kept units, `B = C[R,S] C[S,S]^-1` on removed ones).
    fn least_squares(&self, removed: &[usize]) -> Result<AffineMap> {
        let xs = self.xs();
        let targets: Vec<usize> = if self.current { removed.to_vec() } else { (0..self.n).collect() };
        let solve = solve_spd(&self.cov.select(&xs, &xs)?, &self.cov.select(&xs, &targets)?)?;
        let coef = solve.x.transpose(); // |targets| x |S|
        let mut a = Matrix::zeros(self.n, self.kept.len());
        let mut c = vec![0.0; self.n];
        if self.current {
            for (j, &s) in self.kept.iter().enumerate() {
                a[(s, j)] = 1.0;
            }
        }
        for (i, &y) in targets.iter().enumerate() {
            let mut offset = self.mean[y];
            for (j, &x) in xs.iter().enumerate() {
                a[(y, j)] = coef[(i, j)];
                offset -= coef[(i, j)] * self.mean[x];
            }
            c[y] = offset;
        }
        Ok(AffineMap { a, c, ridge: solve.ridge })
    }

    /// `E||y - a x_S - c||^2 = trace(C_yy) - trace(a C_Sy)`: the least-squares
    /// fit matches the mean exactly and leaves the unexplained variance.
    fn fit_error(&self, map: &AffineMap) -> f64 {
        let xs = self.xs();
        let explained: f64 = (0..self.n)
            .map(|y| xs.iter().enumerate().map(|(j, &x)| map.a[(y, j)] * self.cov[(x, y)]).sum::<f64>())
            .sum();
        self.relative((0..self.n).map(|u| self.cov[(u, u)]).sum::<f64>() - explained)
    }

    /// Error of plain deletion: kept units pass through, removed ones read as 0.
    fn deletion_error(&self) -> f64 {
        let err: f64 = (0..self.n)
            .map(|u| match self.kept.binary_search(&u) {
                Err(_) => self.cov[(u, u)] + self.mean[u] * self.mean[u],
                Ok(_) if self.current => 0.0,
                Ok(_) => {
                    let x = self.x0 + u;
                    let d = self.mean[u] - self.mean[x];
                    self.cov[(u, u)] + self.cov[(x, x)] - 2.0 * self.cov[(u, x)] + d * d
                }
            })
            .sum();
        self.relative(err)
    }
}
