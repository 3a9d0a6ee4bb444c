//! The bad-input suite: every way a careless or hostile user can call
//! `squeeze` wrongly fails with a clear message naming the file (and the
//! tensor, layer or flag), a non-zero exit, before any long work, and
//! without leaving a partial or temporary file. One test per case; the
//! README's "Reliability" section lists them.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// `squeeze compress` on `model` with `--calib 32` and the extra flags.
fn compress(model: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["compress", "--model", arg(model), "--dataset", "fashion-mnist", "--calib", "32"];
    args.extend_from_slice(extra);
    squeeze(&args)
}

/// A file that is not a checkpoint: a command that reports anything else
/// about a run given it as `--model` has not read it yet.
fn not_a_model(dir: &Path) -> PathBuf {
    let path = dir.join("garbage.safetensors");
    std::fs::write(&path, b"not a checkpoint").unwrap();
    path
}

// 1. Outputs never overwrite inputs or each other.

#[test]
fn compress_refuses_an_output_whose_manifest_is_the_output_itself() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("out.json");
    let run = compress(&model, &["-o", arg(&out)]);
    assert_clean_failure(&run, &["-o", "manifest", "out.json", "same file"]);
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

#[test]
fn compress_refuses_a_manifest_that_would_overwrite_the_model() {
    let dir = tempfile::tempdir().unwrap();
    // The user's only copy of a model, oddly named m.json.
    let model = small_model(dir.path(), "m.json");
    let before = std::fs::read(&model).unwrap();
    let run = compress(&model, &["-o", arg(&dir.path().join("m.safetensors"))]);
    assert_clean_failure(&run, &["manifest", "m.json", "--model"]);
    assert_eq!(std::fs::read(&model).unwrap(), before);
    assert_eq!(dir_entries(dir.path()), ["m.json"]);
}

#[test]
fn compress_refuses_a_manifest_that_would_overwrite_the_widths_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let widths = dir.path().join("w.json");
    std::fs::write(&widths, r#"{"features.0": 4}"#).unwrap();
    let run = compress(&model, &["--widths", arg(&widths), "-o", arg(&dir.path().join("w.safetensors"))]);
    assert_clean_failure(&run, &["manifest", "w.json", "--widths"]);
    assert_eq!(std::fs::read_to_string(&widths).unwrap(), r#"{"features.0": 4}"#);
}

#[test]
fn compress_refuses_to_write_over_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let before = std::fs::read(&model).unwrap();
    for force in [false, true] {
        let mut extra = vec!["-o", arg(&model)];
        if force {
            extra.push("--force");
        }
        let run = compress(&model, &extra);
        assert_clean_failure(&run, &["-o", "would overwrite the input --model", "m.safetensors"]);
        assert_eq!(std::fs::read(&model).unwrap(), before);
    }
}

#[cfg(unix)]
#[test]
fn compress_refuses_an_output_that_is_the_input_under_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let before = std::fs::read(&model).unwrap();
    let sym = dir.path().join("sym.safetensors");
    std::os::unix::fs::symlink(&model, &sym).unwrap();
    let hard = dir.path().join("hard.safetensors");
    std::fs::hard_link(&model, &hard).unwrap();
    // Through a `..` detour, a symbolic link and a hard link: the same file.
    let detour = dir.path().join("sub");
    std::fs::create_dir(&detour).unwrap();
    for out in [detour.join("../m.safetensors"), sym, hard] {
        let run = compress(&model, &["-o", arg(&out), "--force"]);
        assert_clean_failure(&run, &["would overwrite the input --model"]);
        assert_eq!(std::fs::read(&model).unwrap(), before);
    }
}

#[cfg(unix)]
#[test]
fn no_output_may_overwrite_a_dataset_file() {
    // A dataset directory of symbolic links to the real files: were the
    // check to fail, only a link would be replaced.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(root().join("data/fashion-mnist")).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let model = small_model(dir.path(), "m.safetensors");
    let images = data.join("train-images-idx3-ubyte.gz");
    let dataset = format!("fashion-mnist:{}", data.display());
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        &dataset,
        "--calib",
        "32",
        "--save-stats",
        arg(&images),
        "--force",
    ]);
    assert_clean_failure(&run, &["--save-stats", "train-images-idx3-ubyte.gz", "would overwrite the input --dataset"]);
    assert!(std::fs::symlink_metadata(&images).unwrap().file_type().is_symlink());
}

#[test]
fn analyze_refuses_two_outputs_that_are_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let same = dir.path().join("report.svg");
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--json",
        arg(&same),
        "--plot",
        arg(&same),
    ]);
    assert_clean_failure(&run, &["--json and --plot are the same file", "report.svg"]);
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

#[test]
fn analyze_refuses_to_write_statistics_over_the_statistics_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "32",
        "--save-stats",
        arg(&stats),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let before = std::fs::read(&stats).unwrap();
    for (flag, target) in [("--json", &stats), ("--plot", &model)] {
        let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&stats), flag, arg(target), "--force"]);
        assert_clean_failure(&run, &[flag, "would overwrite the input"]);
    }
    assert_eq!(std::fs::read(&stats).unwrap(), before);
}

