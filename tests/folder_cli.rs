//! The commands on image folders: the reference model on Fashion-MNIST
//! written out as PNG files, and a compression on unlabelled images of
//! many sizes whose preprocessing the output records.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{arg, assert_clean_failure, json_stdout, reference_model, root, small_model, squeeze};
use image::{GrayImage, ImageBuffer, Rgb};
use sq_data::{DatasetSpec, Split};
use sq_models::synthetic::{ResNetSpec, Stem};
use sq_models::{BlockKind, ResNetArch};

/// Writes `split` of the shipped Fashion-MNIST as `dir/FOLDER/LABEL/INDEX.png`.
fn write_png_folder(dir: &Path, split: Split, folder: &str) {
    let data = DatasetSpec::FashionMnist(root().join("data/fashion-mnist")).load(split).unwrap();
    for (index, &label) in data.labels().unwrap().iter().enumerate() {
        let class = dir.join(folder).join(label.to_string());
        fs::create_dir_all(&class).unwrap();
        let image = GrayImage::from_raw(28, 28, data.pixels(index).unwrap().to_vec()).unwrap();
        image.save(class.join(format!("{index:05}.png"))).unwrap();
    }
}

#[test]
fn fashion_mnist_as_a_png_folder_evaluates_exactly_as_its_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    write_png_folder(dir.path(), Split::Test, "val");
    let dataset = format!("folder:{}", dir.path().display());
    let out = squeeze(&["eval", "--model", arg(&reference_model()), "--dataset", &dataset, "--json"]);
    let result = json_stdout(&out);
    // The IDX files give 9491 of 10000 (94.91%, data/README.md): the same pixels, the same answer.
    assert_eq!(result["images"], 10_000);
    assert_eq!(result["correct"], 9491, "{result}");
    assert!(result["top5"].as_f64().unwrap() > result["top1"].as_f64().unwrap());
}

/// `n` RGB PNGs of assorted sizes, all at least 40x40, under `dir`
/// (`labelled`: in ten class folders of `dir/train` and `dir/val`).
fn write_photos(dir: &Path, n: u32, labelled: bool) {
    for i in 0..n {
        let (w, h) = (40 + (i * 7) % 23, 40 + (i * 11) % 19);
        let image = ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 5 + i) as u8, (y * 3 * i) as u8, ((x ^ y) * 9) as u8]));
        let paths = if labelled {
            let class = i % 10;
            vec![dir.join(format!("train/{class}/{i}.png")), dir.join(format!("val/{class}/{i}.png"))]
        } else {
            vec![dir.join(format!("{i}.png"))]
        };
        for path in paths {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            image.save(path).unwrap();
        }
    }
}

