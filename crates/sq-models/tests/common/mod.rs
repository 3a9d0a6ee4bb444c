//! Helpers shared by this crate's integration tests.

use candle_core::{Device, Tensor};
use sq_models::{ActShape, Model};

/// `n` inputs for `model`: a cheap deterministic pattern in [-1, 1].
pub fn input(model: &Model, n: usize, seed: u64) -> Tensor {
    let ActShape::Map { c, h, w } = model.input_shape() else { panic!("map input") };
    let len = n * c * h * w;
    let data: Vec<f32> = (0..len).map(|i| (((i as u64 * 2654435761 + seed) % 2001) as f32 / 1000.0) - 1.0).collect();
    Tensor::from_vec(data, (n, c, h, w), &Device::Cpu).unwrap()
}

/// The largest absolute difference between `a` and `b`, relative to `a`'s largest magnitude.
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