#[test]
fn an_existing_output_is_kept_without_force_and_replaced_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("out.safetensors");
    let manifest = dir.path().join("out.json");
    std::fs::write(&manifest, b"an unrelated file the user cares about").unwrap();
    let run = compress(&model, &["-o", arg(&out)]);
    assert_clean_failure(&run, &["out.json", "already exists", "--force"]);
    assert_eq!(std::fs::read(&manifest).unwrap(), b"an unrelated file the user cares about");
    assert!(!out.exists());

    let run = compress(&model, &["-o", arg(&out), "--force", "--allow-rank-deficient"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(written["bytes"].as_u64().unwrap(), std::fs::metadata(&out).unwrap().len());
    assert_eq!(dir_entries(dir.path()), ["m.safetensors", "out.json", "out.safetensors"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for path in [&out, &manifest] {
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o644, "{}", path.display());
        }
    }
}

#[test]
fn compress_help_states_the_overwrite_policy() {
    for command in ["compress", "analyze"] {
        let run = squeeze(&[command, "--help"]);
        let help = String::from_utf8_lossy(&run.stdout);
        assert!(help.contains("--force") && help.contains("never overwritten"), "{command}: {help}");
    }
}

// 2. Outputs are validated before the work and written atomically.

#[test]
fn a_missing_output_directory_fails_before_reading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no/such/dir/out.safetensors");
    let run = compress(&not_a_model(dir.path()), &["-o", arg(&out)]);
    let stderr = assert_clean_failure(&run, &["-o", "no/such/dir", "cannot be used"]);
    assert!(!stderr.contains("not a valid safetensors"), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_read_only_output_directory_fails_before_reading_the_model() {
    // /proc refuses new files even to root, unlike a chmod-ed directory.
    let dir = tempfile::tempdir().unwrap();
    let run = compress(&not_a_model(dir.path()), &["-o", "/proc/squeeze-out.safetensors"]);
    let stderr = assert_clean_failure(&run, &["-o", "/proc/squeeze-out.safetensors"]);
    assert!(!stderr.contains("not a valid safetensors"), "{stderr}");
}

#[test]
fn a_directory_as_output_fails_before_reading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken.safetensors");
    std::fs::create_dir(&taken).unwrap();
    let run = compress(&not_a_model(dir.path()), &["-o", arg(&taken), "--force"]);
    let stderr = assert_clean_failure(&run, &["-o", "taken.safetensors", "directory"]);
    assert!(!stderr.contains("not a valid safetensors"), "{stderr}");
    assert!(taken.is_dir());
}

#[test]
fn an_unsupported_plot_extension_fails_before_reading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("curves.pdf");
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&not_a_model(dir.path())),
        "--dataset",
        "fashion-mnist",
        "--plot",
        arg(&plot),
    ]);
    let stderr = assert_clean_failure(&run, &["--plot", "curves.pdf", ".svg or .png"]);
    assert!(!stderr.contains("not a valid safetensors"), "{stderr}");
    assert_eq!(dir_entries(dir.path()), ["garbage.safetensors"]);
}

#[test]
fn analyze_writes_all_of_its_outputs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let (json, plot, stats) = (dir.path().join("a.json"), dir.path().join("a.png"), dir.path().join("s.safetensors"));
    let args = |calib: &'static str| {
        vec![
            "analyze".to_string(),
            "--model".into(),
            arg(&model).into(),
            "--dataset".into(),
            "fashion-mnist".into(),
            "--calib".into(),
            calib.into(),
            "--json".into(),
            arg(&json).into(),
            "--plot".into(),
            arg(&plot).into(),
            "--save-stats".into(),
            arg(&stats).into(),
        ]
    };
    let run = squeeze(&args("32").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(dir_entries(dir.path()), ["a.json", "a.png", "m.safetensors", "s.safetensors"]);
}

// 3. Too little calibration data is an error, never a silent garbage model.

#[test]
fn too_few_calibration_images_are_refused_before_any_work_and_say_how_many_are_needed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    // The reference VGG-16: features.40 reads 512 channels at 1x1, so 1 image is 1 sample.
    let run = squeeze(&[
        "compress",
        "--model",
        arg(&reference_model()),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "1",
        "--tau",
        "0.99",
        "-o",
        arg(&out),
    ]);
    assert_clean_failure(
        &run,
        &["features.40 (512 units) gets 1 samples", "at least 513 images", "--calib 513", "--allow-rank-deficient"],
    );
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn allow_rank_deficient_goes_on_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("out.safetensors");
    // The hidden linear layer has 16 units: 8 images give 8 samples.
    let run = squeeze(&[
        "compress",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "8",
        "-o",
        arg(&out),
        "--allow-rank-deficient",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("warning") && stderr.contains("classifier.0 (16 units) gets 8 samples"), "{stderr}");
}

#[test]
fn analyze_of_too_few_samples_in_statistics_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "4",
        "--save-stats",
        arg(&stats),
        "--allow-rank-deficient",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&stats)]);
    assert_clean_failure(&run, &["classifier.0 (16 units) gets 4 samples", "at least 17 images"]);
}

#[test]
fn calib_above_the_dataset_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("out.safetensors");
    let run = squeeze(&[
        "compress",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "60001",
        "-o",
        arg(&out),
    ]);
    assert_clean_failure(&run, &["--calib 60001", "60000 images"]);
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

#[test]
fn widths_that_do_not_fit_the_model_are_errors_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let producers = [
        "features.0",
        "features.4",
        "features.8",
        "features.11",
        "features.15",
        "features.18",
        "features.22",
        "features.25",
        "classifier.0",
    ];
    let all = |first: u64| {
        let mut w = serde_json::Map::new();
        for (i, p) in producers.iter().enumerate() {
            w.insert(p.to_string(), (if i == 0 { first } else { 4 }).into());
        }
        w
    };
    let cases = [
        (serde_json::Value::Object(all(9)), vec!["features.0", "width 9", "8 units"]),
        (serde_json::Value::Object(all(0)), vec!["features.0", "width 0"]),
        (
            {
                let mut w = all(4);
                w.insert("features.99".into(), 4.into());
                serde_json::Value::Object(w)
            },
            vec!["features.99", "not a producer"],
        ),
        (
            {
                let mut w = all(4);
                w.remove("features.25");
                serde_json::Value::Object(w)
            },
            vec!["features.25"],
        ),
    ];
    for (i, (widths, needles)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("w{i}.json"));
        std::fs::write(&file, widths.to_string()).unwrap();
        let out = dir.path().join(format!("o{i}.safetensors"));
        let run = compress(&model, &["--widths", arg(&file), "-o", arg(&out)]);
        let mut needles = needles;
        needles.push(file.file_name().unwrap().to_str().unwrap());
        assert_clean_failure(&run, &needles);
        assert!(!out.exists());
    }
}

