//! Differential tests of the execution plan (`Model::forward`,
//! `forward_with`, `forward_range`) against the layer-by-layer candle path
//! (`Model::forward_layers`, i.e. candle's own `conv2d`, `max_pool2d`,
//! `matmul`): single convolutions over random shapes, random VGGs, and the
//! reference checkpoint on real Fashion-MNIST images.

use std::ops::Range;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_data::{DatasetSpec, Split};
use sq_models::synthetic::VggSpec;
use sq_models::{ActShape, Arch, BatchNorm2d, Conv2d, Conv2dConfig, Layer, Linear, Model, Samples};

/// Relative agreement required: max |a - b| over max |b|.
const TOLERANCE: f32 = 1e-4;

fn random(shape: &[usize], rng: &mut StdRng, lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn random_input(model: &Model, n: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    match model.input_shape() {
        ActShape::Map { c, h, w } => random(&[n, c, h, w], &mut rng, -1.0, 1.0),
        ActShape::Vector(f) => random(&[n, f], &mut rng, -1.0, 1.0),
    }
}

/// max |a - b| / max |b| (0 when both are empty), after checking the dims agree.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The plan and the layer-by-layer path agree on `x` for the whole model.
fn assert_forward_agrees(model: &Model, x: &Tensor, what: &str) {
    assert!(model.uses_plan(), "{what}: the plan should compile");
    let fast = model.forward(x).unwrap();
    let reference = model.forward_layers(x, 0..model.layers().len()).unwrap();
    let diff = rel_diff(&fast, &reference);
    assert!(diff <= TOLERANCE, "{what}: relative difference {diff}");
}

fn batch_norm(channels: usize, rng: &mut StdRng) -> Layer {
    let mut v = |lo, hi| random(&[channels], rng, lo, hi);
    Layer::BatchNorm2d(BatchNorm2d::new(v(0.5, 1.5), v(-0.3, 0.3), v(-0.3, 0.3), v(0.5, 1.5), 1e-5).unwrap())
}

/// Unit-wise layers that may follow a convolution in a test model.
#[derive(Clone, Copy, Debug)]
enum Tail {
    Nothing,
    Relu,
    BatchNorm,
    BatchNormRelu,
    /// A BatchNorm that cannot be folded into the weights.
    ReluBatchNorm,
}

#[derive(Clone, Debug)]
struct ConvCase {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    side: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    tail: Tail,
    pool: bool,
    seed: u64,
}

impl ConvCase {
    fn model(&self) -> Model {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let k = self.kernel;
        let weight = random(&[self.out_channels, self.in_channels, k, k], &mut rng, -0.5, 0.5);
        let bias = self.bias.then(|| random(&[self.out_channels], &mut rng, -0.5, 0.5));
        let config =
            Conv2dConfig { padding: self.padding, stride: self.stride, dilation: 1, groups: 1, cudnn_fwd_algo: None };
        let mut layers = vec![Layer::Conv2d(Conv2d::new(weight, bias, config))];
        let c = self.out_channels;
        match self.tail {
            Tail::Nothing => {}
            Tail::Relu => layers.push(Layer::Relu),
            Tail::BatchNorm => layers.push(batch_norm(c, &mut rng)),
            Tail::BatchNormRelu => layers.extend([batch_norm(c, &mut rng), Layer::Relu]),
            Tail::ReluBatchNorm => layers.extend([Layer::Relu, batch_norm(c, &mut rng)]),
        }
        let out_side = (self.side + 2 * self.padding - k) / self.stride + 1;
        if self.pool && out_side >= 2 {
            layers.push(Layer::MaxPool2d { kernel: 2, stride: 2, padding: 0 });
        }
        let input = ActShape::Map { c: self.in_channels, h: self.side, w: self.side };
        Model::new(input, layers, Default::default()).unwrap()
    }
}

fn channels() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(37), 2..9usize, 60..70usize]
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    let tail = prop_oneof![
        Just(Tail::Nothing),
        Just(Tail::Relu),
        Just(Tail::BatchNorm),
        Just(Tail::BatchNormRelu),
        Just(Tail::ReluBatchNorm)
    ];
    let geometry = (
        prop_oneof![Just(1usize), Just(3)],
        prop_oneof![Just(1usize), Just(2)],
        prop_oneof![Just(0usize), Just(1)],
        prop_oneof![Just(1usize), Just(2), Just(5), 3..12usize],
    )
        .prop_filter("the kernel fits in the padded input", |(k, _, p, side)| side + 2 * p >= *k);
    (
        prop_oneof![Just(1usize), Just(3)],
        channels(),
        channels(),
        geometry,
        any::<bool>(),
        tail,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(batch, in_channels, out_channels, (kernel, stride, padding, side), bias, tail, pool, seed)| {
            ConvCase { batch, in_channels, out_channels, side, kernel, stride, padding, bias, tail, pool, seed }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_convolution_with_its_tail_matches_candle(case in conv_case()) {
        let model = case.model();
        assert_forward_agrees(&model, &random_input(&model, case.batch, case.seed), &format!("{case:?}"));
    }
}

#[test]
fn resnet_stem_and_downsample_convolutions_match_candle() {
    // 7x7 stride 2 padding 3 (torchvision's stem) and 1x1 stride 2 without bias (a downsample).
    for (kernel, stride, padding, side, in_channels) in [(7, 2, 3, 20, 3), (1, 2, 0, 9, 37)] {
        let case = ConvCase {
            batch: 2,
            in_channels,
            out_channels: 64,
            side,
            kernel,
            stride,
            padding,
            bias: false,
            tail: Tail::BatchNormRelu,
            pool: false,
            seed: 7,
        };
        let model = case.model();
        assert_forward_agrees(&model, &random_input(&model, case.batch, 1), &format!("{case:?}"));
    }
}

#[test]
fn many_pixels_and_few_pixels_split_work_differently_and_both_match() {
    // 211 channels on a 2x2 map (blocks of channels across threads) and on
    // a 24x24 map (several tiles of pixels per image); both large enough
    // (over half a million multiply-accumulates) to run in parallel.
    for side in [2, 24] {
        let case = ConvCase {
            batch: 1,
            in_channels: 150,
            out_channels: 211,
            side,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            tail: Tail::Relu,
            pool: false,
            seed: 3,
        };
        let model = case.model();
        assert_forward_agrees(&model, &random_input(&model, 1, 2), &format!("{case:?}"));
    }
}

#[test]
fn linear_layers_match_candle() {
    let mut rng = StdRng::seed_from_u64(5);
    for (features, hidden, classes) in [(1, 1, 1), (37, 211, 10), (512, 512, 10)] {
        let mut linear = |out, inp| Layer::Linear(Linear::new(random(&[out, inp], &mut rng, -0.3, 0.3), None));
        let layers = vec![linear(hidden, features), Layer::Relu, Layer::Dropout, linear(classes, hidden)];
        let model = Model::new(ActShape::Vector(features), layers, Default::default()).unwrap();
        for batch in [1, 3] {
            assert_forward_agrees(&model, &random_input(&model, batch, 9), &format!("{features}-{hidden}-{classes}"));
        }
    }
}

/// Random VGGs: every family shape, with and without BatchNorm, odd widths,
/// 1x1 and 2x2 maps before the flatten.
fn random_vggs() -> Vec<(String, Model)> {
    let mut out = Vec::new();
    for (name, batch_norm, widths, side) in [
        ("vgg11", true, vec![37, 5, 211, 16, 1, 64, 37, 8], 32),
        ("vgg11", false, vec![3, 37, 1, 211, 16, 5, 64, 9], 64),
        ("vgg16", true, vec![7, 13, 37, 29, 64, 1, 211, 37, 5, 16, 48, 3, 37], 32),
    ] {
        let arch = Arch { batch_norm, ..name.parse().unwrap() };
        let spec = VggSpec { arch, widths, in_channels: 1, input_side: side, classifier: vec![37, 211, 10] };
        out.push((format!("{name} bn={batch_norm} side={side}"), spec.build(11).unwrap()));
    }
    out
}

#[test]
fn random_vggs_match_the_layer_by_layer_forward() {
    for (name, model) in random_vggs() {
        for batch in [1, 3] {
            assert_forward_agrees(&model, &random_input(&model, batch, 4), &format!("{name} batch {batch}"));
        }
    }
}

fn tap_points(model: &Model) -> Vec<usize> {
    (0..model.layers().len()).filter(|&i| model.layers()[i].is_tap_point()).collect()
}

#[test]
fn the_hook_sees_exactly_the_tap_points_with_the_tensors_they_read() {
    for (name, model) in random_vggs() {
        let x = random_input(&model, 2, 8);
        let mut seen = Vec::new();
        let out = model
            .forward_with(&x, |i, input| {
                let reference = model.forward_layers(&x, 0..i)?;
                let diff = rel_diff(input, &reference);
                assert!(diff <= TOLERANCE, "{name}: input of layer {i} differs by {diff}");
                assert!(input.is_contiguous(), "{name}: the hook's tensor is contiguous");
                seen.push(i);
                Ok::<_, sq_models::Error>(())
            })
            .unwrap();
        assert_eq!(seen, tap_points(&model), "{name}");
        assert!(model.links().iter().all(|l| seen.contains(&l.tap)), "{name}: every link's tap is shown");
        assert!(rel_diff(&out, &model.forward_layers(&x, 0..model.layers().len()).unwrap()) <= TOLERANCE);
    }
}

#[test]
fn the_samples_hook_lends_the_tapped_inputs_channel_last() {
    for (name, model) in random_vggs() {
        let x = random_input(&model, 2, 9);
        let mut seen = Vec::new();
        let out = model
            .forward_with_samples(&x, |i, samples| {
                let reference = Samples::from_tensor(&model.forward_layers(&x, 0..i)?)?;
                assert_eq!((samples.rows(), samples.units()), (reference.rows(), reference.units()), "{name}: tap {i}");
                let scale = reference.values().iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                let diff = samples.values().iter().zip(reference.values()).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(diff <= TOLERANCE * scale, "{name}: samples at tap {i} differ by {diff}");
                seen.push(i);
                Ok::<_, sq_models::Error>(())
            })
            .unwrap();
        assert_eq!(seen, tap_points(&model), "{name}");
        assert!(rel_diff(&out, &model.forward(&x).unwrap()) <= TOLERANCE);
    }
}

#[test]
fn samples_of_a_tensor_are_its_unit_vectors_row_by_row() {
    let values: Vec<f32> = (0..2 * 3 * 2 * 5).map(|v| v as f32).collect();
    let x = Tensor::from_vec(values, (2, 3, 2, 5), &Device::Cpu).unwrap();
    let samples = Samples::from_tensor(&x).unwrap();
    assert_eq!((samples.rows(), samples.units()), (2 * 2 * 5, 3));
    // Image 1, pixel (1, 4), channel 2: row (1 * 2 + 1) * 5 + 4, column 2.
    let row = (2 + 1) * 5 + 4;
    assert_eq!(
        samples.values()[row * 3 + 2],
        x.get(1).unwrap().get(2).unwrap().get(1).unwrap().get(4).unwrap().to_scalar::<f32>().unwrap()
    );
    let flat = x.flatten_from(1).unwrap();
    let vectors = Samples::from_tensor(&flat).unwrap();
    assert_eq!((vectors.rows(), vectors.units()), (2, 30));
    assert_eq!(vectors.values(), flat.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let bad = Samples::from_tensor(&Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap()).unwrap_err();
    assert!(matches!(bad, sq_models::Error::Input { .. }), "{bad}");
}

#[test]
fn a_tapped_pass_runs_its_hooks_inside_the_thread_pool() {
    // One hand-over to the pool per pass, not one per tap, and the hook's
    // own parallel loops (the Gram update) start from a worker.
    let (_, model) = random_vggs().remove(0);
    let mut taps = 0;
    model
        .forward_with_samples(&random_input(&model, 2, 1), |_, _| {
            assert!(rayon::current_thread_index().is_some(), "the hook runs on a worker of the pool");
            taps += 1;
            Ok::<_, sq_models::Error>(())
        })
        .unwrap();
    assert_eq!(taps, tap_points(&model).len());
    assert!(rayon::current_thread_index().is_none(), "the test itself runs outside the pool");
}

#[test]
fn an_error_from_the_hook_stops_the_pass() {
    let (_, model) = random_vggs().remove(0);
    let mut calls = 0;
    let result = model.forward_with(&random_input(&model, 1, 0), |i, _| {
        calls += 1;
        if i > 0 {
            Err(sq_models::Error::Invalid { layer: "hook".into(), message: "stop".into() })
        } else {
            Ok(())
        }
    });
    assert!(result.is_err());
    assert_eq!(calls, 2, "the pass stopped at the second tap point");
}

#[test]
fn forward_range_matches_between_taps_and_anywhere_else() {
    for (name, model) in random_vggs() {
        let x = random_input(&model, 3, 6);
        let len = model.layers().len();
        let mut cuts: Vec<usize> = model.links().iter().map(|l| l.tap).collect();
        cuts.insert(0, 0);
        cuts.push(len);
        // Tap to tap, as sequential compression advances its activations;
        // then ranges that start or end inside a fused step (layer by layer).
        let mut ranges: Vec<Range<usize>> = cuts.windows(2).map(|w| w[0]..w[1]).collect();
        ranges.extend([1..cuts[2], 0..2, 2..len, cuts[1]..cuts[1] + 1]);
        for range in ranges {
            let input = model.forward_layers(&x, 0..range.start).unwrap();
            let fast = model.forward_range(&input, range.clone()).unwrap();
            let reference = model.forward_layers(&input, range.clone()).unwrap();
            let diff = rel_diff(&fast, &reference);
            assert!(diff <= TOLERANCE, "{name}: range {range:?} differs by {diff}");
        }
    }
}

#[test]
fn forward_range_rejects_an_input_of_the_wrong_shape() {
    let (_, model) = random_vggs().remove(0);
    let tap = model.links()[1].tap;
    let wrong = random_input(&model, 1, 0);
    assert!(matches!(model.forward_range(&wrong, tap..model.layers().len()), Err(sq_models::Error::Input { .. })));
}

#[test]
fn a_model_the_plan_cannot_run_falls_back_to_candle() {
    // f64 weights: no fast kernel, same results as layer by layer.
    let mut rng = StdRng::seed_from_u64(1);
    let weight = random(&[4, 2, 3, 3], &mut rng, -1.0, 1.0).to_dtype(DType::F64).unwrap();
    let conv = sq_models::conv2d(weight, None, 1).unwrap();
    let model =
        Model::new(ActShape::Map { c: 2, h: 5, w: 5 }, vec![Layer::Conv2d(conv), Layer::Relu], Default::default())
            .unwrap();
    assert!(!model.uses_plan());
    let x = random_input(&model, 2, 3).to_dtype(DType::F64).unwrap();
    let out = model.forward(&x).unwrap();
    assert_eq!(out.dims(), &[2, 4, 5, 5]);
    let mut seen = Vec::new();
    model
        .forward_with(&x, |i, _| {
            seen.push(i);
            Ok::<_, sq_models::Error>(())
        })
        .unwrap();
    assert_eq!(seen, vec![0], "the fallback shows the same tap points");
}

#[test]
fn reference_checkpoint_agrees_on_real_images() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/vgg16_bn_fashion_mnist.safetensors");
    let model = sq_models::checkpoint::load(&path, None).unwrap();
    let mut data = DatasetSpec::FashionMnist(sq_data::default_data_dir()).load(Split::Test).unwrap();
    data.truncate(16);
    let pre = sq_models::eval::preprocess_for(&model, &data, (None, Default::default())).unwrap();
    for range in [0..1, 0..16] {
        let x = pre.batch(&data, range.clone()).unwrap();
        assert_forward_agrees(&model, &x, &format!("reference, images {range:?}"));
        let fast = model.forward(&x).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap();
        let reference =
            model.forward_layers(&x, 0..model.layers().len()).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(fast, reference, "same predictions");
    }
}
