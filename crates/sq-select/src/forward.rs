//! `qr`: greedy forward selection by pivoted Cholesky on the covariance.

use sq_linalg::{pivoted_cholesky, Matrix};

use crate::covariance::variance;
use crate::error::Result;
use crate::ranking::by_score_descending;

/// Keeps `k` units (`1 <= k <= n`, checked by the caller) chosen greedily
/// forward: repeatedly the unit with the largest variance of its own not yet
/// explained by those already kept. Equivalent to QR with column pivoting on
/// the centred data. Returns the kept units sorted ascending.
///
/// This is not the unit that increases `V(S)` the most: that gain also
/// counts how much of the *other* units the new one explains (the residual
/// covariances, not just the residual variance). Pivoting is the classic,
/// cheap proxy, `O(n^2 k)` at matrix-multiply speed.
///
/// Past the numerical rank `r` every residual is zero, so the last `k - r`
/// units are the remaining ones of largest variance (they cost nothing either
/// way, and a larger variance makes them the better-conditioned choice).
pub(crate) fn qr(cov: &Matrix, k: usize) -> Result<Vec<usize>> {
    let mut kept = pivoted_cholesky(cov, k)?;
    if kept.len() < k {
        let mut picked = vec![false; cov.rows()];
        for &i in &kept {
            picked[i] = true;
        }
        let rest = (0..cov.rows()).filter(|&i| !picked[i]);
        let fill = by_score_descending(rest, |i| variance(cov, i));
        kept.extend(fill.into_iter().take(k - kept.len()));
    }
    kept.sort_unstable();
    Ok(kept)
}