// 4. Non-finite numbers are rejected where they enter.

/// The small model with one weight of `layer` (0 = first conv) set to `value`.
fn model_with_value(dir: &Path, name: &str, value: f32) -> PathBuf {
    let path = small_model(dir, name);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(k, v)| (k, v.shape().to_vec(), v.data().to_vec())).collect();
    let (_, _, data) = tensors.iter_mut().find(|(k, _, _)| k == "features.4.weight").unwrap();
    data[..4].copy_from_slice(&value.to_le_bytes());
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, s, d)| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    path
}

#[test]
fn nan_in_a_checkpoint_is_an_error_naming_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    for value in [f32::NAN, f32::INFINITY] {
        let model = model_with_value(dir.path(), "nan.safetensors", value);
        let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
        assert_clean_failure(&run, &["nan.safetensors", "features.4.weight", "NaN or infinite"]);
    }
}

#[test]
fn weights_that_overflow_float32_fail_eval_and_capture_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_value(dir.path(), "huge.safetensors", 3e38);
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
    assert_clean_failure(&run, &["NaN or infinite", "overflow"]);
    let out = dir.path().join("out.safetensors");
    let run = compress(&model, &["-o", arg(&out)]);
    assert_clean_failure(&run, &["layer `features.", "NaN or infinite"]);
    let run = squeeze(&["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--calib", "32"]);
    assert_clean_failure(&run, &["the consumer of `features.", "NaN or infinite"]);
    assert_eq!(dir_entries(dir.path()), ["huge.safetensors"]);
}

#[test]
fn nan_in_a_statistics_file_is_an_error_naming_the_file_and_layer() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "32",
        "--save-stats",
        arg(&stats),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mut loaded = sq_capture::Stats::load(&stats).unwrap().into_layers();
    let layer = &mut loaded[2];
    let mut sum = layer.moments.sum().to_vec();
    sum[0] = f64::NAN;
    layer.moments = sq_linalg::Moments::from_parts(layer.moments.count(), sum, layer.moments.gram()).unwrap();
    let bad = dir.path().join("nan-stats.safetensors");
    sq_capture::Stats::new(loaded).save(&bad).unwrap();
    let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&bad)]);
    assert_clean_failure(&run, &["nan-stats.safetensors", "features.8.sum", "NaN or infinite"]);
}

// 5. Shapes that make no sense are errors.

/// Writes a checkpoint of the small model with its tensors edited by `edit`.
fn edited_model(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> PathBuf {
    let path = small_model(dir, name);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            (k, v.shape().to_vec(), data)
        })
        .collect();
    edit(&mut tensors);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.into_iter().map(|(k, s, d)| (k, s, d.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<_> = raw
        .iter()
        .map(|(k, s, d)| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    path
}

fn set_tensor(tensors: &mut [(String, Vec<usize>, Vec<f32>)], key: &str, shape: Vec<usize>) {
    let n = shape.iter().product();
    let t = tensors.iter_mut().find(|(k, _, _)| k == key).unwrap();
    *t = (key.to_string(), shape, vec![0.01; n]);
}

#[test]
fn a_layer_with_zero_units_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = edited_model(dir.path(), "zero.safetensors", |t| {
        set_tensor(t, "classifier.3.weight", vec![10, 0]);
        set_tensor(t, "classifier.0.weight", vec![0, 8]);
        set_tensor(t, "classifier.0.bias", vec![0]);
    });
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
    let stderr = assert_clean_failure(&run, &["zero.safetensors", "classifier.0", "at least one unit", "0x8"]);
    assert!(!stderr.contains("--arch"), "{stderr}");
}

#[test]
fn a_classifier_for_another_number_of_classes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = edited_model(dir.path(), "five.safetensors", |t| {
        set_tensor(t, "classifier.3.weight", vec![5, 16]);
        set_tensor(t, "classifier.3.bias", vec![5]);
    });
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
    assert_clean_failure(&run, &["5 outputs", "10 classes"]);
    let run = squeeze(&["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--calib", "32"]);
    assert_clean_failure(&run, &["5 outputs", "10 classes"]);
}

#[test]
fn a_classifier_implying_another_image_size_is_an_error() {
    // classifier.0 reading 8 x 256 x 256 features implies 8192x8192 inputs.
    let dir = tempfile::tempdir().unwrap();
    let model = edited_model(dir.path(), "huge-input.safetensors", |t| {
        set_tensor(t, "classifier.0.weight", vec![16, 8 * 256 * 256]);
    });
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
    assert_clean_failure(&run, &["8192x8192", "28x28"]);
}

#[test]
fn unknown_tensors_in_a_checkpoint_are_listed_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = edited_model(dir.path(), "extra.safetensors", |t| {
        t.push(("features.0.weight_mask".into(), vec![2], vec![1.0, 1.0]));
        t.push(("classifier.0.running_mean".into(), vec![16], vec![0.0; 16]));
    });
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
    assert_clean_failure(&run, &["extra.safetensors", "features.0.weight_mask", "classifier.0.running_mean"]);
    // A BatchNorm's training counter is skipped only where there is that BatchNorm.
    let model = edited_model(dir.path(), "counter.safetensors", |t| {
        t.push(("features.99.num_batches_tracked".into(), vec![1], vec![0.0]));
    });
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "8"]);
    assert_clean_failure(&run, &["counter.safetensors", "features.99.num_batches_tracked"]);
}

