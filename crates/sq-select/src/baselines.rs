//! The comparison baselines, blind to correlations: `l1` (weight magnitude,
//! Li et al. 2017) and `random`.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::ranking::by_score_descending;

/// Keeps the `k` units with the largest weight norm (`norms[i]` is the L1
/// norm of the producer's filter `i`, computed by the caller); ties keep the
/// lower index. Returns the kept units sorted ascending.
pub(crate) fn l1(norms: &[f64], n: usize, k: usize) -> Result<Vec<usize>> {
    if norms.len() != n {
        return Err(Error::NormsLength { expected: n, found: norms.len() });
    }
    if let Some(unit) = norms.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFiniteNorm { unit });
    }
    let mut kept = by_score_descending(0..n, |i| norms[i]);
    kept.truncate(k);
    kept.sort_unstable();
    Ok(kept)
}

/// A uniformly random `k`-subset of `0..n`, sorted ascending, determined by
/// `seed` (for a given version of `rand`: replay a saved selection by its
/// indices, not by its seed).
pub(crate) fn random(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kept = rand::seq::index::sample(&mut rng, n, k).into_vec();
    kept.sort_unstable();
    kept
}
