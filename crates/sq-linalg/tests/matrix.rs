mod common;

use common::{config, max_abs_diff, naive_matmul, random_matrix};
use proptest::prelude::*;
use sq_linalg::{Error, Matrix};

#[test]
fn constructors_and_accessors() {
    let m = Matrix::from_rows(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    assert_eq!((m.rows(), m.cols()), (2, 3));
    assert_eq!(m.get(1, 2), Some(6.0));
    assert_eq!(m.get(2, 0), None);
    assert_eq!(m.get(0, 3), None);
    assert_eq!(m[(0, 1)], 2.0);
    assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
    assert_eq!(m.as_slice(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(Matrix::zeros(2, 2).as_slice(), &[0.0; 4]);
    assert_eq!(Matrix::identity(2).as_slice(), &[1.0, 0.0, 0.0, 1.0]);
    let t = m.transpose();
    assert_eq!(t.as_slice(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(t.clone().into_vec(), t.as_slice());
}

#[test]
fn bad_shapes_are_errors() {
    assert!(matches!(
        Matrix::from_rows(2, 3, vec![0.0; 5]),
        Err(Error::DimensionMismatch { expected: 6, found: 5, .. })
    ));
    assert!(Matrix::from_rows(usize::MAX, 2, vec![]).is_err());
    let a = Matrix::zeros(2, 3);
    assert!(matches!(a.matmul(&Matrix::zeros(2, 3)), Err(Error::DimensionMismatch { expected: 3, found: 2, .. })));
    let mut b = Matrix::zeros(2, 3);
    for (f, g, expected, found) in [((3, 1), (3, 1), 2, 3), ((2, 1), (2, 1), 3, 2), ((2, 1), (3, 2), 1, 2)] {
        let (f, g) = (Matrix::zeros(f.0, f.1), Matrix::zeros(g.0, g.1));
        let err = b.sub_matmul_transpose(&f, &g);
        assert!(
            matches!(err, Err(Error::DimensionMismatch { expected: e, found: x, .. }) if (e, x) == (expected, found)),
            "{err:?}"
        );
    }
    assert_eq!(a.select(&[0, 2], &[0]), Err(Error::IndexOutOfRange { index: 2, len: 2 }));
    assert_eq!(a.select(&[0], &[3]), Err(Error::IndexOutOfRange { index: 3, len: 3 }));
}

#[test]
#[should_panic(expected = "out of range")]
fn index_out_of_bounds_panics_like_a_slice() {
    let _ = Matrix::zeros(2, 2)[(0, 2)];
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn matmul_matches_triple_loop(m in 0usize..24, k in 0usize..24, n in 0usize..24, seed: u64) {
        let a = random_matrix(seed, m, k);
        let b = random_matrix(seed ^ 1, k, n);
        let c = a.matmul(&b).unwrap();
        prop_assert!(max_abs_diff(&c, &naive_matmul(&a, &b)) <= 1e-13 * (k as f64 + 1.0));
    }

    #[test]
    fn sub_matmul_transpose_matches_triple_loop(m in 0usize..24, r in 0usize..24, n in 0usize..24, seed: u64) {
        let mut c = random_matrix(seed, m, n);
        let a = random_matrix(seed ^ 1, m, r);
        let b = random_matrix(seed ^ 2, n, r);
        let ab = naive_matmul(&a, &b.transpose());
        let difference = c.as_slice().iter().zip(ab.as_slice()).map(|(x, y)| x - y).collect();
        let expected = Matrix::from_rows(m, n, difference).unwrap();
        c.sub_matmul_transpose(&a, &b).unwrap();
        prop_assert!(max_abs_diff(&c, &expected) <= 1e-13 * (r as f64 + 1.0));
    }

    #[test]
    fn transpose_is_an_involution(m in 0usize..24, n in 0usize..24, seed: u64) {
        let a = random_matrix(seed, m, n);
        let t = a.transpose();
        prop_assert_eq!((t.rows(), t.cols()), (n, m));
        for i in 0..m {
            for j in 0..n {
                prop_assert_eq!(a[(i, j)], t[(j, i)]);
            }
        }
        prop_assert_eq!(t.transpose(), a);
    }

    #[test]
    fn select_picks_entries_in_order(
        m in 1usize..16,
        n in 1usize..16,
        seed: u64,
        rows in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        cols in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let a = random_matrix(seed, m, n);
        let rows: Vec<usize> = rows.iter().map(|i| i.index(m)).collect();
        let cols: Vec<usize> = cols.iter().map(|i| i.index(n)).collect();
        let s = a.select(&rows, &cols).unwrap();
        prop_assert_eq!((s.rows(), s.cols()), (rows.len(), cols.len()));
        for (si, &i) in rows.iter().enumerate() {
            for (sj, &j) in cols.iter().enumerate() {
                prop_assert_eq!(s[(si, sj)], a[(i, j)]);
            }
        }
    }
}