#[test]
fn zero_limit_zero_batch_and_zero_calib_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    for (command, flag) in [("eval", "--limit"), ("eval", "--batch"), ("analyze", "--calib"), ("analyze", "--batch")] {
        let run = squeeze(&[command, "--model", arg(&model), "--dataset", "fashion-mnist", flag, "0"]);
        assert_clean_failure(&run, &[flag, "at least 1"]);
    }
}

#[test]
fn empty_and_zero_sized_datasets_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let write_idx = |dir: &Path, name: &str, magic: u32, dims: &[u32]| {
        let mut bytes = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    write_idx(&empty, "t10k-images-idx3-ubyte", 0x803, &[0, 28, 28]);
    write_idx(&empty, "t10k-labels-idx1-ubyte", 0x801, &[0]);
    let flat = dir.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    write_idx(&flat, "t10k-images-idx3-ubyte", 0x803, &[3, 0, 0]);
    let mut labels = 0x801u32.to_be_bytes().to_vec();
    labels.extend(3u32.to_be_bytes());
    labels.extend([1, 2, 3]);
    std::fs::write(flat.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    for (data, needles) in
        [(&empty, ["t10k-labels-idx1-ubyte", "no items"]), (&flat, ["t10k-images-idx3-ubyte", "zero side"])]
    {
        let spec = format!("fashion-mnist:{}", data.display());
        let run = squeeze(&["eval", "--model", arg(&model), "--dataset", &spec]);
        assert_clean_failure(&run, &needles);
    }
}

#[test]
fn duplicate_taus_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let run = squeeze(&["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--taus", "0.9,0.99,0.99"]);
    assert_clean_failure(&run, &["--taus", "0.99 twice"]);
}

// 6. Statistics files.

/// Captures statistics of `model` on the first `calib` training images.
fn save_stats(model: &Path, calib: &str, out: &Path) {
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        calib,
        "--save-stats",
        arg(out),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn merging_statistics_with_themselves_or_a_copy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    save_stats(&model, "32", &stats);
    let copy = dir.path().join("copy.safetensors");
    std::fs::copy(&stats, &copy).unwrap();
    // The same images captured again, in other batches.
    let again = dir.path().join("again.safetensors");
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "32",
        "--batch",
        "5",
        "--save-stats",
        arg(&again),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let analyze = |files: &[&Path]| {
        let mut args = vec!["analyze", "--model", arg(&model), "--stats"];
        args.extend(files.iter().map(|f| arg(f)));
        squeeze(&args)
    };
    assert_clean_failure(&analyze(&[&stats, &stats]), &["--stats", "s.safetensors", "same file", "counted twice"]);
    assert_clean_failure(&analyze(&[&stats, &copy]), &["copy.safetensors", "same images", "twice"]);
    // A second capture of the same images is the same shard too.
    assert_clean_failure(&analyze(&[&stats, &again]), &["again.safetensors", "same images"]);
}

#[test]
fn merging_statistics_of_overlapping_captures_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    // The first 32 and the first 40 training images: 32 of them in both.
    let (first, second) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    save_stats(&model, "32", &first);
    save_stats(&model, "40", &second);
    let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&first), arg(&second)]);
    assert_clean_failure(&run, &["b.safetensors", "32 of their images", "twice"]);
}

#[test]
fn merging_statistics_of_different_models_or_layers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    save_stats(&model, "32", &stats);
    // Same layers, other weights.
    let other = model_with_value(dir.path(), "other.safetensors", 0.5);
    let other_stats = dir.path().join("o.safetensors");
    save_stats(&other, "40", &other_stats);
    let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&stats), arg(&other_stats)]);
    assert_clean_failure(&run, &["o.safetensors", "different models"]);
    // Other layers.
    let narrow = dir.path().join("narrow.safetensors");
    let mut m = sq_models::synthetic::VggSpec::uniform("vgg11_bn".parse().unwrap(), 6, 1, 32, 16).build(3).unwrap();
    m.metadata_mut().insert("normalize_mean".into(), "0.286".into());
    m.metadata_mut().insert("normalize_std".into(), "0.353".into());
    sq_models::checkpoint::save(&m, &narrow, Default::default()).unwrap();
    let narrow_stats = dir.path().join("n.safetensors");
    save_stats(&narrow, "40", &narrow_stats);
    let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&stats), arg(&narrow_stats)]);
    assert_clean_failure(&run, &["n.safetensors", "cannot merge"]);
}

#[test]
fn statistics_must_match_the_model_given_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    save_stats(&model, "32", &stats);
    let other = model_with_value(dir.path(), "other.safetensors", 0.5);
    let run = squeeze(&["analyze", "--model", arg(&other), "--stats", arg(&stats)]);
    assert_clean_failure(&run, &["s.safetensors", "other.safetensors", "another model"]);
    let run = squeeze(&["analyze", "--model", arg(&reference_model()), "--stats", arg(&stats)]);
    assert_clean_failure(&run, &["s.safetensors", "features.40"]);
}

// 7. Bounded reads.

#[test]
fn an_idx_header_claiming_gigabytes_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let mut labels = 0x801u32.to_be_bytes().to_vec();
    labels.extend(3u32.to_be_bytes());
    labels.extend([1, 2, 3]);
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), &labels).unwrap();
    // 4 billion 28x28 images claimed by a 16-byte header: beyond the bound.
    let mut images = 0x803u32.to_be_bytes().to_vec();
    for d in [u32::MAX, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), &images).unwrap();
    let spec = format!("fashion-mnist:{}", dir.path().display());
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", &spec]);
    assert_clean_failure(&run, &["t10k-images-idx3-ubyte", "more than the 1073741824"]);
    // 100,000 images (78 MB) claimed by a small gzip file that cannot hold them.
    let mut images = 0x803u32.to_be_bytes().to_vec();
    for d in [100_000u32, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    images.extend(vec![0u8; 1000]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &images).unwrap();
    std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    let run = squeeze(&["eval", "--model", arg(&model), "--dataset", &spec]);
    assert_clean_failure(&run, &["t10k-images-idx3-ubyte.gz", "can hold decompressed"]);
}

