//! Shared setup for the benchmarks: the reference checkpoint, calibration
//! images and random data, built once per bench binary so that no bench
//! copies another's setup.
//!
//! Each bench binary compiles this module separately and uses only part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_data::{Dataset, DatasetSpec, Preprocess, Split};
use sq_linalg::{Matrix, Moments};
use sq_models::Model;

/// The reference VGG-16-BN trained on Fashion-MNIST (1x32x32 in, 10 classes).
pub const CHECKPOINT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/vgg16_bn_fashion_mnist.safetensors");

/// Loads the reference model, with a message naming the file if it is missing.
pub fn reference_model() -> Model {
    sq_models::checkpoint::load(Path::new(CHECKPOINT), None)
        .unwrap_or_else(|e| panic!("cannot load the reference checkpoint {CHECKPOINT}: {e}"))
}

/// The first `n` Fashion-MNIST training images (calibration draws from the
/// training split) and the preprocessing `model` expects for them.
pub fn calibration(model: &Model, n: usize) -> (Dataset, Preprocess) {
    let spec: DatasetSpec = "fashion-mnist".parse().expect("the built-in dataset spec parses");
    let mut data = spec
        .load(Split::Train)
        .unwrap_or_else(|e| panic!("cannot load Fashion-MNIST from {}: {e}", spec.dir().display()));
    data.truncate(n);
    let pre = sq_models::eval::preprocess_for(model, &data, (None, Default::default()))
        .expect("the checkpoint names its normalisation");
    (data, pre)
}

/// The preprocessed input tensor of images `0..n` of `data`.
pub fn input_batch(data: &Dataset, pre: &Preprocess, n: usize) -> Tensor {
    pre.batch(data, 0..n).expect("preprocess a calibration batch")
}

/// `len` values drawn uniformly from `[-1, 1)` by a generator seeded with `seed`.
pub fn random_f32(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The covariance `X^T X / N - mu mu^T` of `samples` random rows of `n`
/// units, through the same [`Moments`] path as real statistics. With
/// `samples >= n` the matrix has full rank `n` (almost surely).
pub fn random_covariance(n: usize, samples: usize, seed: u64) -> Matrix {
    let mut moments = Moments::new(n);
    moments.update_f32(&random_f32(samples * n, seed), samples).expect("batch of samples x n");
    moments.covariance().expect("covariance of a non-empty sample")
}

/// The covariance of a wide layer that is as badly conditioned as a trained
/// one, through the same [`Moments`] path as real statistics. `samples` rows
/// of `n` units are driven by `factors` shared latent factors whose scales
/// decay (factor `f` has variance `1 / (1 + f)`, so the spectrum falls off
/// like a trained layer's instead of being flat), each unit with a little
/// noise of its own (1% of its standard deviation), except `dead` units that
/// are constant zero (dead ReLUs) and `dependent` units that are the exact
/// sum of two other units (duplicated features). With `samples` at least
/// `n`, the numerical rank is `n - dead - dependent`.
pub fn correlated_covariance(
    n: usize,
    factors: usize,
    dead: usize,
    dependent: usize,
    samples: usize,
    seed: u64,
) -> Matrix {
    use rand::seq::SliceRandom;

    assert!(dead + dependent + 2 <= n, "too few units for {dead} dead and {dependent} dependent ones");
    let mut rng = StdRng::seed_from_u64(seed);
    let uniform =
        |rng: &mut StdRng, len: usize| -> Vec<f64> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let latent = Matrix::from_rows(samples, factors, uniform(&mut rng, samples * factors)).expect("samples x factors");
    let mut loadings = uniform(&mut rng, factors * n);
    for (f, row) in loadings.chunks_mut(n).enumerate() {
        let scale = (1.0 + f as f64).sqrt().recip();
        row.iter_mut().for_each(|w| *w *= scale);
    }
    let loadings = Matrix::from_rows(factors, n, loadings).expect("factors x n");
    let signal = latent.matmul(&loadings).expect("latent x loadings");
    // Unit variance of the signal: var(z) var(w) sum_f 1 / (1 + f), uniform z and w.
    let signal_sd = ((0..factors).map(|f| 1.0 / (1.0 + f as f64)).sum::<f64>() / 9.0).sqrt();
    let noise = 0.01 * signal_sd * 3f64.sqrt();
    let mut data: Vec<f32> =
        signal.as_slice().iter().map(|&x| (x + noise * rng.random_range(-1.0..1.0)) as f32).collect();

    let mut units: Vec<usize> = (0..n).collect();
    units.shuffle(&mut rng);
    let (dead_units, rest) = units.split_at(dead);
    let (dependent_units, independent) = rest.split_at(dependent);
    let sums: Vec<(usize, usize, usize)> = dependent_units
        .iter()
        .map(|&j| {
            let a = independent[rng.random_range(0..independent.len())];
            let b = independent[rng.random_range(0..independent.len())];
            (j, a, b)
        })
        .collect();
    for row in data.chunks_mut(n) {
        for &j in dead_units {
            row[j] = 0.0;
        }
        for &(j, a, b) in &sums {
            row[j] = row[a] + row[b];
        }
    }
    let mut moments = Moments::new(n);
    moments.update_f32(&data, samples).expect("batch of samples x n");
    moments.covariance().expect("covariance of a non-empty sample")
}
