//! Test data generators and deliberately naive reference implementations.
//!
//! The references use textbook algorithms (per-sample loops, two-pass
//! centring, cyclic Jacobi, Gaussian elimination) that share no code with the
//! crate, so agreement is evidence of correctness rather than of consistency.
#![allow(dead_code)] // each test binary uses a different subset

use proptest::test_runner::{Config, RngSeed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_linalg::Matrix;

/// Fixed-seed proptest configuration: reproducible, no regression files.
pub fn config(cases: u32) -> Config {
    Config { cases, rng_seed: RngSeed::Fixed(0x5eed_5eed), failure_persistence: None, ..Config::default() }
}

/// `m x n` row-major samples: uniform values with per-column offsets and
/// scales, in `f32` like real activations.
pub fn generic_samples(seed: u64, m: usize, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let offset: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    let scale: Vec<f32> = (0..n).map(|_| rng.random_range(0.1..3.0)).collect();
    (0..m * n).map(|i| offset[i % n] + scale[i % n] * rng.random_range(-1.0f32..1.0)).collect()
}

/// What each column of planted data is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Column {
    /// Independent random values.
    Independent,
    /// An exact integer combination of the independent columns.
    Combination,
    /// A constant (nonzero or zero, i.e. a dead unit).
    Constant,
}

/// Samples whose covariance has a known rank: `m x n` data where every column
/// is independent, an exact linear combination of the independent ones, or
/// constant. Values are multiples of 1/4 in a small range, so every sum and
/// product in `f32` and `f64` is exact and the planted dependencies survive
/// exactly. Returns the data and the kind of each column.
pub struct Planted {
    pub m: usize,
    pub n: usize,
    pub data: Vec<f32>,
    pub columns: Vec<Column>,
}

impl Planted {
    pub fn new(seed: u64, n: usize) -> Planted {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut columns: Vec<Column> = (0..n)
            .map(|_| match rng.random_range(0..10) {
                0..=4 => Column::Independent,
                5..=7 => Column::Combination,
                _ => Column::Constant,
            })
            .collect();
        // At least one independent column, so combinations have a base.
        if !columns.contains(&Column::Independent) {
            columns[0] = Column::Independent;
        }
        let base: Vec<usize> = (0..n).filter(|&j| columns[j] == Column::Independent).collect();
        let r = base.len();
        let m = 3 * r + 8;
        let mut data = vec![0.0f32; m * n];
        for &j in &base {
            let offset = rng.random_range(-8..=8) as f32 / 4.0;
            for i in 0..m {
                data[i * n + j] = offset + rng.random_range(-12..=12) as f32 / 4.0;
            }
        }
        for j in 0..n {
            match columns[j] {
                Column::Independent => {}
                Column::Constant => {
                    let c = rng.random_range(-4..=4) as f32 / 4.0;
                    for i in 0..m {
                        data[i * n + j] = c;
                    }
                }
                Column::Combination => {
                    let coeffs: Vec<f32> = base.iter().map(|_| rng.random_range(-2..=2) as f32).collect();
                    for i in 0..m {
                        data[i * n + j] = base.iter().zip(&coeffs).map(|(&b, c)| c * data[i * n + b]).sum();
                    }
                }
            }
        }
        Planted { m, n, data, columns }
    }

    /// Number of independent columns: the rank of the covariance.
    pub fn rank(&self) -> usize {
        self.columns.iter().filter(|&&c| c == Column::Independent).count()
    }
}

/// Per-sample loops: `(count, sum, gram)` in `f64`.
pub fn naive_moments(data: &[f32], n: usize) -> (u64, Vec<f64>, Matrix) {
    let m = data.len().checked_div(n).unwrap_or(0);
    let mut sum = vec![0.0; n];
    let mut gram = Matrix::zeros(n, n);
    for s in 0..m {
        let x = &data[s * n..(s + 1) * n];
        for i in 0..n {
            sum[i] += f64::from(x[i]);
            for j in 0..n {
                gram[(i, j)] += f64::from(x[i]) * f64::from(x[j]);
            }
        }
    }
    (m as u64, sum, gram)
}

/// Two-pass population covariance (centre first, then multiply): the
/// numerically preferred formula, unlike the crate's one-pass moments.
pub fn naive_covariance(data: &[f32], n: usize) -> Matrix {
    let m = data.len() / n;
    let mut mean = vec![0.0; n];
    for s in 0..m {
        for i in 0..n {
            mean[i] += f64::from(data[s * n + i]) / m as f64;
        }
    }
    let mut c = Matrix::zeros(n, n);
    for s in 0..m {
        for i in 0..n {
            for j in 0..n {
                let di = f64::from(data[s * n + i]) - mean[i];
                let dj = f64::from(data[s * n + j]) - mean[j];
                c[(i, j)] += di * dj / m as f64;
            }
        }
    }
    c
}

/// Centred data as an `f64` matrix (for QR-based selection).
pub fn centred(data: &[f32], n: usize) -> Matrix {
    let m = data.len() / n;
    let mut mean = vec![0.0; n];
    for s in 0..m {
        for i in 0..n {
            mean[i] += f64::from(data[s * n + i]);
        }
    }
    let mut x = Matrix::zeros(m, n);
    for s in 0..m {
        for i in 0..n {
            x[(s, i)] = f64::from(data[s * n + i]) - mean[i] / m as f64;
        }
    }
    x
}