// 9. Errors are printed once.

#[test]
fn a_missing_model_or_a_directory_as_model_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    for (model, reason) in
        [(dir.path().join("missing.safetensors"), "no such file"), (dir.path().to_path_buf(), "is a directory")]
    {
        for command in ["eval", "analyze"] {
            let run = squeeze(&[command, "--model", arg(&model), "--dataset", "fashion-mnist"]);
            let stderr = assert_clean_failure(&run, &["--model", reason]);
            assert_eq!(stderr.matches(arg(&model)).count(), 1, "{stderr}");
            assert_eq!(stderr.to_lowercase().matches(reason).count(), 1, "{stderr}");
        }
    }
}

// 10. Every command guards its outputs the same way, `export` included.

/// `squeeze export` of `model` (28x28 images, as the small model reads) to `out` with the extra flags.
fn export(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["export", "--model", arg(model), "-o", arg(out), "--image-size", "28"];
    args.extend_from_slice(extra);
    squeeze(&args)
}

#[test]
fn export_keeps_an_existing_output_without_force_and_replaces_it_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("m.onnx");
    std::fs::write(&out, b"the user's other file").unwrap();
    assert_clean_failure(&export(&model, &out, &[]), &["-o", "m.onnx", "already exists", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"the user's other file");
    let run = export(&model, &out, &["--force"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_ne!(std::fs::read(&out).unwrap(), b"the user's other file");
    assert_eq!(dir_entries(dir.path()), ["m.onnx", "m.safetensors"]);
    // The input, never, --force or not.
    let before = std::fs::read(&model).unwrap();
    assert_clean_failure(&export(&model, &model, &["--force"]), &["-o", "would overwrite the input --model"]);
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

#[test]
fn export_checks_its_output_before_reading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = not_a_model(dir.path());
    for out in [dir.path().join("missing/m.onnx"), dir.path().to_path_buf()] {
        let stderr = assert_clean_failure(&export(&garbage, &out, &["--force"]), &["-o"]);
        assert!(!stderr.contains("not a valid safetensors"), "{stderr}");
    }
}

#[cfg(unix)]
#[test]
fn no_command_replaces_a_fifo_even_with_force() {
    use std::os::unix::fs::FileTypeExt as _;
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let fifo = dir.path().join("out.onnx");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let runs = [
        export(&model, &fifo, &["--force"]),
        compress(&model, &["-o", arg(&fifo), "--force"]),
        squeeze(&["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--json", arg(&fifo), "--force"]),
    ];
    for run in &runs {
        let stderr = assert_clean_failure(run, &["out.onnx", "named pipe", "not a regular file"]);
        assert!(!stderr.contains("capturing"), "{stderr}");
    }
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[cfg(unix)]
#[test]
fn a_file_size_limit_fails_the_save_cleanly_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vgg.onnx");
    // A 60 MB export under a file-size limit of about 1 MB: SIGXFSZ would kill the process.
    let script = format!(
        "ulimit -f 2048 && exec {} export --model {} -o {}",
        env!("CARGO_BIN_EXE_squeeze"),
        arg(&reference_model()),
        arg(&out)
    );
    let run = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_clean_failure(&run, &["vgg.onnx", "nothing was written"]);
    assert!(run.status.code().is_some(), "killed by a signal: {:?}", run.status);
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_temporary_file_left_by_a_killed_run_is_removed_by_the_next_one_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stale = dir.path().join(".m.onnx.sq4000000000.Ab12Cd.tmp");
    std::fs::write(&stale, b"half an export").unwrap();
    let run = export(&model, &dir.path().join("m.onnx"), &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains(".m.onnx.sq4000000000.Ab12Cd.tmp"));
    assert_eq!(dir_entries(dir.path()), ["m.onnx", "m.safetensors"]);
}

// 11. Every input is a regular file, read bounded.

/// Runs squeeze with `args`, failing the test instead of hanging if it
/// does not finish within 60 seconds.
fn squeeze_within_a_minute(args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_squeeze"))
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("squeeze {args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn every_input_flag_refuses_a_fifo_or_a_device_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let fifo = dir.path().join("input.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = dir.path().join("out.safetensors");
    for bad in [arg(&fifo), "/dev/zero"] {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("--model", vec!["eval", "--model", bad, "--dataset", "fashion-mnist"]),
            ("--against", vec!["eval", "--model", arg(&model), "--against", bad, "--dataset", "fashion-mnist"]),
            ("--model", vec!["export", "--model", bad, "-o", arg(&out)]),
            (
                "--widths",
                vec![
                    "compress",
                    "--model",
                    arg(&model),
                    "--dataset",
                    "fashion-mnist",
                    "--widths",
                    bad,
                    "-o",
                    arg(&out),
                ],
            ),
            ("--stats", vec!["analyze", "--model", arg(&model), "--stats", bad]),
        ];
        for (flag, args) in cases {
            let run = squeeze_within_a_minute(&args);
            assert_clean_failure(&run, &[flag, bad, "not a regular file"]);
        }
    }
    assert_eq!(dir_entries(dir.path()), ["input.fifo", "m.safetensors"]);
}

#[cfg(unix)]
#[test]
fn a_dataset_file_that_is_a_fifo_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    for entry in std::fs::read_dir(root().join("data/fashion-mnist")).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::remove_file(&labels).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&labels).status().unwrap().success());
    let spec = format!("fashion-mnist:{}", dir.path().display());
    let run = squeeze_within_a_minute(&["eval", "--model", arg(&model), "--dataset", &spec]);
    assert_clean_failure(&run, &["--dataset", "t10k-labels-idx1-ubyte.gz", "named pipe"]);
    let out = dir.path().join("out.safetensors");
    let run = squeeze_within_a_minute(&["compress", "--model", arg(&model), "--dataset", &spec, "-o", arg(&out)]);
    assert_clean_failure(&run, &["--dataset", "t10k-labels-idx1-ubyte.gz", "named pipe"]);
}

