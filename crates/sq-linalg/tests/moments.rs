mod common;

use common::{config, generic_samples, max_abs, max_abs_diff, naive_covariance, naive_moments, Planted};
use proptest::prelude::*;
use sq_linalg::{Error, Matrix, Moments};

fn moments_of(data: &[f32], n: usize) -> Moments {
    let mut m = Moments::new(n);
    m.update_f32(data, data.len() / n.max(1)).unwrap();
    m
}

/// Asserts equality of two moments up to a relative round-off tolerance.
fn assert_close(a: &Moments, b: &Moments, rel: f64) {
    assert_eq!(a.count(), b.count());
    assert_eq!(a.dim(), b.dim());
    let (ga, gb) = (a.gram(), b.gram());
    let scale = max_abs(&ga).max(1.0);
    assert!(max_abs_diff(&ga, &gb) <= rel * scale, "gram differs");
    for (x, y) in a.sum().iter().zip(b.sum()) {
        assert!((x - y).abs() <= rel * scale, "sum differs: {x} vs {y}");
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn update_matches_per_sample_loops(n in 1usize..40, m in 0usize..300, seed: u64) {
        let data = generic_samples(seed, m, n);
        let got = moments_of(&data, n);
        let (count, sum, gram) = naive_moments(&data, n);
        let want = Moments::from_parts(count, sum, gram).unwrap();
        assert_close(&got, &want, 1e-13);
        // The assembled Gram matrix is exactly symmetric.
        let g = got.gram();
        prop_assert_eq!(g.clone(), g.transpose());
    }

    #[test]
    fn batches_and_merges_equal_one_pass(
        n in 1usize..40,
        m in 0usize..300,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        seed: u64,
    ) {
        let data = generic_samples(seed, m, n);
        let whole = moments_of(&data, n);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(m + 1)).collect();
        cuts.push(0);
        cuts.push(m);
        cuts.sort_unstable();

        // Several batches into one accumulator.
        let mut batched = Moments::new(n);
        // One accumulator per shard, merged at the end.
        let mut merged = Moments::new(n);
        for w in cuts.windows(2) {
            let shard = &data[w[0] * n..w[1] * n];
            batched.update_f32(shard, w[1] - w[0]).unwrap();
            merged.merge(&moments_of(shard, n)).unwrap();
        }
        assert_close(&batched, &whole, 1e-13);
        assert_close(&merged, &whole, 1e-13);
    }

    #[test]
    fn covariance_matches_two_pass_formula(n in 1usize..40, m in 1usize..300, seed: u64) {
        let data = generic_samples(seed, m, n);
        let stats = moments_of(&data, n);
        let c = stats.covariance().unwrap();
        let want = naive_covariance(&data, n);
        // One-pass moments lose accuracy relative to the raw second moment.
        let scale = max_abs(&stats.gram()) / m as f64;
        prop_assert!(max_abs_diff(&c, &want) <= 1e-12 * scale.max(1.0));
        prop_assert_eq!(c.clone(), c.transpose());
        let mean = stats.mean().unwrap();
        for (i, mu) in mean.iter().enumerate() {
            let naive: f64 = (0..m).map(|s| f64::from(data[s * n + i])).sum::<f64>() / m as f64;
            prop_assert!((mu - naive).abs() <= 1e-12 * (1.0 + naive.abs()));
        }
    }

    #[test]
    fn correlation_is_a_valid_correlation_matrix(n in 1usize..30, seed: u64) {
        let planted = Planted::new(seed, n);
        let stats = moments_of(&planted.data, n);
        let c = stats.covariance().unwrap();
        let r = stats.correlation().unwrap();
        prop_assert_eq!(r.clone(), r.transpose());
        for i in 0..n {
            prop_assert_eq!(r[(i, i)], 1.0);
            for j in 0..n {
                prop_assert!(r[(i, j)].abs() <= 1.0);
                if i == j {
                    continue;
                }
                if c[(i, i)] == 0.0 || c[(j, j)] == 0.0 {
                    // Constant (e.g. dead) units are uncorrelated with everything.
                    prop_assert_eq!(r[(i, j)], 0.0);
                } else {
                    let want = c[(i, j)] / (c[(i, i)] * c[(j, j)]).sqrt();
                    prop_assert!((r[(i, j)] - want).abs() <= 1e-12);
                }
            }
        }
    }
}

#[test]
fn constant_columns_have_exactly_zero_variance() {
    let planted = Planted::new(7, 12);
    let c = moments_of(&planted.data, 12).covariance().unwrap();
    for (j, kind) in planted.columns.iter().enumerate() {
        if *kind == common::Column::Constant {
            assert_eq!(c[(j, j)], 0.0);
        } else {
            assert!(c[(j, j)] > 0.0);
        }
    }
}

