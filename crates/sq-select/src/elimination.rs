//! `eliminate`: greedy backward elimination, with rank-one downdates of the
//! inverse covariance so that a whole pass costs `O(n^3)`.
//!
//! For the current set `S` let `H = C[S,S]^-1` and `M = C[:,S] H` (`n x |S|`;
//! column `i` holds the covariance of every unit with the part of unit `i`
//! that the other kept units do not explain, scaled by `H_ii`). Removing
//! unit `i` loses `||M e_i||^2 / H_ii = G_ii / H_ii` of explained variance,
//! with `G = M^T M`. After removing `i`, with `a = H[:,i] / H_ii`,
//! `g = G[:,i]` and `S' = S \ {i}`, the inverse of the Schur complement and
//! the definition of `M` give
//!
//! ```text
//! H' = (H - H[:,i] a^T)[S',S']     G' = (G - a g^T - g a^T + G_ii a a^T)[S',S']
//! ```
//!
//! so `H` and `G`, both `|S| x |S|`, are all the state there is: a step
//! costs `O(|S|^2)`, a pass `O(n^3)`, independent of the units outside `S`.
//! Initially `M` is the identity on the rows of `S` and the regression
//! coefficients `B = C[D,S] H` on the other rows `D`, so `G = I + B^T B`.
//!
//! A step only needs the diagonals of `H` and `G` (to choose) and their
//! columns `i` (to downdate). So, as in LAPACK's blocked factorizations,
//! the downdates of [`BLOCK`] consecutive steps are accumulated as thin
//! factors, `H = H0 - W W^T` and `G = G0 - X Y^T`, from which each step
//! reads one column in `O(|S| BLOCK)`; they are applied to `H0` and `G0` as
//! one matrix product per block, which runs at matrix-multiply speed instead
//! of memory speed.
//!
//! Downdating an inverse is only as accurate as the cancellation in it:
//! removing one of two nearly collinear units turns huge entries of `H` into
//! small ones. Such a step is detected (a diagonal entry of `H` or `G`
//! collapses) and followed by recomputing `H` and `G` from `C`
//! (`O(n |S|^2)`), which the removal has just made well conditioned again.
//!
//! The inverse only exists on a basis of the layer. Units outside the basis
//! found by pivoted Cholesky (dead units, and units that are numerical
//! combinations of others) are removed first, at zero loss, from the smallest
//! variance up; elimination proper then runs on the basis, whose covariance
//! is well conditioned by construction.

use sq_linalg::{inverse_spd, pivoted_cholesky, Matrix};

use crate::covariance::{check, variance};
use crate::error::Result;
use crate::ranking::by_score_descending;

/// One step of backward elimination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Removal {
    /// The unit removed at this step.
    pub unit: usize,
    /// Explained variance lost by the removal, `V(S) - V(S \ {unit})` for the
    /// set `S` of units still present before the step; exactly `0.0` for
    /// units outside the numerical basis of the layer.
    pub loss: f64,
}

/// The complete backward elimination of a layer with covariance `cov`: every
/// unit, in removal order, with the variance its removal loses.
///
/// Keeping `k` units keeps the last `k` removed. Zero-variance units come
/// first, then the other units outside the layer's numerical basis (smallest
/// variance first), all at zero loss; the losses of the basis units sum to
/// `trace(C)` up to round-off. Exact ties in loss remove the higher index
/// first.
pub fn elimination_order(cov: &Matrix) -> Result<Vec<Removal>> {
    check(cov)?;
    Elimination::new(cov, None)?.collect()
}

/// Keeps `k` units (`1 <= k <= n`, checked by the caller) by backward
/// elimination, stopping as soon as only `k` are left. Returns the kept units
/// sorted ascending.
pub(crate) fn eliminate(cov: &Matrix, weight: Option<&Matrix>, k: usize) -> Result<Vec<usize>> {
    let n = cov.rows();
    let mut kept = vec![true; n];
    for removal in Elimination::new(cov, weight)?.take(n - k) {
        kept[removal?.unit] = false;
    }
    Ok((0..n).filter(|&i| kept[i]).collect())
}

/// A diagonal entry of `H` or `G` that a downdate shrinks by more than this
/// factor has lost that many significant digits to cancellation (as happens
/// when one of two nearly collinear units is removed); both are then
/// recomputed from the covariance instead. `1e4` keeps at least 12 digits
/// per step, and refreshes are rare: each needs a near-collinearity that
/// the removal then resolves.
const CANCELLATION_LIMIT: f64 = 1e4;

/// Number of removals whose downdates are accumulated before they are
/// applied as one matrix product: large enough for the product to run at
/// full speed, small enough that reading a column through the pending
/// factors (`O(|S| BLOCK)` per step) stays cheap.
const BLOCK: usize = 64;

/// Backward elimination as an iterator of [`Removal`]s: first the units
/// outside the basis, then exact elimination on the basis.
struct Elimination<'c> {
    dependent: std::vec::IntoIter<usize>,
    basis: Downdates<'c>,
}

