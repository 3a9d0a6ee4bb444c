//! `squeeze export` end to end: the reference checkpoint exported, run by
//! tract on real test images with the preprocessing read back from the
//! file, and the failures that must leave no file behind.

mod common;

use std::path::Path;

use common::*;
use sq_data::{DatasetSpec, Preprocess, Split};
use sq_export::tract::{max_relative_difference, TractModel};
use sq_models::checkpoint::{self, StorageDtype};
use sq_models::eval::{predict, preprocess_for};
use sq_models::synthetic::VggSpec;
use sq_models::Arch;

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The names of the entries of `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Checkpoint metadata with a normalisation.
const NORMALISED: &[(&str, &str)] = &[("normalize_mean", "0.5"), ("normalize_std", "0.25")];

/// A small VGG checkpoint (1 x 8 x 8 input) with the given metadata.
fn small_checkpoint(dir: &Path, metadata: &[(&str, &str)]) -> std::path::PathBuf {
    let arch = Arch { stages: vec![1, 2], batch_norm: true };
    let spec = VggSpec { arch, widths: vec![5, 3, 6], in_channels: 1, input_side: 8, classifier: vec![7, 4] };
    let mut model = spec.build(2).unwrap();
    for (k, v) in metadata {
        model.metadata_mut().insert((*k).into(), (*v).into());
    }
    let path = dir.join("small.safetensors");
    checkpoint::save(&model, &path, StorageDtype::F32).unwrap();
    path
}

/// Test images compared between the engines ("the first 1,000").
const IMAGES: usize = 1000;

/// Runs the ONNX export `onnx` of `checkpoint` in tract on the first
/// [`IMAGES`] test images, preprocessed from the file's own metadata, and
/// checks that it predicts exactly what squeeze's runner predicts, with
/// logits within 1e-4 relative; returns the number of correct predictions.
fn assert_tract_predicts_like_squeeze(checkpoint: &Path, onnx: &Path) -> usize {
    const BATCH: usize = 100;
    let tract = TractModel::load(onnx, BATCH).unwrap();
    let meta = tract.metadata();
    // The file alone says how to feed it: rebuild the preprocessing from it.
    let (mean, std) = Preprocess::from_metadata(&meta.clone().into_iter().collect()).unwrap().unwrap();
    let from_file = Preprocess::with_pad(mean, std, meta["pad"].parse().unwrap()).unwrap();
    let border: f32 = meta["pad_value"].parse().unwrap();

    let model = checkpoint::load(checkpoint, None).unwrap();
    let mut test = DatasetSpec::FashionMnist(root().join("data/fashion-mnist")).load(Split::Test).unwrap();
    test.truncate(IMAGES);
    let eval_pre = preprocess_for(&model, &test, (None, Default::default())).unwrap();
    let (mut worst, mut correct) = (0f32, 0);
    for lo in (0..test.len()).step_by(BATCH) {
        let x = eval_pre.batch(&test, lo..lo + BATCH).unwrap();
        let x_file = from_file.batch(&test, lo..lo + BATCH).unwrap();
        assert_eq!(
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x_file.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(
            x_file.get(0).unwrap().get(0).unwrap().get(0).unwrap().get(0).unwrap().to_scalar::<f32>().unwrap(),
            border
        );

        let logits = tract.run(&x_file).unwrap();
        let theirs = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(theirs, predict(&model, &x).unwrap(), "images {lo}..{}", lo + BATCH);
        worst = worst.max(max_relative_difference(&model.forward(&x).unwrap(), &logits).unwrap());
        correct += theirs.iter().zip(&test.labels().unwrap()[lo..lo + BATCH]).filter(|(p, l)| p == l).count();
    }
    assert!(worst <= 1e-4, "max relative logit difference {worst}");
    println!("{IMAGES} images: identical predictions, max relative logit difference {worst:.2e}");

    let eval = json_stdout(&squeeze(&[
        "eval",
        "--model",
        path_str(checkpoint),
        "--dataset",
        "fashion-mnist",
        "--limit",
        &IMAGES.to_string(),
        "--json",
    ]));
    assert_eq!(eval["correct"], correct);
    correct
}

#[test]
fn exported_reference_predicts_like_squeeze_eval_on_the_first_1000_test_images() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("vgg16_bn.onnx");
    let reference = reference_model();
    let out = squeeze(&["export", "--model", path_str(&reference), "-o", path_str(&onnx)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("N x 1 x 32 x 32"));
    let meta = TractModel::load(&onnx, 1).unwrap().metadata().clone();
    assert_eq!(meta["arch"], "vgg16_bn");
    assert_eq!(meta["dataset"], "fashion-mnist");
    assert_eq!((meta["pad"].as_str(), meta["image_size"].as_str()), ("2", "28x28"));
    assert_tract_predicts_like_squeeze(&reference, &onnx);
}

#[test]
fn exported_squeezed_model_predicts_like_squeeze_eval_on_the_first_1000_test_images() {
    let dir = tempfile::tempdir().unwrap();
    let squeezed = dir.path().join("squeezed.safetensors");
    let run = squeeze(&[
        "compress",
        "--model",
        path_str(&reference_model()),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "200",
        "--tau",
        "0.99",
        "--round",
        "8",
        "--allow-rank-deficient",
        "-o",
        path_str(&squeezed),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let onnx = dir.path().join("squeezed.onnx");
    let out = squeeze(&["export", "--model", path_str(&squeezed), "-o", path_str(&onnx)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let correct = assert_tract_predicts_like_squeeze(&squeezed, &onnx);
    assert!(correct > 800, "the squeezed model should still classify: {correct} of {IMAGES}");
}

#[test]
fn fixed_batch_and_preprocessing_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_checkpoint(dir.path(), &[]);
    let onnx = dir.path().join("small.onnx");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--model", path_str(&model), "-o", path_str(&onnx)];
        args.extend(extra);
        squeeze(&args)
    };

    // No normalisation in the metadata and none given: refuse, write nothing.
    assert_clean_failure(&export(&[]), &["small.safetensors", "--mean"]);
    assert_clean_failure(&export(&["--mean", "0.5", "--std", "0.25"]), &["small.safetensors", "--image-size"]);
    assert_clean_failure(&export(&["--batch", "0"]), &["--batch"]);
    assert_eq!(listing(dir.path()), ["small.safetensors"]);

    let out = export(&["--mean", "0.5", "--std", "0.25", "--image-size", "4", "--batch", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tract = TractModel::load(&onnx, 3).unwrap();
    assert_eq!(tract.input_shape(), [3, 1, 8, 8]);
    let meta = tract.metadata();
    assert_eq!((meta["pad"].as_str(), meta["image_size"].as_str()), ("2", "4x4"));
    assert_eq!((meta["normalize_mean"].as_str(), meta["normalize_std"].as_str()), ("0.5", "0.25"));
    assert!(TractModel::load(&onnx, 2).is_err(), "a batch-3 file runs at batch 2");
}

#[test]
fn unwritable_output_fails_naming_the_file_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_checkpoint(dir.path(), NORMALISED);
    let onnx = dir.path().join("no-such-dir").join("small.onnx");
    let out = squeeze(&["export", "--model", path_str(&model), "-o", path_str(&onnx), "--image-size", "4"]);
    assert_clean_failure(&out, &["no-such-dir/small.onnx"]);
    assert_eq!(listing(dir.path()), ["small.safetensors"]);
}

#[test]
fn an_incomplete_checkpoint_fails_naming_the_missing_key_and_leaves_nothing() {
    // A ResNet stem and nothing else.
    let dir = tempfile::tempdir().unwrap();
    let resnet = dir.path().join("resnet.safetensors");
    let weight = vec![0u8; 64 * 9 * 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 1, 3, 3], &weight).unwrap();
    safetensors::serialize_to_file([("conv1.weight", view)], None, &resnet).unwrap();
    let onnx = dir.path().join("resnet.onnx");
    let out = squeeze(&["export", "--model", path_str(&resnet), "-o", path_str(&onnx)]);
    assert_clean_failure(&out, &["resnet.safetensors", "missing tensor `bn1.weight`"]);
    assert_eq!(listing(dir.path()), ["resnet.safetensors"]);
}

#[test]
fn refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_checkpoint(dir.path(), NORMALISED);
    let before = std::fs::read(&model).unwrap();
    // The same file reached through another path.
    let other = dir.path().join(".").join("small.safetensors");
    let out = squeeze(&["export", "--model", path_str(&model), "-o", path_str(&other), "--image-size", "4"]);
    assert_clean_failure(&out, &["-o", "would overwrite the input --model"]);
    assert_eq!(std::fs::read(&model).unwrap(), before);
    assert_eq!(listing(dir.path()), ["small.safetensors"]);
}
