mod common;

use common::{config, generic_samples, max_abs, max_abs_diff, naive_solve, random_matrix, random_psd, Planted};
use proptest::prelude::*;
use sq_linalg::{inverse_spd, solve_spd, Error, Matrix, Moments};

fn covariance_of(data: &[f32], n: usize) -> Matrix {
    let mut m = Moments::new(n);
    m.update_f32(data, data.len() / n).unwrap();
    m.covariance().unwrap()
}

/// `A + shift I` for a random PSD `A`: symmetric positive definite.
fn random_spd(seed: u64, n: usize) -> Matrix {
    let mut a = random_psd(seed, n, n + 5);
    for i in 0..n {
        a[(i, i)] += 0.05;
    }
    a
}

fn all_finite(m: &Matrix) -> bool {
    m.as_slice().iter().all(|x| x.is_finite())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn matches_gaussian_elimination_on_spd(n in 0usize..40, m in 0usize..6, seed: u64) {
        let a = random_spd(seed, n);
        let b = random_matrix(seed ^ 7, n, m);
        let solve = solve_spd(&a, &b).unwrap();
        prop_assert_eq!(solve.ridge, 0.0);
        let want = naive_solve(&a, &b).unwrap();
        prop_assert!(max_abs_diff(&solve.x, &want) <= 1e-9 * (1.0 + max_abs(&want)));

        let inv = inverse_spd(&a).unwrap();
        prop_assert_eq!(inv.ridge, 0.0);
        prop_assert_eq!(inv.x.clone(), inv.x.transpose());
        let id = a.matmul(&inv.x).unwrap();
        prop_assert!(max_abs_diff(&id, &Matrix::identity(n)) <= 1e-9);
    }

    #[test]
    fn singular_covariances_get_a_small_ridge(n in 2usize..40, m in 1usize..6, seed: u64) {
        let planted = Planted::new(seed, n);
        prop_assume!(planted.rank() < n);
        let a = covariance_of(&planted.data, n);
        // A right-hand side in the range of A, like C[S, R] in compensation.
        let y = random_matrix(seed ^ 3, n, m);
        let b = a.matmul(&y).unwrap();
        let solve = solve_spd(&a, &b).unwrap();
        let mean_diagonal = (0..n).map(|i| a[(i, i)]).sum::<f64>() / n as f64;
        prop_assert!(solve.ridge > 0.0);
        prop_assert!(solve.ridge <= 1e-8 * mean_diagonal, "ridge {}", solve.ridge);
        prop_assert!(all_finite(&solve.x));
        let residual = max_abs_diff(&a.matmul(&solve.x).unwrap(), &b);
        prop_assert!(residual <= 1e-6 * max_abs(&b).max(mean_diagonal), "residual {}", residual);

        let inv = inverse_spd(&a).unwrap();
        prop_assert_eq!(inv.ridge, solve.ridge);
        prop_assert!(all_finite(&inv.x));
        prop_assert_eq!(inv.x.clone(), inv.x.transpose());
    }

    #[test]
    fn full_rank_covariances_need_no_ridge(n in 1usize..40, seed: u64) {
        let a = covariance_of(&generic_samples(seed, 3 * n + 10, n), n);
        let b = random_matrix(seed, n, 3);
        let solve = solve_spd(&a, &b).unwrap();
        prop_assert_eq!(solve.ridge, 0.0);
        let want = naive_solve(&a, &b).unwrap();
        prop_assert!(max_abs_diff(&solve.x, &want) <= 1e-8 * (1.0 + max_abs(&want)));
    }

    #[test]
    fn low_rank_psd_gets_a_small_ridge(n in 2usize..40, seed: u64) {
        let a = random_psd(seed, n, n / 2);
        let b = a.matmul(&random_matrix(seed, n, 2)).unwrap();
        let solve = solve_spd(&a, &b).unwrap();
        prop_assert!(solve.ridge > 0.0);
        prop_assert!(all_finite(&solve.x));
        prop_assert!(max_abs_diff(&a.matmul(&solve.x).unwrap(), &b) <= 1e-6 * (1.0 + max_abs(&b)));
    }
}

#[test]
fn dead_unit() {
    // diag(2, 0, 3): the dead middle unit forces a ridge but the live ones are
    // solved essentially exactly.
    let mut a = Matrix::zeros(3, 3);
    a[(0, 0)] = 2.0;
    a[(2, 2)] = 3.0;
    let b = Matrix::from_rows(3, 1, vec![4.0, 0.0, 3.0]).unwrap();
    let solve = solve_spd(&a, &b).unwrap();
    assert!(solve.ridge > 0.0 && solve.ridge < 1e-9);
    assert!((solve.x[(0, 0)] - 2.0).abs() < 1e-9);
    assert_eq!(solve.x[(1, 0)], 0.0);
    assert!((solve.x[(2, 0)] - 1.0).abs() < 1e-9);
}

#[test]
fn zero_and_empty_matrices() {
    let solve = solve_spd(&Matrix::zeros(2, 2), &Matrix::identity(2)).unwrap();
    assert_eq!(solve.ridge, 1e-12);
    assert_eq!(solve.x.as_slice(), &[1e12, 0.0, 0.0, 1e12]);
    let empty = solve_spd(&Matrix::zeros(0, 0), &Matrix::zeros(0, 3)).unwrap();
    assert_eq!((empty.x.rows(), empty.x.cols(), empty.ridge), (0, 3, 0.0));
    assert_eq!(inverse_spd(&Matrix::zeros(0, 0)).unwrap().x, Matrix::zeros(0, 0));
}

#[test]
fn bad_inputs_are_errors() {
    assert_eq!(solve_spd(&Matrix::zeros(2, 3), &Matrix::zeros(2, 1)), Err(Error::NotSquare { rows: 2, cols: 3 }));
    assert!(matches!(
        solve_spd(&Matrix::identity(2), &Matrix::zeros(3, 1)),
        Err(Error::DimensionMismatch { expected: 2, found: 3, .. })
    ));
    assert_eq!(inverse_spd(&Matrix::zeros(1, 2)), Err(Error::NotSquare { rows: 1, cols: 2 }));
    let mut nan = Matrix::identity(2);
    nan[(1, 1)] = f64::NAN;
    assert_eq!(solve_spd(&nan, &Matrix::zeros(2, 1)), Err(Error::NonFinite));
    assert_eq!(
        solve_spd(&Matrix::identity(2), &Matrix::from_rows(2, 1, vec![f64::INFINITY, 0.0]).unwrap()),
        Err(Error::NonFinite)
    );
    // Clearly indefinite: no small ridge can make it positive definite.
    let indefinite = Matrix::from_rows(2, 2, vec![1.0, 0.0, 0.0, -1.0]).unwrap();
    assert!(matches!(inverse_spd(&indefinite), Err(Error::NotPositiveSemidefinite { .. })));
    let mostly_positive = Matrix::from_rows(2, 2, vec![1.0, 0.0, 0.0, -0.5]).unwrap();
    assert!(matches!(solve_spd(&mostly_positive, &Matrix::identity(2)), Err(Error::NotPositiveSemidefinite { .. })));
    let hollow = Matrix::from_rows(2, 2, vec![0.0, 1.0, 1.0, 0.0]).unwrap();
    assert!(matches!(solve_spd(&hollow, &Matrix::identity(2)), Err(Error::NotPositiveSemidefinite { .. })));
}
