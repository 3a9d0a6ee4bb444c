mod common;

use common::{centred, config, generic_samples, naive_residuals, random_psd, Planted};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_linalg::{col_piv_qr_order, negligible_variance, pivoted_cholesky, Error, Matrix, Moments};

fn covariance_of(data: &[f32], n: usize) -> Matrix {
    let mut m = Moments::new(n);
    m.update_f32(data, data.len() / n).unwrap();
    m.covariance().unwrap()
}

fn trace(c: &Matrix) -> f64 {
    (0..c.rows()).map(|i| c[(i, i)]).sum()
}

/// Index of the largest value among units not yet picked (first on ties).
fn argmax_unpicked(values: &[f64], picked: &[usize]) -> usize {
    let mut best = None;
    for (i, &v) in values.iter().enumerate() {
        if !picked.contains(&i) && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.unwrap().0
}

/// Checks that `order` is a greedy order on `c`: at every step the pick has
/// the largest residual variance, up to a relative tolerance `tie` (so that
/// near-ties broken differently by round-off are not failures).
fn assert_greedy(c: &Matrix, order: &[usize], tie: f64) {
    let scale = trace(c);
    for j in 0..order.len() {
        let residual = naive_residuals(c, &order[..j]);
        let best = argmax_unpicked(&residual, &order[..j]);
        assert!(
            residual[order[j]] >= residual[best] - tie * scale,
            "step {j}: picked {} (residual {}) but {} has {}",
            order[j],
            residual[order[j]],
            best,
            residual[best]
        );
    }
}

/// The panel width of the blocked factorization (`PANEL` in the crate):
/// the sizes below straddle one, two and three panels.
const PANEL: usize = 128;

/// Matrix sizes from 1 to three panels and a bit, with extra weight just
/// around the first two panel boundaries.
fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![1..=3 * PANEL + 5, PANEL - 3..=PANEL + 3, 2 * PANEL - 3..=2 * PANEL + 3]
}

/// A size `n` and a number of picks `k`: `n` itself (the whole
/// factorization, as `eliminate` asks for), or anything from 0 to past `n`.
fn size_and_picks() -> impl Strategy<Value = (usize, usize)> {
    sizes().prop_flat_map(|n| (Just(n), prop_oneof![Just(n), 0..=n + 5]))
}

/// What [`reference_order`] saw: the picks, and before each pick (and after
/// the last one) the residual variance of every unit, `-inf` once picked.
struct Reference {
    order: Vec<usize>,
    residuals: Vec<Vec<f64>>,
}

/// The textbook greedy selection that the blocked factorization must agree
/// with: keep the whole Schur complement `S` of the picks (initially `C`),
/// and at every step pick the unpicked unit with the largest diagonal entry
/// of `S` (the lowest index among exact ties, by scanning in index order and
/// replacing only on a strict increase), stop when it is negligible, and
/// eliminate it, `S -= S[:,p] S[p,:] / S_pp`. No blocking, no permutation,
/// no square roots: `O(n^2 k)`.
fn reference_order(c: &Matrix, k: usize) -> Reference {
    let n = c.rows();
    let mut s: Vec<Vec<f64>> = (0..n).map(|i| c.row(i).to_vec()).collect();
    let zero = negligible_variance(n, (0..n).map(|i| c[(i, i)].max(0.0)).sum());
    let mut picked = vec![false; n];
    let mut order = Vec::new();
    let mut residuals = Vec::new();
    loop {
        let residual: Vec<f64> = (0..n).map(|i| if picked[i] { f64::NEG_INFINITY } else { s[i][i] }).collect();
        let mut best: Option<usize> = None;
        for i in (0..n).filter(|&i| !picked[i]) {
            if best.is_none_or(|b| residual[i] > residual[b]) {
                best = Some(i);
            }
        }
        residuals.push(residual);
        let Some(p) = best.filter(|&p| order.len() < k && s[p][p] > zero) else {
            break;
        };
        picked[p] = true;
        order.push(p);
        let pivot_row = s[p].clone();
        for (i, row) in s.iter_mut().enumerate() {
            let f = pivot_row[i] / pivot_row[p];
            for (x, &y) in row.iter_mut().zip(&pivot_row) {
                *x -= f * y;
            }
        }
    }
    Reference { order, residuals }
}

