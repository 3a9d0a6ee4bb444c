//! Test data with known structure, and deliberately naive references.
//!
//! The references (greedy selections that recompute the objective from
//! scratch for every candidate, projections by Gram-Schmidt on the samples)
//! share no code with the crate's algorithms, so agreement is evidence of
//! correctness rather than of consistency.
#![allow(dead_code)] // each test binary uses a different subset

use proptest::test_runner::{Config, RngSeed};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sq_linalg::{solve_spd, Matrix, Moments};
use sq_select::explained_variance;

/// Fixed-seed proptest configuration: reproducible, no regression files.
pub fn config(cases: u32) -> Config {
    Config { cases, rng_seed: RngSeed::Fixed(0x5e1e_c7ed), failure_persistence: None, ..Config::default() }
}

/// `trace(C)`.
pub fn trace(c: &Matrix) -> f64 {
    (0..c.rows()).map(|i| c[(i, i)]).sum()
}

/// Covariance of `samples x n` row-major data, through `sq-linalg`.
pub fn covariance_of(data: &[f32], n: usize) -> Matrix {
    let mut moments = Moments::new(n);
    moments.update_f32(data, data.len() / n).unwrap();
    moments.covariance().unwrap()
}

/// Samples with planted linear structure: `rank` independent columns, the
/// others exact affine combinations of them (integer coefficients plus a
/// constant) or dead (all zero), in shuffled order. Values are multiples of
/// 1/4 in a small range, so the data is exact in `f32` and every planted
/// dependency survives up to the round-off of the covariance itself.
pub struct Planted {
    pub n: usize,
    pub rank: usize,
    pub data: Vec<f32>,
    /// The dead (all-zero) columns.
    pub dead: Vec<usize>,
}

impl Planted {
    pub fn new(seed: u64, rank: usize, combinations: usize, dead: usize) -> Planted {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rank + combinations + dead;
        let samples = 3 * rank + 8;
        // Column roles before shuffling: 0..rank independent, then
        // combinations, then dead; `place[c]` is where column `c` goes.
        let mut place: Vec<usize> = (0..n).collect();
        place.shuffle(&mut rng);
        let mut data = vec![0.0f32; samples * n];
        let base: Vec<Vec<f32>> =
            (0..rank).map(|_| (0..samples).map(|_| rng.random_range(-12..=12) as f32 / 4.0).collect()).collect();
        for (c, column) in base.iter().enumerate() {
            for (s, &x) in column.iter().enumerate() {
                data[s * n + place[c]] = x;
            }
        }
        for c in rank..rank + combinations {
            let coefficients: Vec<f32> = (0..rank).map(|_| rng.random_range(-2..=2) as f32).collect();
            let offset = rng.random_range(-8..=8) as f32 / 4.0;
            for s in 0..samples {
                data[s * n + place[c]] =
                    offset + base.iter().zip(&coefficients).map(|(column, a)| a * column[s]).sum::<f32>();
            }
        }
        Planted { n, rank, data, dead: place[rank + combinations..].to_vec() }
    }

    pub fn covariance(&self) -> Matrix {
        covariance_of(&self.data, self.n)
    }
}

/// Random symmetric PSD matrix `B B^T / r` with `B` of size `n x r`: generic
/// (no ties, well conditioned) when `r > n`, of rank `r` when `r < n`.
pub fn random_psd(seed: u64, n: usize, r: usize) -> Matrix {
    let mut rng = StdRng::seed_from_u64(seed);
    let b: Vec<f64> = (0..n * r).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut a = Matrix::zeros(n, n);
    for i in 0..n {
        for j in 0..n {
            a[(i, j)] = (0..r).map(|t| b[i * r + t] * b[j * r + t]).sum::<f64>() / r as f64;
        }
    }
    a
}

/// `V(S)` for a unit set given in any form.
pub fn v(c: &Matrix, set: &[usize]) -> f64 {
    explained_variance(c, set).unwrap()
}

/// The variance of unit `i` left unexplained by the units in `set`,
/// `C_ii - C[i,S] C[S,S]^-1 C[S,i]`, recomputed from scratch.
pub fn residual_variance(c: &Matrix, set: &[usize], i: usize) -> f64 {
    if set.is_empty() {
        return c[(i, i)];
    }
    let c_si = c.select(set, &[i]).unwrap();
    let x = solve_spd(&c.select(set, set).unwrap(), &c_si).unwrap().x;
    c[(i, i)] - (0..set.len()).map(|s| c_si[(s, 0)] * x[(s, 0)]).sum::<f64>()
}

/// Naive greedy forward selection of `k` units: at each step, the unit with
/// the largest residual variance given the units already picked (the first
/// on exact ties), recomputed from scratch for every candidate. Returns the
/// picks in order.
pub fn naive_forward(c: &Matrix, k: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::new();
    for _ in 0..k {
        let best = (0..c.rows())
            .filter(|i| !picked.contains(i))
            .map(|i| (i, residual_variance(c, &picked, i)))
            .fold(None, |best: Option<(usize, f64)>, (i, x)| match best {
                Some((_, b)) if b >= x => best,
                _ => Some((i, x)),
            })
            .unwrap();
        picked.push(best.0);
    }
    picked
}

/// The loss of removing each unit of `set`: `V(S) - V(S \ {i})`, recomputed
/// from scratch.
pub fn naive_losses(c: &Matrix, set: &[usize]) -> Vec<(usize, f64)> {
    let total = v(c, set);
    set.iter()
        .map(|&i| {
            let without: Vec<usize> = set.iter().copied().filter(|&j| j != i).collect();
            (i, total - v(c, &without))
        })
        .collect()
}

/// Naive greedy backward elimination: at each step, remove the unit of least
/// recomputed loss (the first on exact ties). Returns the removal order.
pub fn naive_backward(c: &Matrix) -> Vec<usize> {
    let mut set: Vec<usize> = (0..c.rows()).collect();
    let mut order = Vec::new();
    while !set.is_empty() {
        let (unit, _) = naive_losses(c, &set)
            .into_iter()
            .fold(None, |best: Option<(usize, f64)>, (i, x)| match best {
                Some((_, b)) if b <= x => best,
                _ => Some((i, x)),
            })
            .unwrap();
        set.retain(|&j| j != unit);
        order.push(unit);
    }
    order
}
