mod common;

use common::{config, random_psd, Planted};
use proptest::prelude::*;
use sq_linalg::Matrix;
use sq_select::{keep_count, Budget, Error, Tau};

/// `Budget::Tau(t)` for a valid `t`.
fn tau(t: f64) -> Budget {
    Budget::Tau(Tau::new(t).unwrap())
}

proptest! {
    #![proptest_config(config(32))]

    /// `k(1)` is the rank: the number of independent units planted among
    /// affine combinations and dead units.
    #[test]
    fn tau_one_finds_the_planted_rank(
        rank in 1usize..10,
        combinations in 0usize..12,
        dead in 0usize..3,
        seed: u64,
    ) {
        let c = Planted::new(seed, rank, combinations, dead).covariance();
        prop_assert_eq!(keep_count(&c, &tau(1.0)).unwrap(), rank);
        prop_assert_eq!(keep_count(&c, &tau(0.999_999)).unwrap() <= rank, true);
    }

    #[test]
    fn every_budget_keeps_between_one_and_n(
        n in 1usize..20,
        r in 1usize..20,
        t in 1e-6f64..=1.0,
        fraction in 1e-6f64..=1.0,
        width in 1usize..40,
        seed: u64,
    ) {
        let c = random_psd(seed, n, r);
        for budget in [tau(t), Budget::Fraction(fraction), Budget::Width(width)] {
            let k = keep_count(&c, &budget).unwrap();
            prop_assert!((1..=n).contains(&k), "{} gave {}", budget, k);
        }
        // k(tau) is monotone in tau.
        let k = |t| keep_count(&c, &tau(t)).unwrap();
        prop_assert!(k(t / 2.0) <= k(t));
    }
}

#[test]
fn tau_counts_principal_components() {
    // Eigenvalues 4, 3, 2, 1 (diagonal): cumulative 0.4, 0.7, 0.9, 1.0.
    let mut c = Matrix::zeros(4, 4);
    for (i, l) in [3.0, 1.0, 4.0, 2.0].into_iter().enumerate() {
        c[(i, i)] = l;
    }
    let k = |t| keep_count(&c, &tau(t)).unwrap();
    assert_eq!([k(0.1), k(0.4), k(0.41), k(0.7), k(0.9), k(0.95), k(1.0)], [1, 1, 2, 2, 3, 4, 4]);
}

#[test]
fn fraction_and_width_edge_cases() {
    let c = Matrix::identity(100);
    let k = |b| keep_count(&c, &b).unwrap();
    assert_eq!(k(Budget::Fraction(0.5)), 50);
    assert_eq!(k(Budget::Fraction(0.501)), 51);
    // 0.07 * 100 = 7.000000000000001 in floating point: still 7.
    assert_eq!(k(Budget::Fraction(0.07)), 7);
    assert_eq!(k(Budget::Fraction(1e-9)), 1);
    assert_eq!(k(Budget::Fraction(1.0)), 100);
    assert_eq!(k(Budget::Width(64)), 64);
    assert_eq!(k(Budget::Width(1000)), 100);
    // No variance at all: still one unit.
    assert_eq!(keep_count(&Matrix::zeros(5, 5), &tau(0.99)).unwrap(), 1);
}

#[test]
fn invalid_budgets_and_layers_are_errors() {
    let c = Matrix::identity(3);
    for budget in [Budget::Fraction(-0.1), Budget::Fraction(1.01), Budget::Width(0)] {
        assert!(matches!(keep_count(&c, &budget), Err(Error::InvalidBudget(_))), "{budget}");
    }
    for t in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(Tau::new(t), Err(Error::InvalidTau(_))), "{t}");
    }
    assert!(matches!(keep_count(&Matrix::zeros(0, 0), &Budget::Width(3)), Err(Error::NoUnits)));
    assert!(keep_count(&Matrix::zeros(2, 3), &Budget::Width(1)).is_err());
}

#[test]
fn budgets_parse_and_print() {
    for (text, budget) in [
        ("tau:0.99", tau(0.99)),
        ("fraction:0.25", Budget::Fraction(0.25)),
        ("width:64", Budget::Width(64)),
        ("tau:1", tau(1.0)),
    ] {
        assert_eq!(text.parse::<Budget>().unwrap(), budget);
        assert_eq!(budget.to_string(), text);
        assert_eq!(serde_json::to_string(&budget).unwrap(), format!("\"{text}\""));
    }
    for bad in ["0.99", "tau", "width:-1", "size:3"] {
        assert!(matches!(bad.parse::<Budget>(), Err(Error::ParseBudget(_))), "{bad}");
    }
    for bad in ["tau:", "tau:x"] {
        assert!(matches!(bad.parse::<Budget>(), Err(Error::ParseTau(_))), "{bad}");
    }
    assert!(matches!("tau:1.5".parse::<Budget>(), Err(Error::InvalidTau(_))));
    for out_of_range in ["fraction:0", "width:0"] {
        assert!(matches!(out_of_range.parse::<Budget>(), Err(Error::InvalidBudget(_))), "{out_of_range}");
    }
}
