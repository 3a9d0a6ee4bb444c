//! Export -> tract round trips: the ONNX file computes what squeeze's own
//! runner (`Model::forward`, BatchNorm unfolded) computes, on random VGGs of
//! odd widths and on the reference checkpoint with real test images.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_data::{DatasetSpec, Split};
use sq_export::tract::{max_relative_difference, TractModel};
use sq_export::{to_onnx, Batch, ExportOptions};
use sq_models::eval::{predict, preprocess_for};
use sq_models::synthetic::{ResNetSpec, Stem, VggSpec};
use sq_models::{conv2d, ActShape, Arch, Layer, Linear, Model};

/// Agreement required between the engines, relative to each image's largest logit.
const TOLERANCE: f32 = 1e-4;

fn random_input(shape: [usize; 4], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(values, &shape, &Device::Cpu).unwrap()
}

/// Exports `model` with `batch`, runs the file in tract at each of `runs`
/// batch sizes and checks the logits against `Model::forward`.
fn assert_engines_agree(model: &Model, batch: Batch, runs: &[usize]) {
    let onnx = to_onnx(model, &ExportOptions { batch, preprocess: None }).unwrap();
    let ActShape::Map { c, h, w } = model.input_shape() else { panic!("image model") };
    for (seed, &n) in runs.iter().enumerate() {
        let tract = TractModel::from_bytes(&onnx, n).unwrap();
        assert_eq!(tract.input_shape(), [n, c, h, w]);
        let x = random_input([n, c, h, w], seed as u64);
        let (ours, theirs) = (model.forward(&x).unwrap(), tract.run(&x).unwrap());
        assert_eq!(theirs.dims(), ours.dims());
        let diff = max_relative_difference(&ours, &theirs).unwrap();
        assert!(diff <= TOLERANCE, "batch {batch} run at {n}: relative difference {diff}");
    }
}

/// Two stages (one conv, then two), widths 5, 37 and 1, a 2x2 map before
/// the flatten, three input channels: nothing square or uniform to hide a
/// transposed weight, a wrong flatten order or a channel mix-up.
fn odd_vgg(batch_norm: bool, seed: u64) -> Model {
    let arch = Arch { stages: vec![1, 2], batch_norm };
    VggSpec { arch, widths: vec![5, 37, 1], in_channels: 3, input_side: 8, classifier: vec![7, 4] }.build(seed).unwrap()
}

#[test]
fn odd_widths_with_and_without_batchnorm_fixed_and_dynamic_batch() {
    for batch_norm in [false, true] {
        let model = odd_vgg(batch_norm, 7);
        assert_engines_agree(&model, Batch::Fixed(3), &[3]);
        assert_engines_agree(&model, Batch::Dynamic, &[1, 4]);
    }
}

#[test]
fn standard_vgg11_bn_of_odd_width() {
    let model = VggSpec::uniform("vgg11_bn".parse().unwrap(), 13, 1, 32, 9).build(3).unwrap();
    assert_engines_agree(&model, Batch::Dynamic, &[2]);
}

#[test]
fn resnets_with_both_stems_and_bottlenecks() {
    for (arch, stem, side) in [("resnet18", Stem::Cifar, 12), ("resnet50", Stem::ImageNet, 32)] {
        let spec = ResNetSpec { in_channels: 3, ..ResNetSpec::uniform(arch.parse().unwrap(), stem, 3, 3, side) };
        let model = spec.build(11).unwrap();
        assert_engines_agree(&model, Batch::Dynamic, &[1, 3]);
    }
}

#[test]
fn layers_without_bias_and_a_trailing_dropout() {
    let device = Device::Cpu;
    let conv = conv2d(Tensor::randn(0f32, 0.5, (4, 2, 3, 3), &device).unwrap(), None, 0).unwrap();
    let linear = Linear::new(Tensor::randn(0f32, 0.5, (3, 4 * 3 * 3), &device).unwrap(), None);
    let layers = vec![
        Layer::Conv2d(conv),
        Layer::Relu,
        Layer::MaxPool2d { kernel: 2, stride: 2, padding: 0 },
        Layer::Flatten,
        Layer::Linear(linear),
        Layer::Dropout,
    ];
    // 8x8 -> conv 3x3 without padding: 6x6 -> pool: 3x3.
    let model = Model::new(ActShape::Map { c: 2, h: 8, w: 8 }, layers, Default::default()).unwrap();
    assert_engines_agree(&model, Batch::Fixed(2), &[2]);
}

#[test]
fn reference_checkpoint_on_real_test_images() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = sq_models::checkpoint::load(&root.join("data/vgg16_bn_fashion_mnist.safetensors"), None).unwrap();
    let mut test = DatasetSpec::FashionMnist(root.join("data/fashion-mnist")).load(Split::Test).unwrap();
    test.truncate(32);
    let pre = preprocess_for(&model, &test, (None, Default::default())).unwrap();
    let x = pre.batch(&test, 0..test.len()).unwrap();

    let onnx = to_onnx(&model, &ExportOptions { batch: Batch::Fixed(32), preprocess: Some(pre) }).unwrap();
    let tract = TractModel::from_bytes(&onnx, 32).unwrap();
    let (ours, theirs) = (model.forward(&x).unwrap(), tract.run(&x).unwrap());
    let diff = max_relative_difference(&ours, &theirs).unwrap();
    assert!(diff <= TOLERANCE, "relative difference {diff}");
    assert_eq!(theirs.argmax(1).unwrap().to_vec1::<u32>().unwrap(), predict(&model, &x).unwrap());
    println!("reference, {} images: max relative logit difference {diff:.2e}", test.len());
}

#[test]
fn relative_difference_sees_nan_and_scale() {
    let a = Tensor::new(&[[10f32, -20.0], [0.5, 0.25]], &Device::Cpu).unwrap();
    let b = Tensor::new(&[[10f32, -19.0], [0.5, 0.20]], &Device::Cpu).unwrap();
    let diff = max_relative_difference(&a, &b).unwrap();
    assert!((diff - 0.1).abs() < 1e-6, "{diff}"); // 0.05 / 0.5 beats 1 / 20
    let nan = Tensor::new(&[[10f32, f32::NAN], [0.5, 0.25]], &Device::Cpu).unwrap();
    assert_eq!(max_relative_difference(&a, &nan).unwrap(), f32::INFINITY);
    assert!(max_relative_difference(&a, &a.t().unwrap().contiguous().unwrap().reshape((1, 4)).unwrap()).is_err());
}