/// Checks that `order` (from `pivoted_cholesky(c, k)`) is the reference's
/// order, pick for pick, and stops where it stops.
///
/// Units that `equivalent` says are interchangeable (exact copies of each
/// other, whose residuals are equal in any arithmetic) must be told apart
/// by the tie rule alone, so among them the pick must be exactly the
/// reference's. Otherwise, at the first step where the reference's
/// runner-up comes within `1e-10 trace(C)` of its pick (a near-tie, which
/// the round-off of either implementation may break either way), it is
/// only checked that the pick is one of the near-best, and the comparison
/// stops there: the rest of the order legitimately depends on that pick.
fn assert_matches_reference(
    c: &Matrix,
    k: usize,
    order: &[usize],
    equivalent: impl Fn(usize, usize) -> bool,
) -> Result<(), TestCaseError> {
    let reference = reference_order(c, k);
    let tie = 1e-10 * trace(c);
    for (j, &expected) in reference.order.iter().enumerate() {
        let residual = &reference.residuals[j];
        let runner_up = (0..c.rows())
            .filter(|&i| i != expected && !equivalent(i, expected))
            .map(|i| residual[i])
            .fold(f64::NEG_INFINITY, f64::max);
        if residual[expected] - runner_up <= tie {
            prop_assert!(j < order.len(), "stopped after {} picks, reference {:?}", order.len(), reference.order);
            prop_assert!(
                residual[order[j]] >= residual[expected] - tie,
                "step {}: picked {} (residual {}), reference {} ({})",
                j,
                order[j],
                residual[order[j]],
                expected,
                residual[expected]
            );
            return Ok(());
        }
        prop_assert_eq!(order.get(j), Some(&expected), "step {}: {:?} vs reference {:?}", j, order, reference.order);
    }
    prop_assert_eq!(order, &reference.order[..]);
    Ok(())
}

/// Random PSD matrix of full rank `n` whose unit variances are spread over
/// about four orders of magnitude, as a layer's are.
fn spread_psd(seed: u64, n: usize) -> Matrix {
    let mut c = random_psd(seed, n, n + 10);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5ca1e);
    let scale: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0f64..2.0).exp()).collect();
    for i in 0..n {
        for j in 0..n {
            c[(i, j)] *= scale[i] * scale[j];
        }
    }
    c
}

/// What a unit of [`rank_deficient`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Independent,
    Combination,
    Dead,
}

/// `C = B B^T` with small integer entries, so that `C` is exact in `f64`
/// and its rank is known: an independent unit's row of `B` has a private
/// coordinate of its own (1 to 16) and small shared ones, so the independent
/// rows are linearly independent; a combination's row is an integer
/// combination of two or three independent rows (coefficients of magnitude
/// 2 or 3, to make exact ties in residual variance rare); a dead unit's row
/// is zero.
fn rank_deficient(seed: u64, n: usize) -> (Matrix, Vec<Unit>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds: Vec<Unit> = (0..n)
        .map(|_| match rng.random_range(0..10) {
            0..=5 => Unit::Independent,
            6..=8 => Unit::Combination,
            _ => Unit::Dead,
        })
        .collect();
    if !kinds.contains(&Unit::Independent) {
        kinds[0] = Unit::Independent;
    }
    let independent: Vec<usize> = (0..n).filter(|&i| kinds[i] == Unit::Independent).collect();
    let shared = 8;
    let width = independent.len() + shared;
    let mut b = vec![vec![0.0f64; width]; n];
    for (t, &i) in independent.iter().enumerate() {
        b[i][t] = f64::from(rng.random_range(1..=16));
        for x in &mut b[i][independent.len()..] {
            *x = f64::from(rng.random_range(-4..=4));
        }
    }
    for i in (0..n).filter(|&i| kinds[i] == Unit::Combination) {
        for _ in 0..rng.random_range(2..=3) {
            let base = independent[rng.random_range(0..independent.len())];
            let coeff = f64::from([-3, -2, 2, 3][rng.random_range(0..4)]);
            let row = b[base].clone();
            for (x, y) in b[i].iter_mut().zip(row) {
                *x += coeff * y;
            }
        }
    }
    let mut c = Matrix::zeros(n, n);
    for i in 0..n {
        for j in 0..n {
            c[(i, j)] = b[i].iter().zip(&b[j]).map(|(x, y)| x * y).sum();
        }
    }
    (c, kinds)
}