#[test]
fn batch_larger_than_one_chunk() {
    // 3 x 400_000 values: more than one 2^20-value conversion chunk.
    let (n, m) = (3, 400_000);
    let data = generic_samples(11, m, n);
    let got = moments_of(&data, n);
    let (count, sum, gram) = naive_moments(&data, n);
    assert_close(&got, &Moments::from_parts(count, sum, gram).unwrap(), 1e-12);
}

#[test]
fn from_parts_round_trips() {
    let data = generic_samples(3, 50, 6);
    let a = moments_of(&data, 6);
    let b = Moments::from_parts(a.count(), a.sum().to_vec(), a.gram()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn empty_and_zero_dimensional() {
    let empty = Moments::new(4);
    assert_eq!(empty.count(), 0);
    assert_eq!(empty.mean(), Err(Error::NoSamples));
    assert_eq!(empty.covariance(), Err(Error::NoSamples));
    assert_eq!(empty.correlation(), Err(Error::NoSamples));

    let mut none = Moments::new(0);
    none.update_f32(&[], 5).unwrap();
    assert_eq!(none.count(), 5);
    assert_eq!(none.mean().unwrap(), Vec::<f64>::new());
    assert_eq!(none.covariance().unwrap(), Matrix::zeros(0, 0));

    let mut some = Moments::new(2);
    some.update_f32(&[], 0).unwrap();
    assert_eq!(some, Moments::new(2));
}

#[test]
fn bad_inputs_are_errors_and_change_nothing() {
    let mut m = moments_of(&[1.0, 2.0, 3.0, 4.0], 2);
    let before = m.clone();
    assert!(matches!(m.update_f32(&[1.0, 2.0, 3.0], 2), Err(Error::DimensionMismatch { expected: 4, found: 3, .. })));
    assert_eq!(m.update_f32(&[1.0, f32::NAN], 1), Err(Error::NonFinite));
    assert_eq!(m.update_f32(&[f32::INFINITY, 0.0, f32::NEG_INFINITY, 0.0], 2), Err(Error::NonFinite));
    assert!(matches!(m.merge(&Moments::new(3)), Err(Error::DimensionMismatch { expected: 2, found: 3, .. })));
    assert_eq!(m, before);

    assert!(matches!(
        Moments::from_parts(1, vec![0.0; 3], Matrix::zeros(2, 2)),
        Err(Error::DimensionMismatch { expected: 2, found: 3, .. })
    ));
    assert_eq!(Moments::from_parts(1, vec![0.0; 2], Matrix::zeros(2, 3)), Err(Error::NotSquare { rows: 2, cols: 3 }));
}

/// Runs `f` on a pool of four threads, so that a long batch is split into
/// several runs of rows whatever the machine.
fn on_four_threads<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap().install(f)
}

#[test]
fn a_batch_split_across_threads_matches_per_sample_loops() {
    // Four runs of rows each, the last one shorter where 4 does not divide the rows.
    for (rows, n) in [(3000, 7), (1030, 1), (2047, 40)] {
        let data = generic_samples(11, rows, n);
        let got = on_four_threads(|| moments_of(&data, n));
        let (count, sum, gram) = naive_moments(&data, n);
        assert_close(&got, &Moments::from_parts(count, sum, gram).unwrap(), 1e-13);
    }
}

#[test]
fn a_bad_value_in_the_last_rows_of_a_long_batch_changes_nothing() {
    // Long enough to be split across threads: the NaN sits in the last run.
    let (rows, n) = (3000, 3);
    let mut data = generic_samples(7, rows, n);
    let mut m = moments_of(&data, n);
    let before = m.clone();
    data[(rows - 1) * n + 1] = f32::NAN;
    assert_eq!(on_four_threads(|| m.update_f32(&data, rows)), Err(Error::NonFinite));
    assert_eq!(m, before);
}

#[test]
fn known_small_example() {
    // Samples (1, 2), (3, 6): second unit is twice the first.
    let m = moments_of(&[1.0, 2.0, 3.0, 6.0], 2);
    assert_eq!(m.count(), 2);
    assert_eq!(m.sum(), &[4.0, 8.0]);
    assert_eq!(m.gram().as_slice(), &[10.0, 20.0, 20.0, 40.0]);
    assert_eq!(m.mean().unwrap(), vec![2.0, 4.0]);
    assert_eq!(m.covariance().unwrap().as_slice(), &[1.0, 2.0, 2.0, 4.0]);
    assert_eq!(m.correlation().unwrap().as_slice(), &[1.0, 1.0, 1.0, 1.0]);
}
