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
        let run = squeeze(&[
            "analyze",
            "--model",
            arg(&model),
            "--dataset",
            "fashion-mnist",
            "--stats",
            arg(&stats),
            flag,
            arg(target),
            "--force",
        ]);
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
    let run = squeeze(&["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--stats", arg(&stats)]);
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
    let run = squeeze(&["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--stats", arg(&bad)]);
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
    assert_clean_failure(&run, &["zero.safetensors", "classifier.0", "at least one unit"]);
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
        let mut args = vec!["analyze", "--model", arg(&model), "--dataset", "fashion-mnist", "--stats"];
        args.extend(files.iter().map(|f| arg(f)));
        squeeze(&args)
    };
    assert_clean_failure(&analyze(&[&stats, &stats]), &["--stats", "s.safetensors", "same file", "counted twice"]);
    assert_clean_failure(&analyze(&[&stats, &copy]), &["copy.safetensors", "same images", "twice"]);
    // A second capture of the same images is the same shard too.
    assert_clean_failure(&analyze(&[&stats, &again]), &["again.safetensors", "same images"]);
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
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--stats",
        arg(&stats),
        arg(&other_stats),
    ]);
    assert_clean_failure(&run, &["o.safetensors", "different models"]);
    // Other layers.
    let narrow = dir.path().join("narrow.safetensors");
    let mut m = sq_models::synthetic::VggSpec::uniform("vgg11_bn".parse().unwrap(), 6, 1, 32, 16).build(3).unwrap();
    m.metadata_mut().insert("normalize_mean".into(), "0.286".into());
    m.metadata_mut().insert("normalize_std".into(), "0.353".into());
    sq_models::checkpoint::save(&m, &narrow, Default::default()).unwrap();
    let narrow_stats = dir.path().join("n.safetensors");
    save_stats(&narrow, "40", &narrow_stats);
    let run = squeeze(&[
        "analyze",
        "--model",
        arg(&model),
        "--dataset",
        "fashion-mnist",
        "--stats",
        arg(&stats),
        arg(&narrow_stats),
    ]);
    assert_clean_failure(&run, &["n.safetensors", "cannot merge"]);
}

#[test]
fn statistics_must_match_the_model_given_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path(), "m.safetensors");
    let stats = dir.path().join("s.safetensors");
    save_stats(&model, "32", &stats);
    let other = model_with_value(dir.path(), "other.safetensors", 0.5);
    let run = squeeze(&["analyze", "--model", arg(&other), "--dataset", "fashion-mnist", "--stats", arg(&stats)]);
    assert_clean_failure(&run, &["s.safetensors", "other.safetensors", "another model"]);
    let run =
        squeeze(&["analyze", "--model", arg(&reference_model()), "--dataset", "fashion-mnist", "--stats", arg(&stats)]);
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