/// A matrix full of exact ties: unit `i` is a copy of unit `source[i]` of a
/// random `m x m` [`spread_psd`] in group `group[i]`; copies in the same
/// group are duplicates (equal rows), copies in different groups are
/// uncorrelated but have equal variances and equal residuals whenever the
/// same base units have been picked in their groups. Returns the matrix and
/// `(source, group)` of every unit.
fn copies(seed: u64, n: usize) -> (Matrix, Vec<(usize, usize)>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let m = rng.random_range(1..=n.min(60));
    let groups = rng.random_range(1..=3);
    let base = spread_psd(seed, m);
    let units: Vec<(usize, usize)> = (0..n).map(|_| (rng.random_range(0..m), rng.random_range(0..groups))).collect();
    let mut c = Matrix::zeros(n, n);
    for (i, &(si, gi)) in units.iter().enumerate() {
        for (j, &(sj, gj)) in units.iter().enumerate() {
            if gi == gj {
                c[(i, j)] = base[(si, sj)];
            }
        }
    }
    (c, units)
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn blocked_matches_the_reference_on_well_separated_matrices((n, k) in size_and_picks(), seed: u64) {
        let c = spread_psd(seed, n);
        let order = pivoted_cholesky(&c, k).unwrap();
        prop_assert_eq!(order.len(), k.min(n));
        assert_matches_reference(&c, k, &order, |_, _| false)?;
    }

    #[test]
    fn rank_deficient_picks_a_basis_and_stops_at_the_rank((n, k) in size_and_picks(), seed: u64) {
        let (c, kinds) = rank_deficient(seed, n);
        let rank = kinds.iter().filter(|&&u| u == Unit::Independent).count();
        let order = pivoted_cholesky(&c, k).unwrap();
        prop_assert_eq!(order.len(), k.min(rank));
        prop_assert!(order.iter().all(|&i| kinds[i] != Unit::Dead), "picked a dead unit: {:?}", order);
        if k >= rank {
            // `rank` picks that leave nothing unexplained are a basis: no
            // pick was a combination of the earlier ones.
            let residual = naive_residuals(&c, &order);
            prop_assert!(residual.iter().all(|r| r.abs() <= 1e-9 * trace(&c)), "{:?}", residual);
        }
        assert_matches_reference(&c, k, &order, |_, _| false)?;
    }

    #[test]
    fn exact_ties_go_to_the_lowest_index((n, k) in size_and_picks(), seed: u64) {
        let (c, units) = copies(seed, n);
        let order = pivoted_cholesky(&c, k).unwrap();
        let mut distinct = units.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(order.len(), k.min(distinct.len()));
        assert_matches_reference(&c, k, &order, |i, j| units[i].0 == units[j].0)?;
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn planted_rank_is_recovered_and_explains_everything(n in 1usize..40, seed: u64) {
        let planted = Planted::new(seed, n);
        let c = covariance_of(&planted.data, n);
        let order = pivoted_cholesky(&c, n).unwrap();
        prop_assert_eq!(order.len(), planted.rank());
        let mut distinct = order.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(distinct.len(), order.len());
        // The picked units span the whole layer: nothing is left unexplained.
        let residual = naive_residuals(&c, &order);
        let scale = trace(&c);
        prop_assert!(residual.iter().all(|r| r.abs() <= 1e-9 * scale), "{:?}", residual);
        assert_greedy(&c, &order, 1e-9);
    }

    #[test]
    fn matches_naive_greedy_selection(n in 1usize..40, k in 0usize..45, seed: u64) {
        // Full-rank PSD matrix with a spread of variances.
        let c = random_psd(seed, n, n + 10);
        let order = pivoted_cholesky(&c, k).unwrap();
        prop_assert_eq!(order.len(), k.min(n));
        assert_greedy(&c, &order, 1e-10);
    }

    #[test]
    fn agrees_with_column_pivoted_qr(n in 1usize..40, seed: u64) {
        let m = 3 * n + 10;
        let data = generic_samples(seed, m, n);
        let c = covariance_of(&data, n);
        let chol = pivoted_cholesky(&c, n).unwrap();
        let qr = col_piv_qr_order(&centred(&data, n)).unwrap();
        prop_assert_eq!(chol.len(), n);
        let mut perm = qr.clone();
        perm.sort_unstable();
        prop_assert_eq!(perm, (0..n).collect::<Vec<_>>());
        // Both are greedy orders (QR via downdated column norms) ...
        assert_greedy(&c, &qr, 1e-9);
        // ... and on well-separated data they are the same order. Compare up
        // to the first near-tie, where round-off may legitimately differ.
        for j in 0..n {
            if chol[j] != qr[j] {
                let residual = naive_residuals(&c, &chol[..j]);
                let gap = (residual[chol[j]] - residual[qr[j]]).abs();
                prop_assert!(gap <= 1e-9 * trace(&c), "step {}: {:?} vs {:?}", j, chol, qr);
                break;
            }
        }
    }
}

#[test]
fn stops_at_k_and_at_zero_residual() {
    let c = random_psd(5, 10, 20);
    assert_eq!(pivoted_cholesky(&c, 0).unwrap(), Vec::<usize>::new());
    assert_eq!(pivoted_cholesky(&c, 3).unwrap().len(), 3);
    assert_eq!(pivoted_cholesky(&c, 100).unwrap().len(), 10);
    assert_eq!(pivoted_cholesky(&Matrix::zeros(4, 4), 4).unwrap(), Vec::<usize>::new());
    assert_eq!(pivoted_cholesky(&Matrix::zeros(0, 0), 4).unwrap(), Vec::<usize>::new());
    assert_eq!(col_piv_qr_order(&Matrix::zeros(0, 3)).unwrap(), vec![0, 1, 2]);
}

#[test]
fn small_example() {
    // Units: a (variance 4), b = a (duplicate), c (variance 1, independent),
    // d dead. Greedy picks a (first of the tie), then c, then stops.
    let mut c = Matrix::zeros(4, 4);
    for (i, j, v) in [(0, 0, 4.0), (0, 1, 4.0), (1, 0, 4.0), (1, 1, 4.0), (2, 2, 1.0)] {
        c[(i, j)] = v;
    }
    assert_eq!(pivoted_cholesky(&c, 4).unwrap(), vec![0, 2]);
}

#[test]
fn all_tied_units_come_in_index_order_across_panels() {
    // Every residual is tied at every step; two variance levels interleaved.
    let n = 2 * PANEL + 7;
    let mut c = Matrix::zeros(n, n);
    for i in 0..n {
        c[(i, i)] = if i % 3 == 0 { 2.0 } else { 1.0 };
    }
    let high = (0..n).filter(|i| i % 3 == 0);
    let low = (0..n).filter(|i| i % 3 != 0);
    assert_eq!(pivoted_cholesky(&c, n).unwrap(), high.chain(low).collect::<Vec<_>>());
}

#[test]
fn bad_inputs_are_errors() {
    assert_eq!(pivoted_cholesky(&Matrix::zeros(2, 3), 1), Err(Error::NotSquare { rows: 2, cols: 3 }));
    let mut nan = Matrix::identity(2);
    nan[(0, 1)] = f64::NAN;
    assert_eq!(pivoted_cholesky(&nan, 2), Err(Error::NonFinite));
    assert_eq!(col_piv_qr_order(&nan), Err(Error::NonFinite));
}
