//! Known-answer tests: when the removed units are exact affine combinations
//! of the kept ones, squeezing must not change the network's output.
//!
//! Each case builds a tiny network whose producer has `k` free units and
//! `extra` units that are combinations of them, captures the statistics of
//! what the consumer reads, cuts the link keeping the free units, and
//! compares outputs before and after.

use candle_core::{Device, Tensor};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_linalg::Moments;
use sq_models::{conv2d, ActShape, Layer, Linear, Model};
use sq_rewrite::{apply, plan, Compensation, Statistics};

fn randn(rng: &mut StdRng, shape: &[usize]) -> Vec<f32> {
    (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn tensor(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// How the dependent units are made from the free ones.
#[derive(Clone, Copy, Debug)]
enum Combination {
    /// Any affine combination `sum a_j x_j + c` (exact through linear layers only).
    Affine,
    /// A positive multiple of one free unit, or a constant (exact through ReLU and max-pool too).
    ScaledCopy,
}

/// Producer rows (weights over `fan_in` inputs, and biases) for `k` free
/// units followed by `extra` dependent ones, shuffled by `order`.
fn producer_rows(
    rng: &mut StdRng,
    k: usize,
    extra: usize,
    fan_in: usize,
    how: Combination,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let mut rows: Vec<Vec<f32>> = (0..k).map(|_| randn(rng, &[fan_in])).collect();
    let mut bias: Vec<f32> = randn(rng, &[k]);
    for e in 0..extra {
        let (row, b) = match how {
            Combination::Affine => {
                let a = randn(rng, &[k]);
                let c = rng.random_range(-1.0f32..1.0);
                let row = (0..fan_in).map(|i| (0..k).map(|j| a[j] * rows[j][i]).sum()).collect();
                (row, (0..k).map(|j| a[j] * bias[j]).sum::<f32>() + c)
            }
            Combination::ScaledCopy if e % 3 == 2 => (vec![0.0; fan_in], rng.random_range(0.1f32..1.0)),
            Combination::ScaledCopy => {
                let (j, a) = (rng.random_range(0..k), rng.random_range(0.2f32..2.0));
                (rows[j].iter().map(|w| a * w).collect(), a * bias[j])
            }
        };
        rows.push(row);
        bias.push(b);
    }
    (rows, bias)
}

/// A random permutation of `0..n` and the positions of the first `k` originals in it.
fn shuffle(rng: &mut StdRng, n: usize, k: usize) -> (Vec<usize>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.random_range(0..=i));
    }
    let kept = (0..n).filter(|&p| perm[p] < k).collect();
    (perm, kept)
}

fn conv_layer(rows: &[Vec<f32>], bias: &[f32], in_c: usize, pad: usize) -> Layer {
    let out = rows.len();
    let w: Vec<f32> = rows.iter().flatten().copied().collect();
    Layer::Conv2d(conv2d(tensor(w, &[out, in_c, 3, 3]), Some(tensor(bias.to_vec(), &[out])), pad).unwrap())
}

fn linear_layer(rows: &[Vec<f32>], bias: &[f32]) -> Layer {
    let w: Vec<f32> = rows.iter().flatten().copied().collect();
    Layer::Linear(Linear::new(tensor(w, &[rows.len(), rows[0].len()]), Some(tensor(bias.to_vec(), &[bias.len()]))))
}

/// Squeezes the first link keeping `kept` and returns (original, squeezed) outputs on `x`.
fn squeeze_first_link(model: &Model, kept: &[usize], x: &Tensor) -> (Tensor, Tensor, Model) {
    let link = model.links()[0].clone();
    let tapped = model.forward_range(x, 0..link.tap).unwrap();
    let mut moments = Moments::new(link.units());
    sq_capture::accumulate(&mut moments, &tapped).unwrap();
    let patch = plan(&link, "producer", kept, Statistics::Current(&moments), Compensation::Lstsq).unwrap();
    let squeezed = apply(model, &patch).unwrap();
    (model.forward(x).unwrap(), squeezed.forward(x).unwrap(), squeezed)
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f32) {
    let (a, b) =
        (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= tol * scale, "max |diff| {diff} > {tol} x {scale}");
}

/// Keeps only interior positions (drops `border` pixels on each side) of an N x C x H x W tensor.
fn interior(t: &Tensor, border: usize) -> Tensor {
    let (_, _, h, w) = t.dims4().unwrap();
    t.narrow(2, border, h - 2 * border).unwrap().narrow(3, border, w - 2 * border).unwrap()
}

fn input(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    tensor(randn(rng, shape), shape)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn linear_to_linear(k in 1usize..6, extra in 1usize..6, fan_in in 6usize..10, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (rows, bias) = producer_rows(&mut rng, k, extra, fan_in, Combination::Affine);
        let (perm, kept) = shuffle(&mut rng, k + extra, k);
        let (rows, bias): (Vec<_>, Vec<_>) = perm.iter().map(|&p| (rows[p].clone(), bias[p])).unzip();
        let consumer = producer_rows(&mut rng, 4, 0, k + extra, Combination::Affine);
        let layers = vec![Layer::Flatten, linear_layer(&rows, &bias), linear_layer(&consumer.0, &consumer.1)];
        let model = Model::new(ActShape::Map { c: fan_in, h: 1, w: 1 }, layers, Default::default()).unwrap();
        let x = input(&mut rng, &[32, fan_in, 1, 1]);
        let (a, b, squeezed) = squeeze_first_link(&model, &kept, &x);
        assert_close(&a, &b, 1e-5);
        prop_assert!(squeezed.param_count() < model.param_count());
    }

    #[test]
    fn conv_to_conv_interior(k in 1usize..5, extra in 1usize..5, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let in_c = 3;
        let (rows, bias) = producer_rows(&mut rng, k, extra, in_c * 9, Combination::Affine);
        let (perm, kept) = shuffle(&mut rng, k + extra, k);
        let (rows, bias): (Vec<_>, Vec<_>) = perm.iter().map(|&p| (rows[p].clone(), bias[p])).unzip();
        let consumer = producer_rows(&mut rng, 5, 0, (k + extra) * 9, Combination::Affine);
        let layers = vec![conv_layer(&rows, &bias, in_c, 1), conv_layer(&consumer.0, &consumer.1, k + extra, 1)];
        let model = Model::new(ActShape::Map { c: in_c, h: 7, w: 7 }, layers, Default::default()).unwrap();
        let x = input(&mut rng, &[6, in_c, 7, 7]);
        let (a, b, _) = squeeze_first_link(&model, &kept, &x);
        // The consumer zero-pads its input: a removed unit's constant offset is
        // reconstructed there as c, not 0, so only interior positions are exact.
        assert_close(&interior(&a, 1), &interior(&b, 1), 1e-5);
    }

    #[test]
    fn conv_to_pool_to_conv(k in 1usize..5, extra in 1usize..5, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let in_c = 2;
        let (rows, bias) = producer_rows(&mut rng, k, extra, in_c * 9, Combination::ScaledCopy);
        let (perm, kept) = shuffle(&mut rng, k + extra, k);
        let (rows, bias): (Vec<_>, Vec<_>) = perm.iter().map(|&p| (rows[p].clone(), bias[p])).unzip();
        let consumer = producer_rows(&mut rng, 4, 0, (k + extra) * 9, Combination::Affine);
        let layers = vec![
            conv_layer(&rows, &bias, in_c, 1),
            Layer::Relu,
            Layer::MaxPool2d { kernel: 2, stride: 2, padding: 0 },
            conv_layer(&consumer.0, &consumer.1, k + extra, 1),
        ];
        let model = Model::new(ActShape::Map { c: in_c, h: 12, w: 12 }, layers, Default::default()).unwrap();
        let x = input(&mut rng, &[5, in_c, 12, 12]);
        let (a, b, _) = squeeze_first_link(&model, &kept, &x);
        assert_close(&interior(&a, 1), &interior(&b, 1), 1e-5);
    }

    #[test]
    fn conv_to_flatten_to_linear_with_spatial_positions(k in 1usize..5, extra in 1usize..5, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let in_c = 2;
        let (rows, bias) = producer_rows(&mut rng, k, extra, in_c * 9, Combination::Affine);
        let (perm, kept) = shuffle(&mut rng, k + extra, k);
        let (rows, bias): (Vec<_>, Vec<_>) = perm.iter().map(|&p| (rows[p].clone(), bias[p])).unzip();
        // 3x3 maps flattened: each channel owns 9 consecutive input columns of the linear layer.
        let consumer = producer_rows(&mut rng, 6, 0, (k + extra) * 9, Combination::Affine);
        let layers = vec![conv_layer(&rows, &bias, in_c, 1), Layer::Flatten, linear_layer(&consumer.0, &consumer.1)];
        let model = Model::new(ActShape::Map { c: in_c, h: 3, w: 3 }, layers, Default::default()).unwrap();
        let x = input(&mut rng, &[40, in_c, 3, 3]);
        let (a, b, _) = squeeze_first_link(&model, &kept, &x);
        assert_close(&a, &b, 1e-5);
    }
}

#[test]
fn keeping_every_unit_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(3);
    let (rows, bias) = producer_rows(&mut rng, 4, 0, 2 * 9, Combination::Affine);
    let consumer = producer_rows(&mut rng, 3, 0, 4 * 9, Combination::Affine);
    let layers = vec![conv_layer(&rows, &bias, 2, 1), Layer::Relu, conv_layer(&consumer.0, &consumer.1, 4, 1)];
    let model = Model::new(ActShape::Map { c: 2, h: 5, w: 5 }, layers, Default::default()).unwrap();
    let x = input(&mut rng, &[3, 2, 5, 5]);
    let (a, b, squeezed) = squeeze_first_link(&model, &[0, 1, 2, 3], &x);
    assert_close(&a, &b, 1e-6);
    assert_eq!(squeezed.param_count(), model.param_count());
}

