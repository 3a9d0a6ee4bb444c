mod common;

use common::{config, naive_forward, random_psd, trace, v, Planted};
use proptest::prelude::*;
use sq_select::{select_units, Strategy};

fn qr(c: &sq_linalg::Matrix, k: usize) -> Vec<usize> {
    select_units(c, k, &Strategy::Qr, None).unwrap()
}

fn sorted(mut units: Vec<usize>) -> Vec<usize> {
    units.sort_unstable();
    units
}

proptest! {
    #![proptest_config(config(96))]

    /// On generic data (no near-ties) the picks are exactly those of the
    /// textbook greedy rule.
    #[test]
    fn qr_is_greedy_forward_selection_on_residual_variance(
        n in 1usize..=12,
        k in 1usize..=12,
        seed: u64,
    ) {
        let k = k.min(n);
        let c = random_psd(seed, n, n + 4);
        prop_assert_eq!(qr(&c, k), sorted(naive_forward(&c, k)));
    }

    /// Past the rank the greedy choice has ties, but not in value.
    #[test]
    fn qr_explains_as_much_as_naive_greedy_when_rank_deficient(
        n in 2usize..=12,
        r in 1usize..6,
        k in 1usize..=12,
        seed: u64,
    ) {
        let k = k.min(n);
        let c = random_psd(seed, n, r.min(n - 1));
        let ours = v(&c, &qr(&c, k));
        let naive = v(&c, &naive_forward(&c, k));
        prop_assert!((ours - naive).abs() <= 1e-8 * trace(&c), "{} vs {}", ours, naive);
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
        let kept = qr(&c, rank);
        prop_assert_eq!(kept.len(), rank);
        prop_assert!((v(&c, &kept) - trace(&c)).abs() <= 1e-8 * trace(&c));
        for d in &planted.dead {
            prop_assert!(!kept.contains(d));
        }
        // Beyond the rank, units without variance are kept last.
        let flat: Vec<usize> = (0..planted.n).filter(|&i| c[(i, i)] <= 1e-12 * trace(&c)).collect();
        let kept = qr(&c, planted.n - flat.len());
        prop_assert!(flat.iter().all(|d| !kept.contains(d)));
    }
}