#[test]
fn a_compression_on_unlabelled_images_records_its_preprocessing_so_the_output_needs_no_flags() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "small.safetensors");
    write_photos(&dir.path().join("unlabelled"), 40, false);
    write_photos(&dir.path().join("labelled"), 40, true);
    let (unlabelled, labelled) = (
        format!("images:{}", dir.path().join("unlabelled").display()),
        format!("folder:{}", dir.path().join("labelled").display()),
    );

    // Images of many sizes need a resize and a crop to reach the model's 32x32 input.
    let out = squeeze(&["eval", "--model", arg(&model), "--dataset", &labelled]);
    assert_clean_failure(&out, &["--resize", "--crop"]);
    // Unlabelled images cannot measure accuracy.
    let out = squeeze(&["eval", "--model", arg(&model), "--dataset", &unlabelled, "--split", "train"]);
    assert_clean_failure(&out, &["no labels", "folder:DIR", "--against"]);

    let squeezed = dir.path().join("squeezed.safetensors");
    let out = squeeze(&[
        "compress",
        "--model",
        arg(&model),
        "--dataset",
        &unlabelled,
        "--resize",
        "36",
        "--crop",
        "32",
        "--calib",
        "30",
        "--tau",
        "0.9",
        "-o",
        arg(&squeezed),
        "--json",
    ]);
    let manifest = json_stdout(&out);
    assert_eq!(manifest["calibration"]["order"], "shuffled (ChaCha8, seed 0)");
    let meta = sq_models::checkpoint::load(&squeezed, None).unwrap().metadata().clone();
    assert_eq!(meta.get("resize").map(String::as_str), Some("36"));
    assert_eq!(meta.get("center_crop").map(String::as_str), Some("32x32"));
    assert_eq!(meta.get("normalize_mean").map(String::as_str), Some("0.286"));

    // The output evaluates with no flags, the same as the original with the flags.
    let squeezed_eval = json_stdout(&squeeze(&["eval", "--model", arg(&squeezed), "--dataset", &labelled, "--json"]));
    assert_eq!(squeezed_eval["images"], 40);
    // Compared with the original, which records no preprocessing: the flags apply to it alone.
    let against_original = |dataset: &str, split: &str| {
        let eval = ["eval", "--model", arg(&squeezed), "--dataset", dataset, "--split", split];
        let original = ["--against", arg(&model), "--resize", "36", "--crop", "32", "--json"];
        json_stdout(&squeeze(&[&eval[..], &original].concat()))
    };
    let against = against_original(&labelled, "test");
    assert_eq!(against["images"], 40);
    // Unlabelled images measure the agreement with the original alone.
    let agreement = against_original(&unlabelled, "train");
    assert!(agreement["top1"].is_null(), "{agreement}");
    assert_eq!(agreement["images"], 40);
    assert!(agreement["agreement"].as_f64().unwrap() > 0.5, "{agreement}");
    // Given again, the flags would be ignored: an error.
    let out = squeeze(&["eval", "--model", arg(&squeezed), "--dataset", &labelled, "--resize", "36", "--crop", "32"]);
    assert_clean_failure(&out, &["records its resize and crop", "drop --resize"]);

    // Its ONNX export records the same preprocessing, for any runtime.
    let onnx = dir.path().join("squeezed.onnx");
    let out = squeeze(&["export", "--model", arg(&squeezed), "-o", arg(&onnx)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("resize 36, centre crop 32x32"), "{out:?}");
    let meta = sq_export::tract::TractModel::load(&onnx, 1).unwrap().metadata().clone();
    let entries = ["resize", "center_crop", "image_size", "pad"].map(|key| meta[key].as_str());
    assert_eq!(entries, ["36", "32x32", "32x32", "0"]);
    // The recorded crop is the images' size: another --image-size is refused.
    let other = dir.path().join("other.onnx");
    let out = squeeze(&["export", "--model", arg(&squeezed), "--image-size", "30", "-o", arg(&other)]);
    assert_clean_failure(&out, &["--image-size would have no effect", "32x32"]);
    assert!(!other.exists());
}