#[test]
fn plain_deletion_of_a_dead_unit_is_exact_and_of_a_live_one_is_not() {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut rows, mut bias) = producer_rows(&mut rng, 3, 0, 4, Combination::Affine);
    rows.push(vec![0.0; 4]); // a dead unit: always 0 after ReLU
    bias.push(-1.0);
    let consumer = producer_rows(&mut rng, 2, 0, 4, Combination::Affine);
    let layers = vec![Layer::Flatten, linear_layer(&rows, &bias), Layer::Relu, linear_layer(&consumer.0, &consumer.1)];
    let model = Model::new(ActShape::Map { c: 4, h: 1, w: 1 }, layers, Default::default()).unwrap();
    let x = input(&mut rng, &[16, 4, 1, 1]);
    let link = model.links()[0].clone();
    let mut moments = Moments::new(4);
    sq_capture::accumulate(&mut moments, &model.forward_range(&x, 0..link.tap).unwrap()).unwrap();
    let dead = plan(&link, "p", &[0, 1, 2], Statistics::Current(&moments), Compensation::None).unwrap();
    assert_eq!(dead.relative_error, 0.0);
    assert_close(&model.forward(&x).unwrap(), &apply(&model, &dead).unwrap().forward(&x).unwrap(), 1e-6);
    let live = plan(&link, "p", &[1, 2, 3], Statistics::Current(&moments), Compensation::None).unwrap();
    assert!(live.relative_error > 0.0);
}

#[test]
fn invalid_kept_units_are_rejected() {
    let mut rng = StdRng::seed_from_u64(5);
    let (rows, bias) = producer_rows(&mut rng, 3, 0, 4, Combination::Affine);
    let consumer = producer_rows(&mut rng, 2, 0, 3, Combination::Affine);
    let layers = vec![Layer::Flatten, linear_layer(&rows, &bias), linear_layer(&consumer.0, &consumer.1)];
    let model = Model::new(ActShape::Map { c: 4, h: 1, w: 1 }, layers, Default::default()).unwrap();
    let link = model.links()[0].clone();
    let moments = Moments::new(3);
    for kept in [vec![], vec![0, 0], vec![0, 3]] {
        let err = plan(&link, "classifier.0", &kept, Statistics::Current(&moments), Compensation::Lstsq).unwrap_err();
        assert!(err.to_string().contains("classifier.0"), "{err}");
    }
}
