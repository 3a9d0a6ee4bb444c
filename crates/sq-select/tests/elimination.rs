mod common;

use common::{config, naive_backward, naive_losses, random_psd, trace, v, Planted};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_linalg::{inverse_spd, Matrix};
use sq_select::{elimination_order, select_units, Removal, Strategy};

/// Checks every step of `order` against recomputation from scratch: the
/// reported loss is `V(S) - V(S \ {i})`, and no other unit of `S` would have
/// lost less (up to `tol * trace`, so that near-ties broken differently by
/// round-off are not failures).
fn assert_exact_greedy(c: &Matrix, order: &[Removal], tol: f64) {
    let scale = trace(c).max(f64::MIN_POSITIVE);
    let mut set: Vec<usize> = (0..c.rows()).collect();
    for (step, removal) in order.iter().enumerate() {
        let losses = naive_losses(c, &set);
        let loss = losses.iter().find(|(i, _)| *i == removal.unit).unwrap().1;
        let least = losses.iter().map(|&(_, x)| x).fold(f64::INFINITY, f64::min);
        assert!(
            (removal.loss - loss).abs() <= tol * scale,
            "step {step}: unit {} reported loss {} but recomputed {loss}",
            removal.unit,
            removal.loss
        );
        assert!(
            loss <= least + tol * scale,
            "step {step}: removed unit {} losing {loss}, but the least loss is {least}",
            removal.unit
        );
        set.retain(|&j| j != removal.unit);
    }
}

fn units(order: &[Removal]) -> Vec<usize> {
    order.iter().map(|r| r.unit).collect()
}

fn is_permutation(order: &[usize], n: usize) -> bool {
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    sorted == (0..n).collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn every_step_matches_recomputation_from_scratch(
        n in 1usize..=12,
        rank_deficit in 0usize..6,
        seed: u64,
    ) {
        // rank_deficit 0: generic full rank; otherwise rank n - deficit
        // (at least 1), i.e. exact dependencies at f64 round-off.
        let r = if rank_deficit == 0 { n + 4 } else { n.saturating_sub(rank_deficit).max(1) };
        let c = random_psd(seed, n, r);
        let order = elimination_order(&c).unwrap();
        prop_assert!(is_permutation(&units(&order), n));
        assert_exact_greedy(&c, &order, 1e-8);
        if r > n {
            // No near-ties in generic data: the very same order as the
            // naive O(n^5) elimination.
            prop_assert_eq!(units(&order), naive_backward(&c));
        }
    }

    #[test]
    fn planted_structure_matches_recomputation(
        rank in 1usize..5,
        combinations in 0usize..5,
        dead in 0usize..3,
        seed: u64,
    ) {
        let planted = Planted::new(seed, rank, combinations, dead);
        let c = planted.covariance();
        let order = elimination_order(&c).unwrap();
        assert_exact_greedy(&c, &order, 1e-8);
        // Units without variance (the dead ones, and constant combinations)
        // go first.
        let zero = 1e-12 * trace(&c);
        let flat = (0..c.rows()).filter(|&i| c[(i, i)] <= zero).count();
        prop_assert!(flat >= dead);
        prop_assert!(order[..flat].iter().all(|r| c[(r.unit, r.unit)] <= zero));
    }

    #[test]
    fn planted_rank_is_kept_and_explains_everything(
        rank in 1usize..12,
        combinations in 0usize..20,
        dead in 0usize..3,
        seed: u64,
    ) {
        let planted = Planted::new(seed, rank, combinations, dead);
        let c = planted.covariance();
        let kept = select_units(&c, rank, &Strategy::Eliminate, None).unwrap();
        prop_assert_eq!(kept.len(), rank);
        prop_assert!(kept.windows(2).all(|w| w[0] < w[1]));
        prop_assert!((v(&c, &kept) - trace(&c)).abs() <= 1e-8 * trace(&c));
        for d in &planted.dead {
            prop_assert!(!kept.contains(d));
        }
        // Exactly `rank` units carry any loss, and together all of it.
        let order = elimination_order(&c).unwrap();
        let lossy = order.iter().filter(|r| r.loss > 1e-9 * trace(&c)).count();
        prop_assert_eq!(lossy, rank);
        let total: f64 = order.iter().map(|r| r.loss).sum();
        prop_assert!((total - trace(&c)).abs() <= 1e-8 * trace(&c));
    }
}

/// The kept set for `k` is the last `k` units of the full order, whether the
/// elimination runs to the end or stops early.
#[test]
fn early_stop_keeps_the_tail_of_the_full_order() {
    for (seed, r) in [(1, 20), (2, 5), (3, 12)] {
        let c = random_psd(seed, 12, r);
        let order = units(&elimination_order(&c).unwrap());
        for k in 1..=12 {
            let mut tail = order[12 - k..].to_vec();
            tail.sort_unstable();
            assert_eq!(select_units(&c, k, &Strategy::Eliminate, None).unwrap(), tail);
        }
    }
}

