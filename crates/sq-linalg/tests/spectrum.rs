mod common;

use common::{config, generic_samples, jacobi_eigenvalues, max_abs, max_abs_diff, random_matrix, Planted};
use proptest::prelude::*;
use sq_linalg::{eigen_symmetric, Error, Matrix, Moments, Spectrum};

fn covariance_of(data: &[f32], n: usize) -> Matrix {
    let mut m = Moments::new(n);
    m.update_f32(data, data.len() / n).unwrap();
    m.covariance().unwrap()
}

fn random_symmetric(seed: u64, n: usize) -> Matrix {
    let a = random_matrix(seed, n, n);
    let mut s = a.clone();
    for i in 0..n {
        for j in 0..n {
            s[(i, j)] = a[(i, j)] + a[(j, i)];
        }
    }
    s
}

/// Smallest k whose first k eigenvalues reach tau * total, by plain counting.
fn naive_k(eigenvalues: &[f64], tau: f64) -> usize {
    let total: f64 = eigenvalues.iter().sum();
    (0..=eigenvalues.len()).find(|&k| eigenvalues[..k].iter().sum::<f64>() >= tau * total).unwrap()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn eigen_symmetric_reconstructs(n in 0usize..40, seed: u64) {
        let a = random_symmetric(seed, n);
        let (values, v) = eigen_symmetric(&a).unwrap();
        prop_assert_eq!(values.len(), n);
        prop_assert!(values.windows(2).all(|w| w[0] >= w[1]));
        // V orthonormal.
        let vtv = v.transpose().matmul(&v).unwrap();
        prop_assert!(max_abs_diff(&vtv, &Matrix::identity(n)) <= 1e-12);
        // V diag(values) V^T = A.
        let mut vl = v.clone();
        for i in 0..n {
            for j in 0..n {
                vl[(i, j)] *= values[j];
            }
        }
        let back = vl.matmul(&v.transpose()).unwrap();
        prop_assert!(max_abs_diff(&back, &a) <= 1e-12 * (1.0 + max_abs(&a)) * n as f64);
        // Same eigenvalues as an independent (Jacobi) method.
        for (x, y) in values.iter().zip(jacobi_eigenvalues(&a)) {
            prop_assert!((x - y).abs() <= 1e-11 * (1.0 + max_abs(&a)) * n as f64);
        }
    }

    #[test]
    fn spectrum_of_a_covariance(n in 1usize..40, m in 2usize..200, seed: u64) {
        let c = covariance_of(&generic_samples(seed, m, n), n);
        let s = Spectrum::from_covariance(&c).unwrap();
        let l = s.eigenvalues();
        prop_assert_eq!(l.len(), n);
        prop_assert!(l.windows(2).all(|w| w[0] >= w[1]));
        prop_assert!(l.iter().all(|&x| x >= 0.0));
        let trace: f64 = (0..n).map(|i| c[(i, i)]).sum();
        prop_assert!((s.total() - trace).abs() <= 1e-12 * trace * n as f64);
        for (x, y) in l.iter().zip(jacobi_eigenvalues(&c)) {
            // Jacobi's tiny eigenvalues are round-off too; compare absolutely.
            prop_assert!((x - y).abs() <= 1e-12 * trace * n as f64, "{} vs {}", x, y);
        }
        let cum = s.cumulative_explained();
        prop_assert_eq!(cum.len(), n);
        prop_assert!(cum.windows(2).all(|w| w[0] <= w[1]));
        prop_assert_eq!(*cum.last().unwrap(), 1.0);
        for tau in [0.01, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let k = s.k_for(tau).unwrap();
            prop_assert_eq!(k, naive_k(l, tau));
            prop_assert!(k >= 1 && k <= n);
            // Consistent with the cumulative curve.
            prop_assert!(cum[k - 1] >= tau * (1.0 - 1e-15));
        }
        // With more samples than units, the covariance has full rank
        // except for the one centring constraint.
        prop_assert_eq!(s.k_for(1.0).unwrap(), n.min(m - 1));
    }

    #[test]
    fn k_for_one_is_the_planted_rank(n in 1usize..40, seed: u64) {
        let planted = Planted::new(seed, n);
        let c = covariance_of(&planted.data, n);
        let s = Spectrum::from_covariance(&c).unwrap();
        prop_assert_eq!(s.k_for(1.0).unwrap(), planted.rank());
        prop_assert_eq!(s.eigenvalues().iter().filter(|&&l| l > 0.0).count(), planted.rank());
    }
}

#[test]
fn zero_and_empty_spectra() {
    let zero = Spectrum::from_covariance(&Matrix::zeros(3, 3)).unwrap();
    assert_eq!(zero.eigenvalues(), &[0.0; 3]);
    assert_eq!(zero.total(), 0.0);
    assert_eq!(zero.cumulative_explained(), vec![1.0; 3]);
    assert_eq!(zero.k_for(1.0), Ok(0));
    assert_eq!(zero.k_for(0.5), Ok(0));

    let empty = Spectrum::from_covariance(&Matrix::zeros(0, 0)).unwrap();
    assert!(empty.eigenvalues().is_empty());
    assert_eq!(empty.k_for(1.0), Ok(0));
}

#[test]
fn diagonal_example() {
    let mut c = Matrix::zeros(4, 4);
    for (i, v) in [1.0, 4.0, 0.0, 5.0].into_iter().enumerate() {
        c[(i, i)] = v;
    }
    let s = Spectrum::from_covariance(&c).unwrap();
    assert_eq!(s.eigenvalues(), &[5.0, 4.0, 1.0, 0.0]);
    assert_eq!(s.total(), 10.0);
    assert_eq!(s.cumulative_explained(), vec![0.5, 0.9, 1.0, 1.0]);
    assert_eq!(s.k_for(0.5), Ok(1));
    assert_eq!(s.k_for(0.51), Ok(2));
    assert_eq!(s.k_for(0.9), Ok(2));
    assert_eq!(s.k_for(0.95), Ok(3));
    assert_eq!(s.k_for(1.0), Ok(3));
}

#[test]
fn bad_inputs_are_errors() {
    let s = Spectrum::from_covariance(&Matrix::identity(2)).unwrap();
    for tau in [0.0, -0.5, 1.5, f64::NAN] {
        assert!(matches!(s.k_for(tau), Err(Error::InvalidParameter { name: "tau", .. })));
    }
    assert_eq!(Spectrum::from_covariance(&Matrix::zeros(2, 3)), Err(Error::NotSquare { rows: 2, cols: 3 }));
    assert_eq!(eigen_symmetric(&Matrix::zeros(3, 2)).map(|_| ()), Err(Error::NotSquare { rows: 3, cols: 2 }));
    let mut nan = Matrix::identity(2);
    nan[(1, 0)] = f64::NAN;
    assert_eq!(Spectrum::from_covariance(&nan), Err(Error::NonFinite));
    assert_eq!(eigen_symmetric(&nan).map(|_| ()), Err(Error::NonFinite));
}