#[test]
fn a_resnet_runs_at_the_input_size_given_once_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    // A small ResNet that records no input size: it loads at its stem's default, 32x32.
    let spec = ResNetSpec::uniform(ResNetArch { kind: BlockKind::Basic, blocks: vec![1, 1] }, Stem::Cifar, 4, 3, 32);
    let metadata = BTreeMap::from([
        ("normalize_mean".to_string(), "0.5,0.5,0.5".to_string()),
        ("normalize_std".to_string(), "0.25,0.25,0.25".to_string()),
    ]);
    let model = sq_models::checkpoint::from_state_dict(spec.state_dict(1).unwrap(), metadata, None).unwrap();
    let original = dir.path().join("resnet.safetensors");
    sq_models::checkpoint::save(&model, &original, sq_models::checkpoint::StorageDtype::F32).unwrap();
    write_photos(&dir.path().join("photos"), 40, true);
    let photos = format!("folder:{}", dir.path().join("photos").display());
    let at_48 = ["--resize", "48", "--crop", "48"];

    // 48x48 images are too large for 32x32 inputs; the hint names the flag.
    let out = squeeze(&[&["eval", "--model", arg(&original), "--dataset", &photos][..], &at_48].concat());
    assert_clean_failure(&out, &["input 32x32 is smaller than the 48x48 images", "--input-size"]);
    let sized = ["--input-size", "48"];
    let eval = json_stdout(&squeeze(
        &[&["eval", "--model", arg(&original), "--dataset", &photos, "--json"][..], &at_48, &sized].concat(),
    ));
    assert_eq!(eval["images"], 40);

    let squeezed = dir.path().join("squeezed.safetensors");
    let compress = ["compress", "--model", arg(&original), "--dataset", &photos, "--calib", "30", "--tau", "0.9"];
    squeeze(&[&compress[..], &at_48, &sized, &["-o", arg(&squeezed), "--json"]].concat());
    let loaded = sq_models::checkpoint::load(&squeezed, None).unwrap();
    assert_eq!(loaded.metadata().get("input").map(String::as_str), Some("3x48x48"));
    // The squeezed model evaluates with no flags; beside the original, the size applies to the original only.
    let out = squeeze(&["eval", "--model", arg(&squeezed), "--dataset", &photos, "--json"]);
    assert_eq!(json_stdout(&out)["images"], 40);
    let against =
        [&["eval", "--model", arg(&squeezed), "--dataset", &photos, "--against", arg(&original)][..], &at_48, &sized];
    let out = squeeze(&[&against.concat()[..], &["--json"]].concat());
    assert!(json_stdout(&out)["agreement"].as_f64().unwrap() > 0.5);
    // Given again for the squeezed model alone, the size would be ignored: an error.
    let out = squeeze(&["eval", "--model", arg(&squeezed), "--dataset", &photos, "--input-size", "48"]);
    assert_clean_failure(&out, &["--input-size would have no effect", "3x48x48"]);
    // A VGG's classifier fixes its input size: its five pools take 32 (or 48) pixels to 1, 64 to 2.
    let vgg = small_model(dir.path(), "vgg.safetensors");
    let at_64 = ["--resize", "64", "--crop", "64", "--input-size", "64"];
    let out = squeeze(&[&["eval", "--model", arg(&vgg), "--dataset", &photos][..], &at_64].concat());
    assert_clean_failure(&out, &["--input-size 64x64 does not fit", "1x32x32"]);
}

#[test]
fn unreadable_files_stop_a_run_unless_skipped_and_then_each_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "small.safetensors");
    let photos = dir.path().join("photos");
    write_photos(&photos, 40, true);
    fs::write(photos.join("train/0/empty.png"), b"").unwrap();
    fs::write(photos.join("val/3/notes.jpg"), b"not an image").unwrap();
    let dataset = format!("folder:{}", photos.display());
    let eval = ["eval", "--model", arg(&model), "--dataset", &dataset, "--resize", "36", "--crop", "32"];

    let out = squeeze(&eval);
    assert_clean_failure(&out, &["notes.jpg", "not a JPEG or PNG"]);
    let out = squeeze(&[&eval[..], &["--skip-unreadable", "--json"]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped"), "{out:?}");
    let result = json_stdout(&out);
    assert_eq!(result["images"], 40);
    let skipped = result["unreadable_skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("notes.jpg"), "{result}");

    // Calibration draws the next readable file instead; the manifest lists what it passed over.
    let squeezed = dir.path().join("squeezed.safetensors");
    let compress = ["compress", "--model", arg(&model), "--dataset", &dataset, "--resize", "36", "--crop", "32"];
    let calibrate = ["--tau", "0.9", "--skip-unreadable", "-o", arg(&squeezed), "--json"];
    let manifest = json_stdout(&squeeze(&[&compress[..], &["--calib", "40"], &calibrate].concat()));
    assert_eq!(manifest["calibration"]["images"], 40);
    assert!(manifest["unreadable_skipped"][0]["file"].as_str().unwrap().ends_with("empty.png"), "{manifest}");
    // 41 files, 40 readable.
    let other = dir.path().join("other.safetensors");
    let out =
        squeeze(&[&compress[..], &["--calib", "41", "--tau", "0.9", "--skip-unreadable", "-o", arg(&other)]].concat());
    assert_clean_failure(&out, &["need 41 readable images", "1 of them do not decode"]);

    // Images held in memory are always readable: the flag would have no effect.
    let out = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--skip-unreadable"]);
    assert_clean_failure(&out, &["--skip-unreadable would have no effect"]);
}