/// Units that duplicate others up to tiny noise make `C[S,S]` nearly
/// singular without being numerically dependent: the downdated inverse must
/// stay accurate through the whole pass.
#[test]
fn near_duplicates_do_not_derail_the_downdates() {
    let mut rng = StdRng::seed_from_u64(7);
    let (samples, base, n) = (200, 20, 40);
    let mut data = vec![0.0f64; samples * n];
    for s in 0..samples {
        for j in 0..base {
            data[s * n + j] = rng.random_range(-1.0..1.0);
        }
        for j in base..n {
            // Copy of unit j - base with noise from 1e-2 down to 1e-8.
            let noise = 10f64.powi(-2 - (j - base) as i32 * 6 / (n - base) as i32);
            data[s * n + j] = data[s * n + j - base] + noise * rng.random_range(-1.0..1.0);
        }
    }
    let x = Matrix::from_rows(samples, n, data).unwrap();
    let c = x.transpose().matmul(&x).unwrap();
    let order = elimination_order(&c).unwrap();
    assert!(is_permutation(&units(&order), n));
    assert_exact_greedy(&c, &order, 1e-9);
}

/// Losses of every unit of `set` by the closed formula `G_ii / H_ii` with
/// `H = C[S,S]^-1` and `G = M^T M`, `M = C[:,S] H`, recomputed from scratch.
fn formula_losses(c: &Matrix, set: &[usize]) -> Vec<f64> {
    let all: Vec<usize> = (0..c.rows()).collect();
    let h = inverse_spd(&c.select(set, set).unwrap()).unwrap().x;
    let m = c.select(&all, set).unwrap().matmul(&h).unwrap();
    (0..set.len()).map(|i| (0..c.rows()).map(|u| m[(u, i)] * m[(u, i)]).sum::<f64>() / h[(i, i)]).collect()
}

/// Many removals, several blocks of delayed downdates and several
/// refreshes: every step still agrees with the formula evaluated from
/// scratch, and removes the unit of least loss.
#[test]
fn blocked_downdates_match_the_formula_across_blocks() {
    let mut rng = StdRng::seed_from_u64(11);
    let (samples, n) = (400, 150);
    let mut data = vec![0.0f64; samples * n];
    for s in 0..samples {
        for j in 0..n {
            data[s * n + j] = rng.random_range(-1.0..1.0);
            // Every fifth unit nearly duplicates the previous one, with
            // noise from 1e-1 down to 1e-6: near-collinear pairs whose
            // removal forces refreshes in the middle of blocks.
            if j % 5 == 4 {
                let noise = 10f64.powi(-1 - (j / 5 % 6) as i32);
                data[s * n + j] = data[s * n + j - 1] + noise * data[s * n + j];
            }
        }
    }
    let x = Matrix::from_rows(samples, n, data).unwrap();
    let c = x.transpose().matmul(&x).unwrap();
    let scale = trace(&c);
    let order = elimination_order(&c).unwrap();
    assert!(is_permutation(&units(&order), n));
    let mut set: Vec<usize> = (0..n).collect();
    for (step, removal) in order.iter().enumerate() {
        let losses = formula_losses(&c, &set);
        let at = set.iter().position(|&u| u == removal.unit).unwrap();
        let least = losses.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            (removal.loss - losses[at]).abs() <= 1e-9 * scale,
            "step {step}: unit {} reported loss {} but the formula gives {}",
            removal.unit,
            removal.loss,
            losses[at]
        );
        assert!(losses[at] <= least + 1e-9 * scale, "step {step}: not the least loss");
        set.remove(at);
    }
}

#[test]
fn zero_covariance_removes_everything_at_no_loss() {
    let order = elimination_order(&Matrix::zeros(5, 5)).unwrap();
    assert!(order.iter().all(|r| r.loss == 0.0));
    // Ties remove the higher index first, so the lowest index stays longest.
    assert_eq!(units(&order), vec![4, 3, 2, 1, 0]);
    assert_eq!(select_units(&Matrix::zeros(5, 5), 2, &Strategy::Eliminate, None).unwrap(), vec![0, 1]);
}

/// With more units requested than the rank, the basis is kept plus the
/// dependent units of largest variance.
#[test]
fn beyond_the_rank_dependent_units_of_largest_variance_are_kept() {
    // Units: a, 3a, 0, b, 2b with var(b) > var(a): rank 2, basis {3a, 2b},
    // dependent units removed in the order 0, a, b.
    let mut rng = StdRng::seed_from_u64(3);
    let mut data = Vec::new();
    for _ in 0..30 {
        let a: f64 = rng.random_range(-1.0..1.0);
        let b: f64 = rng.random_range(-2.0..2.0);
        data.extend([a, 3.0 * a, 0.0, b, 2.0 * b]);
    }
    let x = Matrix::from_rows(30, 5, data).unwrap();
    let c = x.transpose().matmul(&x).unwrap();
    for (k, expected) in [(2, vec![1, 4]), (3, vec![1, 3, 4]), (4, vec![0, 1, 3, 4]), (5, vec![0, 1, 2, 3, 4])] {
        assert_eq!(select_units(&c, k, &Strategy::Eliminate, None).unwrap(), expected, "k = {k}");
    }
}

#[test]
fn rejects_bad_covariances() {
    assert!(elimination_order(&Matrix::zeros(2, 3)).is_err());
    let mut c = Matrix::identity(3);
    c[(1, 1)] = f64::NAN;
    assert!(elimination_order(&c).is_err());
    assert!(elimination_order(&Matrix::zeros(0, 0)).unwrap().is_empty());
}
