//! ImageNet-shaped models end to end: torchvision's `vgg16_bn` and
//! `resnet50` layouts at 3x224x224 with 1000 classes (random weights, the
//! convolutions narrowed eightfold so that the test runs in seconds; the
//! spatial sizes, pools, strides, paddings and the classifier's 1000
//! outputs are torchvision's), squeezed on ImageNet-normalised images and
//! exported to ONNX, whose run in tract must agree with squeeze's runner to
//! 1e-4 of the largest logit.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sq_data::{Dataset, Preprocess};
use sq_export::tract::{max_relative_difference, TractModel};
use sq_export::{to_onnx, Batch, ExportOptions};
use sq_models::synthetic::{ResNetSpec, Stem, VggSpec};
use sq_models::Model;
use sq_pipeline::{compress, Settings};

const SIDE: usize = 224;

/// `n` random RGB images of 224x224 with ImageNet's normalisation.
fn images(n: usize) -> (Dataset, Preprocess) {
    let mut rng = StdRng::seed_from_u64(5);
    let pixels: Vec<u8> = (0..n * 3 * SIDE * SIDE).map(|_| rng.random()).collect();
    let data = Dataset::new("random", (3, SIDE, SIDE), pixels, vec![0; n], 1).unwrap();
    let (mean, std) = (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]);
    (data, Preprocess::new(mean, std, (SIDE, SIDE), (SIDE, SIDE)).unwrap())
}

/// Squeezes `model` at the default settings, exports the result and checks
/// tract against the runner on a batch of two images.
fn assert_squeezed_export_agrees(name: &str, model: &Model, data: &Dataset, pre: &Preprocess) {
    let outcome = compress(model, data, pre, &Settings::default(), |_, _| {}).unwrap();
    let squeezed = outcome.model;
    assert!(squeezed.param_count() < model.param_count(), "{name}: nothing was removed");
    assert_eq!(squeezed.output_shape().units(), 1000);

    let onnx = to_onnx(&squeezed, &ExportOptions { batch: Batch::Dynamic, preprocess: None }).unwrap();
    let tract = TractModel::from_bytes(&onnx, 2).unwrap();
    let x = pre.batch(data, 0..2).unwrap();
    let (ours, theirs) = (squeezed.forward(&x).unwrap(), tract.run(&x).unwrap());
    assert_eq!(theirs.dims(), [2, 1000]);
    let diff = max_relative_difference(&ours, &theirs).unwrap();
    assert!(diff <= 1e-4, "{name}: relative difference {diff}");
}

#[test]
fn vgg16_bn_and_resnet50_at_224_are_squeezed_and_exported_as_tract_runs_them() {
    // More images than the widest Linear input below (64 hidden units), for full-rank statistics.
    let (data, pre) = images(72);
    let vgg = VggSpec {
        arch: "vgg16_bn".parse().unwrap(),
        widths: vec![8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64],
        in_channels: 3,
        input_side: SIDE,
        classifier: vec![64, 64, 1000],
    }
    .build(1)
    .unwrap();
    let resnet50 =
        ResNetSpec { classes: 1000, ..ResNetSpec::uniform("resnet50".parse().unwrap(), Stem::ImageNet, 8, 3, SIDE) }
            .build(2)
            .unwrap();
    assert_squeezed_export_agrees("vgg16_bn", &vgg, &data, &pre);
    assert_squeezed_export_agrees("resnet50", &resnet50, &data, &pre);
}
