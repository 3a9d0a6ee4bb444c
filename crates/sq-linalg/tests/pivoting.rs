mod common;

use common::{centred, config, generic_samples, naive_residuals, random_psd, Planted};
use proptest::prelude::*;
use sq_linalg::{col_piv_qr_order, pivoted_cholesky, Error, Matrix, Moments};

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
fn bad_inputs_are_errors() {
    assert_eq!(pivoted_cholesky(&Matrix::zeros(2, 3), 1), Err(Error::NotSquare { rows: 2, cols: 3 }));
    let mut nan = Matrix::identity(2);
    nan[(0, 1)] = f64::NAN;
    assert_eq!(pivoted_cholesky(&nan, 2), Err(Error::NonFinite));
    assert_eq!(col_piv_qr_order(&nan), Err(Error::NonFinite));
}
