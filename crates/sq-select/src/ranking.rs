//! Ordering units by a score, with the crate's tie rule.

/// `units` sorted by descending `score`; exact ties keep the order of
/// `units` (so units given in ascending order favour the lower index).
pub(crate) fn by_score_descending(units: impl IntoIterator<Item = usize>, score: impl Fn(usize) -> f64) -> Vec<usize> {
    let mut units: Vec<usize> = units.into_iter().collect();
    // Stable sort; scores are finite (checked by the callers' inputs).
    units.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    units
}