#[test]
fn a_checkpoint_padded_or_cut_short_is_refused_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let len = std::fs::metadata(&model).unwrap().len();
    // Padded to 2 GB (sparse): refused from its header, without reading the 2 GB.
    let padded = dir.path().join("padded.safetensors");
    std::fs::copy(&model, &padded).unwrap();
    std::fs::OpenOptions::new().write(true).open(&padded).unwrap().set_len(2 << 30).unwrap();
    let run = squeeze_within_a_minute(&["eval", "--model", arg(&padded), "--dataset", "fashion-mnist"]);
    assert_clean_failure(&run, &["padded.safetensors", "data after its last tensor"]);
    let short = dir.path().join("short.safetensors");
    std::fs::write(&short, &std::fs::read(&model).unwrap()[..len as usize - 10]).unwrap();
    let run = squeeze(&["eval", "--model", arg(&short), "--dataset", "fashion-mnist"]);
    assert_clean_failure(&run, &["short.safetensors", "truncated"]);
}

// 12. A flag that would have no effect is an error, never recorded as applied.

#[test]
fn compress_refuses_flags_that_would_have_no_effect_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("out.safetensors");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--mode", "one-pass", "--repair"], &["--repair", "--mode sequential"]),
        (&["--mode", "one-pass", "--target", "original"], &["--target original", "one-pass"]),
        (&["--mode", "one-pass", "--target", "current"], &["--target current", "one-pass"]),
        (&["--compensate", "none", "--target", "original"], &["--target original", "--compensate none"]),
        (&["--allocate", "variance"], &["--allocate", "no effect", "--budget"]),
        (&["--val", "100"], &["--val", "no effect"]),
        (&["--budget", "params:2x", "--allocate", "uniform", "--val", "100"], &["--val", "uniform"]),
        (&["--stream", "tau:0.9"], &["--stream", "no residual streams"]),
        (&["--round", "4096"], &["--round 4096", "every unit would be kept"]),
        (&["--mean", "0.5", "--std", "0.5"], &["normalisation", "drop --mean and --std"]),
    ];
    for (flags, needles) in cases {
        let mut extra = vec!["-o", arg(&out)];
        extra.extend_from_slice(flags);
        let stderr = assert_clean_failure(&compress(&model, &extra), needles);
        assert!(!stderr.contains("squeezing"), "{flags:?} did work before failing: {stderr}");
    }
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

#[test]
fn residual_streams_refuse_the_settings_they_do_not_follow() {
    let dir = tempfile::tempdir().unwrap();
    let resnet = root().join("data/resnet18_fashion_mnist.safetensors");
    let out = dir.path().join("out.safetensors");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--stream", "tau:0.9", "--mode", "one-pass"], &["--mode one-pass", "residual streams"]),
        (&["--stream", "tau:0.9", "--objective", "output"], &["--objective output", "residual streams"]),
        (&["--stream", "tau:0.9", "--select", "l1"], &["--select l1", "residual streams"]),
        (&["--stream", "width:1000"], &["--stream width:1000", "wider than the residual stream"]),
        (&["--stream", "fraction:1"], &["--stream", "every channel"]),
    ];
    for (flags, needles) in cases {
        let mut extra = vec!["-o", arg(&out)];
        extra.extend_from_slice(flags);
        assert_clean_failure(&compress(&resnet, &extra), needles);
    }
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn analyze_of_statistics_refuses_the_flags_of_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    save_stats(&model, "32", &stats);
    for flags in
        [&["--calib", "10"][..], &["--batch", "8"], &["--dataset", "fashion-mnist"], &["--mean", "0.5", "--std", "0.5"]]
    {
        let mut args = vec!["analyze", "--model", arg(&model), "--stats", arg(&stats), "--allow-rank-deficient"];
        args.extend_from_slice(flags);
        assert_clean_failure(&squeeze(&args), &[flags[0], "no effect with --stats"]);
    }
    let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&stats), "--allow-rank-deficient"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn export_refuses_a_normalisation_its_checkpoint_already_records() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let run = export(&model, &dir.path().join("m.onnx"), &["--mean", "0.5", "--std", "0.5"]);
    assert_clean_failure(&run, &["m.safetensors", "records its normalisation", "drop --mean and --std"]);
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

// 13. `eval --against` compares each model as it is meant to be fed.

#[test]
fn eval_against_preprocesses_the_reference_with_its_own_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    // The same weights, fed another normalisation: the two must not agree exactly.
    let mut other = sq_models::checkpoint::load(&model, None).unwrap();
    other.metadata_mut().insert("normalize_mean".into(), "0.9".into());
    other.metadata_mut().insert("normalize_std".into(), "0.1".into());
    let reference = dir.path().join("other.safetensors");
    sq_models::checkpoint::save(&other, &reference, Default::default()).unwrap();
    let compare = |reference: &Path| {
        json_stdout(&squeeze(&[
            "eval",
            "--model",
            arg(&model),
            "--against",
            arg(reference),
            "--dataset",
            "fashion-mnist",
            "--limit",
            "64",
            "--json",
        ]))
    };
    assert_eq!(compare(&model)["mean_kl"].as_f64().unwrap(), 0.0);
    assert!(compare(&reference)["mean_kl"].as_f64().unwrap() > 1e-3);
}

