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
use sq_linalg::{Matrix, Moments};
use sq_models::dataset::{Dataset, DatasetSpec, Preprocess, Split};
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
    let pre = sq_models::eval::preprocess_for(model, &data, None).expect("the checkpoint names its normalisation");
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
