//! Output-aware elimination: the weighted objective `trace(Q Sigma_res)`.

mod common;

use common::{config, random_psd};
use proptest::prelude::*;
use sq_linalg::{solve_spd, Matrix};
use sq_select::{eliminate_for_output, select_units, Strategy};

/// `trace(Q Sigma_res(S))`, recomputed from scratch: the residual covariance
/// of every unit after its least-squares reconstruction from `set`,
/// weighted by `q`.
fn weighted_error(c: &Matrix, q: &Matrix, set: &[usize]) -> f64 {
    let n = c.rows();
    let all: Vec<usize> = (0..n).collect();
    let mut residual = c.clone();
    if !set.is_empty() {
        let c_sa = c.select(set, &all).unwrap();
        let x = solve_spd(&c.select(set, set).unwrap(), &c_sa).unwrap().x;
        let explained = c_sa.transpose().matmul(&x).unwrap();
        for i in 0..n {
            for j in 0..n {
                residual[(i, j)] -= explained[(i, j)];
            }
        }
    }
    (0..n).map(|i| (0..n).map(|j| q[(i, j)] * residual[(j, i)]).sum::<f64>()).sum()
}

/// Naive weighted backward elimination down to `k` units: at each step the
/// removal that leaves the least weighted error, recomputed from scratch.
fn naive_weighted(c: &Matrix, q: &Matrix, k: usize) -> Vec<usize> {
    let mut set: Vec<usize> = (0..c.rows()).collect();
    while set.len() > k {
        let (best, _) = set
            .iter()
            .map(|&i| {
                let without: Vec<usize> = set.iter().copied().filter(|&j| j != i).collect();
                (i, weighted_error(c, q, &without))
            })
            .fold((usize::MAX, f64::INFINITY), |best, (i, e)| if e < best.1 { (i, e) } else { best });
        set.retain(|&j| j != best);
    }
    set
}

proptest! {
    #![proptest_config(config(64))]

    /// With `Q = I` the objective is the unweighted one: same kept units as
    /// `eliminate`, for every `k`, full rank or not.
    #[test]
    fn identity_weight_is_plain_elimination(n in 1usize..=12, deficit in 0usize..4, seed: u64) {
        let r = if deficit == 0 { n + 3 } else { n.saturating_sub(deficit).max(1) };
        let c = random_psd(seed, n, r);
        let q = Matrix::identity(n);
        for k in 1..=n {
            prop_assert_eq!(eliminate_for_output(&c, &q, k).unwrap(), select_units(&c, k, &Strategy::Eliminate, None).unwrap());
        }
    }

    /// On generic full-rank covariances and weights, every greedy step is
    /// the exact best removal of the weighted objective.
    #[test]
    fn matches_naive_weighted_elimination(n in 2usize..=9, seed: u64) {
        let c = random_psd(seed, n, n + 4);
        let q = random_psd(seed.wrapping_add(1), n, 3);
        for k in 1..n {
            prop_assert_eq!(eliminate_for_output(&c, &q, k).unwrap(), naive_weighted(&c, &q, k), "k = {}", k);
        }
    }
}

/// A unit the consumer never reads, uncorrelated with the others, goes
/// first however large its variance; plain elimination keeps it.
#[test]
fn a_unit_nobody_reads_goes_first() {
    let mut c = Matrix::identity(4);
    c[(2, 2)] = 100.0;
    let mut q = Matrix::identity(4);
    q[(2, 2)] = 0.0;
    assert_eq!(eliminate_for_output(&c, &q, 3).unwrap(), [0, 1, 3]);
    assert!(select_units(&c, 3, &Strategy::Eliminate, None).unwrap().contains(&2));
}

#[test]
fn bad_shapes_are_errors() {
    let c = Matrix::identity(3);
    assert!(eliminate_for_output(&c, &Matrix::identity(2), 2).is_err());
    assert!(eliminate_for_output(&c, &Matrix::identity(3), 0).is_err());
    assert!(eliminate_for_output(&c, &Matrix::identity(3), 4).is_err());
}