#[test]
fn eval_against_a_reference_of_another_class_count_fails_before_any_image() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let mut spec = sq_models::synthetic::VggSpec::uniform("vgg11_bn".parse().unwrap(), 8, 1, 32, 16);
    spec.classifier = vec![16, 5];
    let mut five = spec.build(3).unwrap();
    five.metadata_mut().insert("normalize_mean".into(), "0.286".into());
    five.metadata_mut().insert("normalize_std".into(), "0.353".into());
    let reference = dir.path().join("five.safetensors");
    sq_models::checkpoint::save(&five, &reference, Default::default()).unwrap();
    let run = squeeze(&["eval", "--model", arg(&model), "--against", arg(&reference), "--dataset", "fashion-mnist"]);
    let stderr = assert_clean_failure(&run, &["--against", "5 outputs"]);
    assert!(!stderr.contains("Some(") && !stderr.contains("top-1"), "{stderr}");
}

// 14. What squeeze reads back is parsed strictly.

#[test]
fn a_widths_file_with_a_layer_twice_or_a_width_that_is_not_a_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let widths = dir.path().join("w.json");
    let cases = [
        (r#"{"features.0": 4, "features.0": 8}"#, &["w.json", "features.0", "twice"][..]),
        (r#"{"features.0": 4.5}"#, &["w.json", "features.0", "whole number"]),
        (r#"{"features.0": -1}"#, &["w.json", "features.0", "whole number"]),
        (r#"{"selection": {"layers": [{"name": "features.0", "kept": [1, 1]}]}}"#, &["w.json", "features.0", "twice"]),
        (r#"[4, 8]"#, &["w.json", "expected a squeeze manifest"]),
        (
            r#"{"selection": {"layers": [{"name": "features.0", "width": 8, "kept": [0, 99]}]}}"#,
            &["w.json", "features.0", "unit 99", "8 units"],
        ),
        (
            r#"{"selection": {"layers": [{"name": "features.0", "width": 64, "kept": [0, 1]}]}}"#,
            &["w.json", "written for a model", "`features.0` has 64 units", "--model's has 8"],
        ),
    ];
    for (text, needles) in cases {
        std::fs::write(&widths, text).unwrap();
        let run = compress(&model, &["--widths", arg(&widths), "-o", arg(&dir.path().join("o.safetensors"))]);
        assert_clean_failure(&run, needles);
    }
}

/// Rewrites the safetensors file at `path` keeping only the tensors `keep`
/// accepts (any dtype), with its metadata edited by `edit`.
fn rewrite_safetensors(
    path: &Path,
    keep: impl Fn(&str) -> bool,
    edit: impl FnOnce(&mut std::collections::HashMap<String, String>),
) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap_or_default();
    edit(&mut metadata);
    let views: Vec<_> = st.tensors().into_iter().filter(|(k, _)| keep(k)).collect();
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn a_checkpoint_missing_a_tensor_its_architecture_has_names_that_tensor() {
    let dir = tempfile::tempdir().unwrap();
    for missing in ["classifier.3.bias", "features.0.bias", "features.1.running_mean"] {
        let model = small_model(dir.path(), "m.safetensors");
        rewrite_safetensors(&model, |k| k != missing, |_| {});
        let run = squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist"]);
        assert_clean_failure(&run, &["m.safetensors", "missing tensor", missing]);
    }
    let resnet = dir.path().join("r.safetensors");
    for (missing, reported) in [("layer2.0.downsample.", "layer2.0.downsample.0.weight"), ("fc.bias", "fc.bias")] {
        std::fs::copy(root().join("data/resnet18_fashion_mnist.safetensors"), &resnet).unwrap();
        rewrite_safetensors(&resnet, |k| !k.starts_with(missing), |_| {});
        let run = squeeze(&["eval", "--model", arg(&resnet), "--dataset", "fashion-mnist"]);
        assert_clean_failure(&run, &["r.safetensors", "missing tensor", reported]);
    }
}

#[test]
fn statistics_edited_after_they_were_written_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    let analyze =
        |stats: &Path| squeeze(&["analyze", "--model", arg(&model), "--stats", arg(stats), "--allow-rank-deficient"]);
    /// Metadata of a statistics file, edited in place.
    type Edit = fn(&mut std::collections::HashMap<String, String>);
    let edits: [(&str, Edit); 3] = [
        ("checksum does not match", |m| drop(m.insert("shards".into(), "0123456789abcdef0123456789abcdef".into()))),
        ("lists shard", |m| {
            let shard = m["shards"].clone();
            m.insert("shards".into(), format!("{shard},{shard}"));
        }),
        ("no `checksum`", |m| drop(m.remove("checksum"))),
    ];
    for (needle, edit) in edits {
        save_stats(&model, "32", &stats);
        rewrite_safetensors(&stats, |_| true, edit);
        assert_clean_failure(&analyze(&stats), &["s.safetensors", needle]);
        std::fs::remove_file(&stats).unwrap();
    }
    // One layer's sample count edited: the layers no longer saw the same images.
    save_stats(&model, "32", &stats);
    let bytes = std::fs::read(&stats).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let count = st.tensor("features.0.count").unwrap();
    let offset = bytes.windows(8).position(|w| w == count.data()).unwrap();
    let mut edited = bytes.clone();
    let doubled = u64::from_le_bytes(count.data().try_into().unwrap()) * 2;
    edited[offset..offset + 8].copy_from_slice(&doubled.to_le_bytes());
    std::fs::write(&stats, edited).unwrap();
    assert_clean_failure(&analyze(&stats), &["s.safetensors", "features.0", "images"]);
}

// 15. Errors come before the work, name the flag, and read as sentences.

#[test]
fn an_infeasible_budget_fails_before_profiling_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("o.safetensors");
    let run = compress(&model, &["-o", arg(&out), "--budget", "params:1e9x", "--allow-rank-deficient"]);
    let stderr = assert_clean_failure(&run, &["--budget params:1000000000x", "cannot be met"]);
    assert!(!stderr.contains("allocating"), "{stderr}");
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

#[test]
fn validation_counts_that_cannot_be_are_refused_naming_val() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("o.safetensors");
    for (val, needle) in [("0", "at least 1"), ("18446744073709551615", "more than the 60000"), ("60000", "overlap")] {
        let run = compress(&model, &["-o", arg(&out), "--budget", "params:2x", "--val", val, "--allow-rank-deficient"]);
        assert_clean_failure(&run, &["--val", needle]);
    }
}

#[test]
fn a_normalisation_that_blows_pixels_up_is_refused_naming_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    rewrite_safetensors(
        &model,
        |_| true,
        |m| {
            m.remove("normalize_mean");
            m.remove("normalize_std");
        },
    );
    let run =
        squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--mean", "0.5", "--std", "1e-30"]);
    let stderr = assert_clean_failure(&run, &["--mean", "--std", "as large as"]);
    assert!(!stderr.contains("overflow"), "{stderr}");
}

#[test]
fn export_refuses_a_batch_onnx_cannot_hold_and_an_image_size_the_model_was_not_made_for() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let out = dir.path().join("m.onnx");
    let run = squeeze(&["export", "--model", arg(&model), "-o", arg(&out), "--batch", "9223372036854775808"]);
    assert_clean_failure(&run, &["--batch", "9223372036854775808", "at most 9223372036854775807"]);
    // 8x8 images padded to the model's 32x32 input: 12 pixels a side.
    let run = squeeze(&["export", "--model", arg(&model), "-o", arg(&out), "--image-size", "8"]);
    assert_clean_failure(&run, &["m.safetensors", "--image-size", "8x8", "more than 2 pixels a side"]);
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
}

