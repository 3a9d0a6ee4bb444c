mod common;

use common::{covariance_of, random_psd, v};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_linalg::Matrix;
use sq_select::{select_units, Error, Strategy};

/// Samples of `clusters` latent factors, each copied (scaled, plus 5% noise)
/// into 1 to 8 units, in interleaved order: strong planted redundancy. A
/// good selection of `clusters` units takes one per cluster and explains
/// nearly everything; missing a cluster loses all of its variance.
fn clustered(seed: u64, clusters: usize) -> Matrix {
    let mut rng = StdRng::seed_from_u64(seed);
    let members: Vec<usize> = (0..clusters).flat_map(|c| vec![c; rng.random_range(1..=8)]).collect();
    let scales: Vec<f32> = members.iter().map(|_| rng.random_range(0.5..2.0)).collect();
    let n = members.len();
    let samples = 200;
    let mut data = Vec::with_capacity(samples * n);
    for _ in 0..samples {
        let factors: Vec<f32> = (0..clusters).map(|_| rng.random_range(-1.0..1.0)).collect();
        for (&c, &s) in members.iter().zip(&scales) {
            data.push(s * factors[c] + 0.05 * rng.random_range(-1.0..1.0));
        }
    }
    covariance_of(&data, n)
}

#[test]
fn variance_aware_strategies_beat_the_baselines_on_redundant_layers() {
    let (mut greedy_total, mut baseline_total) = (0.0, 0.0);
    for seed in 0..12 {
        let clusters = 4 + seed as usize % 5;
        let c = clustered(seed, clusters);
        let n = c.rows();
        let mut rng = StdRng::seed_from_u64(1000 + seed);
        let norms: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
        let explained = |s: Strategy| v(&c, &select_units(&c, clusters, &s, Some(&norms)).unwrap());
        let (eliminate, qr) = (explained(Strategy::Eliminate), explained(Strategy::Qr));
        let baselines = [explained(Strategy::L1), explained(Strategy::Random { seed })];
        for baseline in baselines {
            // Never worse beyond noise level, whatever the draw...
            let slack = 1e-2 * common::trace(&c);
            assert!(eliminate >= baseline - slack, "seed {seed}: eliminate {eliminate} < {baseline}");
            assert!(qr >= baseline - slack, "seed {seed}: qr {qr} < {baseline}");
            baseline_total += baseline / common::trace(&c);
        }
        greedy_total += (eliminate + qr) / common::trace(&c);
    }
    // ...and clearly better on average (one cluster in eight is missed).
    assert!(greedy_total / 24.0 > baseline_total / 24.0 + 0.05);
    assert!(greedy_total / 24.0 > 0.99);
}

#[test]
fn l1_keeps_the_largest_norms_and_breaks_ties_by_lower_index() {
    let c = random_psd(1, 6, 8);
    let norms = [3.0, 1.0, 3.0, 5.0, 1.0, 1.0];
    let l1 = |k| select_units(&c, k, &Strategy::L1, Some(&norms)).unwrap();
    assert_eq!(l1(1), vec![3]);
    assert_eq!(l1(2), vec![0, 3]);
    assert_eq!(l1(3), vec![0, 2, 3]);
    assert_eq!(l1(4), vec![0, 1, 2, 3]);
}

#[test]
fn l1_needs_one_finite_norm_per_unit() {
    let c = random_psd(1, 3, 5);
    assert!(matches!(select_units(&c, 1, &Strategy::L1, None), Err(Error::MissingNorms)));
    assert!(matches!(
        select_units(&c, 1, &Strategy::L1, Some(&[1.0, 2.0])),
        Err(Error::NormsLength { expected: 3, found: 2 })
    ));
    assert!(matches!(
        select_units(&c, 1, &Strategy::L1, Some(&[1.0, f64::NAN, 2.0])),
        Err(Error::NonFiniteNorm { unit: 1 })
    ));
    // Other strategies ignore the norms.
    assert!(select_units(&c, 1, &Strategy::Qr, Some(&[1.0])).is_ok());
}

#[test]
fn random_is_a_seeded_uniform_subset() {
    let c = Matrix::identity(20);
    let random = |k, seed| select_units(&c, k, &Strategy::Random { seed }, None).unwrap();
    let a = random(7, 3);
    assert_eq!(a.len(), 7);
    assert!(a.windows(2).all(|w| w[0] < w[1]) && a[6] < 20);
    assert_eq!(a, random(7, 3));
    assert_ne!(a, random(7, 4));
    assert_eq!(random(20, 9), (0..20).collect::<Vec<_>>());
    // Every unit is drawn about equally often.
    let mut counts = [0usize; 20];
    for seed in 0..2000 {
        for i in random(5, seed) {
            counts[i] += 1;
        }
    }
    assert!(counts.iter().all(|&x| (400..600).contains(&x)), "{counts:?}");
}

#[test]
fn every_strategy_returns_k_sorted_units_or_rejects_k() {
    let c = random_psd(2, 9, 4);
    let norms = [1.0; 9];
    let strategies = [Strategy::Eliminate, Strategy::Qr, Strategy::L1, Strategy::Random { seed: 5 }];
    for strategy in strategies {
        for k in 1..=9 {
            let kept = select_units(&c, k, &strategy, Some(&norms)).unwrap();
            assert_eq!(kept.len(), k, "{strategy}");
            assert!(kept.windows(2).all(|w| w[0] < w[1]) && kept[k - 1] < 9, "{strategy}");
        }
        for k in [0, 10] {
            assert!(matches!(select_units(&c, k, &strategy, Some(&norms)), Err(Error::KeepOutOfRange { n: 9, .. })));
        }
    }
    assert!(select_units(&Matrix::zeros(0, 0), 1, &Strategy::Qr, None).is_err());
    assert!(select_units(&Matrix::zeros(2, 3), 1, &Strategy::Qr, None).is_err());
}

#[test]
fn strategies_parse_and_print() {
    for (text, strategy) in [
        ("eliminate", Strategy::Eliminate),
        ("qr", Strategy::Qr),
        ("l1", Strategy::L1),
        ("random:7", Strategy::Random { seed: 7 }),
    ] {
        assert_eq!(text.parse::<Strategy>().unwrap(), strategy);
        assert_eq!(strategy.to_string(), text);
        assert_eq!(serde_json::to_string(&strategy).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Strategy>(&format!("\"{text}\"")).unwrap(), strategy);
    }
    assert_eq!("random".parse::<Strategy>().unwrap(), Strategy::Random { seed: 0 });
    assert_eq!(Strategy::default(), Strategy::Eliminate);
    for bad in ["", "Eliminate", "random:", "random:-1", "random:x", "pca"] {
        assert!(matches!(bad.parse::<Strategy>(), Err(Error::ParseStrategy(_))), "{bad}");
    }
    assert!(serde_json::from_str::<Strategy>("\"qr2\"").is_err());
}
