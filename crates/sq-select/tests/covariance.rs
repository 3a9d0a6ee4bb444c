mod common;

use common::{config, covariance_of, random_psd, trace, Planted};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_linalg::Matrix;
use sq_select::{explained_variance, retained_fraction};

/// `V(S)` from the samples themselves: the variance of the projection of
/// every centred column onto the span of the centred columns in `set`,
/// by modified Gram-Schmidt (no covariance, no solve).
fn projected_variance(data: &[f32], n: usize, set: &[usize]) -> f64 {
    let m = data.len() / n;
    let column = |j: usize| -> Vec<f64> {
        let x: Vec<f64> = (0..m).map(|s| f64::from(data[s * n + j])).collect();
        let mean = x.iter().sum::<f64>() / m as f64;
        x.iter().map(|v| v - mean).collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for &j in set {
        let mut q = column(j);
        for b in &basis {
            let r = dot(&q, b);
            q.iter_mut().zip(b).for_each(|(x, y)| *x -= r * y);
        }
        let norm = dot(&q, &q).sqrt();
        // Columns already in the span (up to round-off) add nothing.
        if norm > 1e-9 * dot(&column(j), &column(j)).sqrt().max(1e-300) {
            basis.push(q.iter().map(|x| x / norm).collect());
        }
    }
    (0..n)
        .map(|u| {
            let x = column(u);
            basis.iter().map(|b| dot(&x, b).powi(2)).sum::<f64>()
        })
        .sum::<f64>()
        / m as f64
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn explained_variance_is_the_variance_of_the_projection(
        n in 1usize..10,
        seed: u64,
        pick in proptest::collection::vec(any::<bool>(), 10),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let data: Vec<f32> = (0..(n + 6) * n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let c = covariance_of(&data, n);
        let set: Vec<usize> = (0..n).filter(|&i| pick[i]).collect();
        let expected = projected_variance(&data, n, &set);
        prop_assert!((explained_variance(&c, &set).unwrap() - expected).abs() <= 1e-9 * trace(&c));
    }

    #[test]
    fn dependent_and_dead_kept_units_are_harmless(
        rank in 1usize..5,
        combinations in 0usize..5,
        dead in 0usize..3,
        seed: u64,
    ) {
        let planted = Planted::new(seed, rank, combinations, dead);
        let c = planted.covariance();
        let all: Vec<usize> = (0..planted.n).collect();
        // Every unit, dependent and dead ones included: everything is explained.
        prop_assert!((explained_variance(&c, &all).unwrap() - trace(&c)).abs() <= 1e-8 * trace(&c));
        prop_assert!((retained_fraction(&c, &all).unwrap() - 1.0).abs() <= 1e-8);
        prop_assert_eq!(explained_variance(&c, &planted.dead).unwrap(), 0.0);
    }
}

#[test]
fn edge_cases() {
    let c = random_psd(1, 4, 6);
    assert_eq!(explained_variance(&c, &[]).unwrap(), 0.0);
    assert_eq!(retained_fraction(&c, &[]).unwrap(), 0.0);
    let fraction = retained_fraction(&c, &[0, 2]).unwrap();
    assert!(fraction > 0.0 && fraction < 1.0);
    // Nothing to explain: any selection retains everything.
    assert_eq!(retained_fraction(&Matrix::zeros(3, 3), &[1]).unwrap(), 1.0);
    assert!(explained_variance(&c, &[4]).is_err());
    assert!(explained_variance(&Matrix::zeros(2, 3), &[0]).is_err());
}