#[test]
fn an_output_path_ending_in_a_separator_fails_before_reading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = not_a_model(dir.path());
    let out = format!("{}/c.safetensors/", dir.path().display());
    let stderr = assert_clean_failure(&compress(&garbage, &["-o", &out]), &["-o", "names a directory"]);
    assert!(!stderr.contains("not a valid safetensors"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_squeeze"))
        .args(["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--limit", "64"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // The reader goes away, as `| head` does.
    let run = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(run.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", run.status);
}

#[test]
fn eval_limits_beyond_the_split_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let run =
        squeeze(&["eval", "--model", arg(&model), "--dataset", "fashion-mnist", "--skip", "9990", "--limit", "500"]);
    assert_clean_failure(&run, &["--limit 500", "only 10 images", "--skip 9990"]);
}

#[test]
fn eval_against_a_reference_that_overflows_names_the_reference_before_the_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let huge = model_with_value(dir.path(), "huge.safetensors", 3e38);
    let run = squeeze(&["eval", "--model", arg(&model), "--against", arg(&huge), "--dataset", "fashion-mnist"]);
    let stderr = assert_clean_failure(&run, &["--against", "huge.safetensors", "the reference's outputs"]);
    assert!(run.stdout.is_empty(), "{stderr}");
}

#[test]
fn a_manifest_records_the_widths_file_and_the_storage_actually_used() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let widths = dir.path().join("w.json");
    let layers = sq_models::checkpoint::load(&model, None).unwrap();
    let object: serde_json::Map<String, serde_json::Value> =
        layers.links().iter().map(|l| (layers.name(l.producer), serde_json::json!(4))).collect();
    std::fs::write(&widths, serde_json::Value::Object(object).to_string()).unwrap();
    let out = dir.path().join("o.safetensors");
    let run = compress(&model, &["--widths", arg(&widths), "--f16", "-o", arg(&out), "--allow-rank-deficient"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o.json")).unwrap()).unwrap();
    assert!(manifest["budget"].is_null(), "{}", manifest["budget"]);
    assert_eq!(manifest["widths_file"], arg(&widths));
    assert_eq!(manifest["storage"], "f16");
}

#[test]
fn resnet_input_metadata_that_is_malformed_or_disagrees_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let resnet = dir.path().join("r.safetensors");
    for (input, needle) in [("1x28x28x", "is not CxHxW"), ("3x32x32", "3 channels")] {
        std::fs::copy(root().join("data/resnet18_fashion_mnist.safetensors"), &resnet).unwrap();
        rewrite_safetensors(&resnet, |_| true, |m| drop(m.insert("input".into(), input.into())));
        let run = squeeze(&["eval", "--model", arg(&resnet), "--dataset", "fashion-mnist", "--limit", "8"]);
        assert_clean_failure(&run, &["r.safetensors", "metadata `input`", needle]);
    }
}

#[test]
fn statistics_with_tensors_of_no_layer_or_of_the_wrong_shape_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    save_stats(&model, "32", &stats);
    let bytes = std::fs::read(&stats).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let sum = st.tensor("features.0.sum").unwrap();
    for (extra, needle) in [("junk.sum", "junk.sum"), ("features.0.sum", "expected n")] {
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            st.tensors().into_iter().filter(|(k, _)| k != "features.0.sum").collect();
        let shape = if extra == "junk.sum" { sum.shape().to_vec() } else { vec![1, sum.shape()[0]] };
        let view = safetensors::tensor::TensorView::new(sum.dtype(), shape, sum.data()).unwrap();
        views.push((extra.to_string(), view));
        if extra == "junk.sum" {
            views.push(("features.0.sum".to_string(), sum.clone()));
        }
        let edited = dir.path().join("e.safetensors");
        std::fs::write(&edited, safetensors::serialize(views, header.metadata().clone()).unwrap()).unwrap();
        let run = squeeze(&["analyze", "--model", arg(&model), "--stats", arg(&edited), "--allow-rank-deficient"]);
        assert_clean_failure(&run, &["e.safetensors", needle]);
    }
}

#[test]
fn export_names_the_image_size_it_cannot_pad() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let run = squeeze(&["export", "--model", arg(&model), "-o", arg(&dir.path().join("m.onnx")), "--image-size", "31"]);
    let stderr = assert_clean_failure(&run, &["--image-size", "31x31", "32x32"]);
    assert!(!stderr.contains("--mean"), "{stderr}");
}