/// Random symmetric PSD matrix `B B^T / k` of rank `min(rank, n)`.
pub fn random_psd(seed: u64, n: usize, rank: usize) -> Matrix {
    let mut rng = StdRng::seed_from_u64(seed);
    let b: Vec<f64> = (0..n * rank).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut a = Matrix::zeros(n, n);
    for i in 0..n {
        for j in 0..n {
            a[(i, j)] = (0..rank).map(|t| b[i * rank + t] * b[j * rank + t]).sum::<f64>() / rank.max(1) as f64;
        }
    }
    a
}

/// Random dense matrix with entries in `[-1, 1)`.
pub fn random_matrix(seed: u64, rows: usize, cols: usize) -> Matrix {
    let mut rng = StdRng::seed_from_u64(seed);
    Matrix::from_rows(rows, cols, (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
}

/// Triple-loop product.
pub fn naive_matmul(a: &Matrix, b: &Matrix) -> Matrix {
    let mut c = Matrix::zeros(a.rows(), b.cols());
    for i in 0..a.rows() {
        for j in 0..b.cols() {
            c[(i, j)] = (0..a.cols()).map(|t| a[(i, t)] * b[(t, j)]).sum();
        }
    }
    c
}

/// Gaussian elimination with partial pivoting; `None` if singular.
pub fn naive_solve(a: &Matrix, b: &Matrix) -> Option<Matrix> {
    let n = a.rows();
    let mut a = a.clone();
    let mut x = b.clone();
    for col in 0..n {
        let p = (col..n).max_by(|&i, &j| a[(i, col)].abs().total_cmp(&a[(j, col)].abs()))?;
        if a[(p, col)] == 0.0 {
            return None;
        }
        for t in 0..n {
            let (u, v) = (a[(col, t)], a[(p, t)]);
            a[(col, t)] = v;
            a[(p, t)] = u;
        }
        for t in 0..x.cols() {
            let (u, v) = (x[(col, t)], x[(p, t)]);
            x[(col, t)] = v;
            x[(p, t)] = u;
        }
        for i in col + 1..n {
            let f = a[(i, col)] / a[(col, col)];
            for t in col..n {
                a[(i, t)] -= f * a[(col, t)];
            }
            for t in 0..x.cols() {
                x[(i, t)] -= f * x[(col, t)];
            }
        }
    }
    for col in (0..n).rev() {
        for t in 0..x.cols() {
            let s: f64 = (col + 1..n).map(|k| a[(col, k)] * x[(k, t)]).sum();
            x[(col, t)] = (x[(col, t)] - s) / a[(col, col)];
        }
    }
    Some(x)
}

/// Cyclic Jacobi eigenvalues of a symmetric matrix, descending.
pub fn jacobi_eigenvalues(a: &Matrix) -> Vec<f64> {
    let n = a.rows();
    let mut a = a.clone();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[(i, j)] * a[(i, j)])
            .sum();
        if off <= 1e-30 * (1.0 + a.as_slice().iter().map(|x| x * x).sum::<f64>()) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[(p, q)] == 0.0 {
                    continue;
                }
                let theta = (a[(q, q)] - a[(p, p)]) / (2.0 * a[(p, q)]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[(k, p)], a[(k, q)]);
                    a[(k, p)] = c * akp - s * akq;
                    a[(k, q)] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[(p, k)], a[(q, k)]);
                    a[(p, k)] = c * apk - s * aqk;
                    a[(q, k)] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut d: Vec<f64> = (0..n).map(|i| a[(i, i)]).collect();
    d.sort_by(|x, y| y.total_cmp(x));
    d
}

/// Residual variance of every unit after regressing on `picked`:
/// `diag(C - C[:,S] C[S,S]^-1 C[S,:])`, by Gaussian elimination.
pub fn naive_residuals(c: &Matrix, picked: &[usize]) -> Vec<f64> {
    let n = c.rows();
    let all: Vec<usize> = (0..n).collect();
    if picked.is_empty() {
        return (0..n).map(|i| c[(i, i)]).collect();
    }
    let css = c.select(picked, picked).unwrap();
    let cs_all = c.select(picked, &all).unwrap();
    let h = naive_solve(&css, &cs_all).expect("picked set must be independent");
    (0..n).map(|i| c[(i, i)] - (0..picked.len()).map(|t| cs_all[(t, i)] * h[(t, i)]).sum::<f64>()).collect()
}

/// Largest absolute entry of `a - b` (shapes must match).
pub fn max_abs_diff(a: &Matrix, b: &Matrix) -> f64 {
    assert_eq!((a.rows(), a.cols()), (b.rows(), b.cols()));
    a.as_slice().iter().zip(b.as_slice()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Largest absolute entry.
pub fn max_abs(a: &Matrix) -> f64 {
    a.as_slice().iter().map(|x| x.abs()).fold(0.0, f64::max)
}