impl<'c> Elimination<'c> {
    fn new(cov: &'c Matrix, weight: Option<&'c Matrix>) -> Result<Self> {
        let n = cov.rows();
        let basis = pivoted_cholesky(cov, n)?;
        let mut in_basis = vec![false; n];
        for &i in &basis {
            in_basis[i] = true;
        }
        let outside = (0..n).filter(|&i| !in_basis[i]);
        let mut dependent = by_score_descending(outside, |i| variance(cov, i));
        // Smallest variance (dead units) first; ties remove the higher index.
        dependent.reverse();
        Ok(Self { dependent: dependent.into_iter(), basis: Downdates::new(cov, weight, basis)? })
    }
}

impl Iterator for Elimination<'_> {
    type Item = Result<Removal>;

    fn next(&mut self) -> Option<Result<Removal>> {
        match self.dependent.next() {
            Some(unit) => Some(Ok(Removal { unit, loss: 0.0 })),
            None => self.basis.remove_cheapest().transpose(),
        }
    }
}

/// Exact backward elimination on a set of units whose covariance block is
/// positive definite, keeping `H = C[S,S]^-1` and `G = M^T M` up to date
/// with blocked downdates.
///
/// Position `j` is unit `units[j]`: row and column `j` of `H0` and `G0`
/// (row-major, `m x m` with `m = units.len()`), row `j` of the pending
/// factors. Positions removed during the current block stay in the buffers
/// (marked in `removed`) until the block is applied.
struct Downdates<'c> {
    cov: &'c Matrix,
    /// `Q` of an output-weighted objective `trace(Q Sigma_res)`, or `None`
    /// for the layer's own unexplained variance (`Q = I`).
    weight: Option<&'c Matrix>,
    units: Vec<usize>,
    /// `H` and `G` at the start of the block.
    h0: Vec<f64>,
    g0: Vec<f64>,
    /// Current diagonals of `H` and `G`, pending downdates included.
    diag_h: Vec<f64>,
    diag_g: Vec<f64>,
    removed: Vec<bool>,
    /// Number of removals in the current block.
    pending: usize,
    /// `H = H0 - W W^T`, `W` is `m x BLOCK`; `G = G0 - X Y^T`, `X` and `Y`
    /// are `m x 2 BLOCK`; row-major, zero beyond the pending columns.
    w: Vec<f64>,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl<'c> Downdates<'c> {
    fn new(cov: &'c Matrix, weight: Option<&'c Matrix>, units: Vec<usize>) -> Result<Self> {
        let mut downdates = Downdates {
            cov,
            weight,
            units,
            h0: Vec::new(),
            g0: Vec::new(),
            diag_h: Vec::new(),
            diag_g: Vec::new(),
            removed: Vec::new(),
            pending: 0,
            w: Vec::new(),
            x: Vec::new(),
            y: Vec::new(),
        };
        downdates.refresh()?;
        Ok(downdates)
    }

    /// Computes `H` and `G` for the current units from the covariance and
    /// starts a new block: `O(n |S|^2)`.
    fn refresh(&mut self) -> Result<()> {
        let m = self.units.len();
        if m == 0 {
            self.start_block(Vec::new(), Vec::new());
            return Ok(());
        }
        let h = inverse_spd(&self.cov.select(&self.units, &self.units)?)?.x;
        let mut in_s = vec![false; self.cov.rows()];
        for &i in &self.units {
            in_s[i] = true;
        }
        let others: Vec<usize> = (0..self.cov.rows()).filter(|&i| !in_s[i]).collect();
        let b = self.cov.select(&others, &self.units)?.matmul(&h)?;
        let g = match self.weight {
            // G = P^T P with P = [I; B]: the identity on S, B on the others.
            None => {
                let mut g = b.transpose().matmul(&b)?.into_vec();
                for j in 0..m {
                    g[j * m + j] += 1.0;
                }
                g
            }
            // G = P^T Q P, P with rows in unit order.
            Some(q) => {
                let mut p = Matrix::zeros(self.cov.rows(), m);
                for (j, &u) in self.units.iter().enumerate() {
                    p[(u, j)] = 1.0;
                }
                for (r, &u) in others.iter().enumerate() {
                    for j in 0..m {
                        p[(u, j)] = b[(r, j)];
                    }
                }
                p.transpose().matmul(&q.matmul(&p)?)?.into_vec()
            }
        };
        self.start_block(h.into_vec(), g);
        Ok(())
    }

    /// Installs `H0` and `G0` for the current units, with nothing pending.
    fn start_block(&mut self, h0: Vec<f64>, g0: Vec<f64>) {
        let m = self.units.len();
        self.diag_h = (0..m).map(|j| h0[j * m + j]).collect();
        self.diag_g = (0..m).map(|j| g0[j * m + j]).collect();
        self.h0 = h0;
        self.g0 = g0;
        self.removed = vec![false; m];
        self.pending = 0;
        self.w = vec![0.0; m * BLOCK];
        self.x = vec![0.0; m * 2 * BLOCK];
        self.y = vec![0.0; m * 2 * BLOCK];
    }

    /// Removes the unit of least loss. Returns `Ok(None)` once `S` is empty.
    fn remove_cheapest(&mut self) -> Result<Option<Removal>> {
        let Some((p, loss)) = (0..self.units.len())
            .filter(|&j| !self.removed[j])
            .map(|j| (j, self.diag_g[j] / self.diag_h[j]))
            .min_by(|&(i, a), &(j, b)| a.total_cmp(&b).then(self.units[j].cmp(&self.units[i])))
        else {
            return Ok(None);
        };
        let accurate = self.downdate(p);
        self.removed[p] = true;
        self.pending += 1;
        let unit = self.units[p];
        if !accurate {
            self.units = self.active_units();
            self.refresh()?;
        } else if self.pending == BLOCK {
            self.apply_block()?;
        }
        Ok(Some(Removal { unit, loss }))
    }

    /// Records the downdates of removing position `p` as column `pending` of
    /// the factors and updates the diagonals. Returns `false` if some
    /// diagonal entry collapsed by more than [`CANCELLATION_LIMIT`].
    fn downdate(&mut self, p: usize) -> bool {
        let (m, t) = (self.units.len(), self.pending);
        // Row `p` of the factors, read before column `t` is written.
        let mut w_p = [0.0; BLOCK];
        let mut y_p = [0.0; 2 * BLOCK];
        w_p[..t].copy_from_slice(&self.w[p * BLOCK..p * BLOCK + t]);
        y_p[..2 * t].copy_from_slice(&self.y[p * 2 * BLOCK..p * 2 * BLOCK + 2 * t]);
        // Entry `j` of column `p` of the current `H` and `G`.
        let column = |this: &Self, j: usize| {
            let h = this.h0[p * m + j] - dot(&this.w[j * BLOCK..], &w_p[..t]);
            let g = this.g0[p * m + j] - dot(&this.x[j * 2 * BLOCK..], &y_p[..2 * t]);
            (h, g)
        };
        let (h_pp, g_pp) = column(self, p);
        let root = h_pp.sqrt();
        let mut accurate = true;
        for j in (0..m).filter(|&j| j != p && !self.removed[j]) {
            let (h_jp, g_jp) = column(self, j);
            let a = h_jp / h_pp;
            let w = h_jp / root;
            self.w[j * BLOCK + t] = w;
            let x = &mut self.x[j * 2 * BLOCK + 2 * t..];
            x[0] = a;
            x[1] = g_jp - g_pp * a;
            let y = &mut self.y[j * 2 * BLOCK + 2 * t..];
            y[0] = g_jp;
            y[1] = a;
            let (h_before, g_before) = (self.diag_h[j], self.diag_g[j]);
            self.diag_h[j] -= w * w;
            self.diag_g[j] -= a * (2.0 * g_jp - g_pp * a);
            accurate &=
                self.diag_h[j] * CANCELLATION_LIMIT > h_before && self.diag_g[j] * CANCELLATION_LIMIT > g_before;
        }
        accurate
    }

    /// Applies the block's downdates to `H0` and `G0` in place, as one
    /// matrix product each, and drops the removed positions.
    fn apply_block(&mut self) -> Result<()> {
        let m = self.units.len();
        let keep: Vec<usize> = (0..m).filter(|&j| !self.removed[j]).collect();
        let w = Matrix::from_rows(m, BLOCK, std::mem::take(&mut self.w))?;
        let x = Matrix::from_rows(m, 2 * BLOCK, std::mem::take(&mut self.x))?;
        let y = Matrix::from_rows(m, 2 * BLOCK, std::mem::take(&mut self.y))?;
        let mut h0 = Matrix::from_rows(m, m, std::mem::take(&mut self.h0))?;
        let mut g0 = Matrix::from_rows(m, m, std::mem::take(&mut self.g0))?;
        h0.sub_matmul_transpose(&w, &w)?;
        g0.sub_matmul_transpose(&x, &y)?;
        self.units = self.active_units();
        self.start_block(compacted(h0.into_vec(), m, &keep), compacted(g0.into_vec(), m, &keep));
        Ok(())
    }

    /// The units not removed in the current block, in position order.
    fn active_units(&self) -> Vec<usize> {
        (0..self.units.len()).filter(|&j| !self.removed[j]).map(|j| self.units[j]).collect()
    }
}

/// `a[keep, keep]` for a row-major `m x m` matrix `a`, in place: `a`
/// becomes `keep.len()` square. `keep` is ascending, so every entry moves
/// towards the front and is read before it can be overwritten.
fn compacted(mut a: Vec<f64>, m: usize, keep: &[usize]) -> Vec<f64> {
    let k = keep.len();
    for (r, &i) in keep.iter().enumerate() {
        for (c, &j) in keep.iter().enumerate() {
            a[r * k + c] = a[i * m + j];
        }
    }
    a.truncate(k * k);
    a
}

/// The dot product of `b` with the leading `b.len()` entries of `a`.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
