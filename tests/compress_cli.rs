//! `squeeze compress` and `squeeze analyze` end to end on the reference
//! checkpoint with a small calibration set, plus the pipeline's exactness
//! at tau = 1 on a small synthetic network.

mod common;

use common::*;
use sq_data::{DatasetSpec, Split};
use sq_models::checkpoint;
use sq_models::eval::preprocess_for;
use sq_models::synthetic::VggSpec;
use sq_pipeline::{compress, Mode, Settings, Widths};
use sq_select::{Budget, Tau};

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn squeezed_reference_model_loads_evaluates_and_is_smaller() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vgg16-squeezed.safetensors");
    let model = reference_model();
    let run = squeeze(&[
        "compress",
        "--model",
        path_str(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "200",
        "--tau",
        "0.99",
        "-o",
        path_str(&out),
        "--json",
        // 200 images are fewer than features.40 and the classifier need for
        // a full-rank covariance (513); enough for this end-to-end check.
        "--allow-rank-deficient",
    ]);
    let summary = json_stdout(&run);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap()).unwrap();
    assert_eq!(summary, manifest);
    assert_eq!(manifest["calibration"]["images"], 200);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 15);
    assert_eq!(manifest["selection"]["layers"].as_array().unwrap().len(), 15);

    // Loadable by `squeeze eval` with no extra flags, and smaller.
    let eval = json_stdout(&squeeze(&[
        "eval",
        "--model",
        path_str(&out),
        "--dataset",
        "fashion-mnist",
        "--limit",
        "300",
        "--json",
    ]));
    let (before, after) = (manifest["params"]["before"].as_u64().unwrap(), eval["params"].as_u64().unwrap());
    assert_eq!(manifest["params"]["after"].as_u64().unwrap(), after);
    assert!(after * 2 < before, "{after} params is not much smaller than {before}");
    assert!(eval["flops"].as_u64().unwrap() < manifest["flops"]["before"].as_u64().unwrap());
    // No fine-tuning, 200 calibration images: still a working classifier.
    assert!(eval["top1"].as_f64().unwrap() > 0.8, "top-1 {}", eval["top1"]);

    // The checkpoint carries preprocessing and settings, not the original's accuracy.
    let squeezed = checkpoint::load(&out, None).unwrap();
    let meta = squeezed.metadata();
    assert!(meta.contains_key("normalize_mean") && meta.contains_key("squeeze_settings"));
    assert!(!meta.contains_key("test_accuracy"));

    // Replaying the widths with another strategy gives the same shapes.
    let l1 = dir.path().join("l1.safetensors");
    let run = squeeze(&[
        "compress",
        "--model",
        path_str(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "64",
        "--select",
        "l1",
        "--compensate",
        "none",
        "--widths",
        path_str(&out.with_extension("json")),
        "-o",
        path_str(&l1),
        "--json",
        "--allow-rank-deficient",
    ]);
    let replay = json_stdout(&run);
    assert_eq!(replay["params"]["after"], manifest["params"]["after"]);
}

/// The widths of a manifest's layers, first to last.
fn manifest_widths(manifest: &serde_json::Value) -> Vec<u64> {
    manifest["layers"].as_array().unwrap().iter().map(|l| l["k"].as_u64().unwrap()).collect()
}

#[test]
fn a_global_budget_is_met_rounded_or_not_and_its_widths_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = reference_model();
    let budget = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["compress", "--model", path_str(&model), "--dataset", "fashion-mnist", "--calib", "200"];
        args.extend(["--budget", "params:3x", "--val", "32", "--allow-rank-deficient", "--json", "-o", path_str(out)]);
        args.extend(extra);
        json_stdout(&squeeze(&args))
    };
    let out = dir.path().join("budget.safetensors");
    let manifest = budget(&out, &[]);
    let (before, after) =
        (manifest["params"]["before"].as_u64().unwrap(), manifest["params"]["after"].as_u64().unwrap());
    assert!(after * 3 <= before, "params:3x gave {after} of {before}");
    assert_eq!(manifest["allocation"]["allocator"], "measured");
    assert_eq!(manifest["validation"]["images"], 32, "{}", manifest["validation"]);

    // --widths replays the allocated model exactly: same widths, same parameters.
    let replayed = dir.path().join("replayed.safetensors");
    let replay = json_stdout(&squeeze(&[
        "compress",
        "--model",
        path_str(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "200",
        "--widths",
        path_str(&out.with_extension("json")),
        "--allow-rank-deficient",
        "--json",
        "-o",
        path_str(&replayed),
    ]));
    assert_eq!(manifest_widths(&replay), manifest_widths(&manifest));
    assert_eq!(replay["params"]["after"], manifest["params"]["after"]);

    // With --round 8 the budget still holds and every width is a multiple of 8 (or the full width).
    let rounded = budget(&dir.path().join("rounded.safetensors"), &["--round", "8"]);
    assert!(rounded["params"]["after"].as_u64().unwrap() * 3 <= before);
    for layer in rounded["layers"].as_array().unwrap() {
        let (k, n) = (layer["k"].as_u64().unwrap(), layer["width"].as_u64().unwrap());
        assert!(k % 8 == 0 || k == n, "{}: {k} of {n}", layer["name"]);
    }
    assert_eq!(rounded["settings"]["round"], 8);
}

#[test]
fn compress_refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    std::fs::copy(reference_model(), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let run = squeeze(&[
        "compress",
        "--model",
        path_str(&input),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "8",
        "-o",
        path_str(&input),
    ]);
    assert_clean_failure(&run, &["would overwrite the input --model"]);
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn compress_rejects_bad_settings_cleanly() {
    let model = reference_model();
    let run = squeeze(&[
        "compress",
        "--model",
        path_str(&model),
        "--dataset",
        "fashion-mnist",
        "--tau",
        "1.5",
        "-o",
        "/tmp/never.safetensors",
    ]);
    assert_clean_failure(&run, &["tau"]);
    let dir = tempfile::tempdir().unwrap();
    let widths = dir.path().join("w.json");
    std::fs::write(&widths, r#"{"features.0": 10}"#).unwrap();
    let out = dir.path().join("o.safetensors");
    let run = squeeze(&[
        "compress",
        "--model",
        path_str(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "8",
        "--widths",
        path_str(&widths),
        "-o",
        path_str(&out),
    ]);
    assert_clean_failure(&run, &["features.3"]);
    assert!(!out.exists(), "a failed run must not leave an output file");
}

#[test]
fn analyze_writes_table_json_plot_and_mergeable_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let (json, plot, stats) = (dir.path().join("a.json"), dir.path().join("a.svg"), dir.path().join("s.safetensors"));
    let model = reference_model();
    let run = squeeze(&[
        "analyze",
        "--model",
        path_str(&model),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "64",
        "--taus",
        "0.9,0.99",
        "--json",
        path_str(&json),
        "--plot",
        path_str(&plot),
        "--save-stats",
        path_str(&stats),
        "--allow-rank-deficient",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.contains("features.40") && table.contains("classifier.3"), "{table}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 15);
    for layer in layers {
        let (width, k90, k99) = (
            layer["width"].as_u64().unwrap(),
            layer["k"]["0.9"].as_u64().unwrap(),
            layer["k"]["0.99"].as_u64().unwrap(),
        );
        assert!(1 <= k90 && k90 <= k99 && k99 <= width, "{layer}");
        assert!(layer["dead"].as_u64().unwrap() <= width);
    }
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));

    // Merging the statistics with themselves would count every image twice.
    let run = squeeze(&["analyze", "--model", path_str(&model), "--stats", path_str(&stats), path_str(&stats)]);
    assert_clean_failure(&run, &["same file", "counted twice"]);
}

/// At tau = 1 only units without independent information (dead or
/// exactly dependent ones) are removed, so the output does not change.
#[test]
fn tau_one_keeps_every_informative_unit_and_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    // 64 calibration images from the real training split, on a small random VGG-11-BN.
    let mut data = DatasetSpec::FashionMnist(root().join("data/fashion-mnist")).load(Split::Train).unwrap();
    data.truncate(64);
    let mut model =
        with_duplicate_first_unit(VggSpec::uniform("vgg11_bn".parse().unwrap(), 6, 1, 32, 12).build(11).unwrap());
    model.metadata_mut().insert("normalize_mean".into(), "0.286".into());
    model.metadata_mut().insert("normalize_std".into(), "0.353".into());
    let pre = preprocess_for(&model, &data, (None, Default::default())).unwrap();
    for mode in [Mode::Sequential, Mode::OnePass] {
        let settings = Settings {
            widths: Widths::Uniform(Budget::Tau(Tau::new(1.0).unwrap())),
            mode,
            batch: 16,
            ..Settings::default()
        };
        let outcome = compress(&model, &data, &pre, &settings, |_, _| {}).unwrap();
        // The duplicated channel carries no information of its own and goes.
        assert_eq!(outcome.layers[0].k, 5, "{mode}");
        for layer in &outcome.layers {
            assert!(layer.retained_variance > 1.0 - 1e-9, "{}: retained {}", layer.name, layer.retained_variance);
        }
        let x = pre.batch(&data, 0..64).unwrap();
        let (a, b) = (model.forward(&x).unwrap(), outcome.model.forward(&x).unwrap());
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "{mode}: outputs moved by {diff}");
    }
    drop(dir);
}

/// Makes unit 1 of the first conv (and its BatchNorm) an exact copy of unit 0.
fn with_duplicate_first_unit(model: sq_models::Model) -> sq_models::Model {
    use sq_models::{BatchNorm2d, Conv2d, Layer};
    let copy_row = |t: &candle_core::Tensor| {
        let first = t.narrow(0, 0, 1).unwrap();
        let rest = t.narrow(0, 2, t.dims()[0] - 2).unwrap();
        candle_core::Tensor::cat(&[&first, &first, &rest], 0).unwrap()
    };
    let (input, mut layers, meta) = model.into_parts();
    if let Layer::Conv2d(conv) = &layers[0] {
        layers[0] = Layer::Conv2d(Conv2d::new(copy_row(conv.weight()), conv.bias().map(copy_row), *conv.config()));
    }
    if let Layer::BatchNorm2d(bn) = &layers[1] {
        let (g, b, m, v) =
            (copy_row(bn.gamma()), copy_row(bn.beta()), copy_row(bn.running_mean()), copy_row(bn.running_var()));
        layers[1] = Layer::BatchNorm2d(BatchNorm2d::new(g, b, m, v, bn.eps()).unwrap());
    }
    sq_models::Model::new(input, layers, meta).unwrap()
}

#[test]
fn the_reference_resnet_squeezes_its_streams_under_a_global_budget_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("data/resnet18_fashion_mnist.safetensors");
    let out = dir.path().join("r18.safetensors");
    let compress = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["compress", "--model", path_str(&model), "--dataset", "fashion-mnist", "--calib", "128"];
        args.extend(["--allow-rank-deficient", "--json", "-o", path_str(out)]);
        args.extend(extra);
        json_stdout(&squeeze(&args))
    };
    let manifest = compress(&out, &["--budget", "params:2x", "--val", "16", "--stream", "tau:0.95"]);
    let (before, after) =
        (manifest["params"]["before"].as_u64().unwrap(), manifest["params"]["after"].as_u64().unwrap());
    assert!(after * 2 <= before, "params:2x gave {after} of {before}");
    let names: Vec<&str> = manifest["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names[..4], ["layer1", "layer2", "layer3", "layer4"]);
    assert_eq!(names.len(), 4 + 8);
    for stream in &manifest["layers"].as_array().unwrap()[..4] {
        assert!(stream["k"].as_u64() < stream["width"].as_u64(), "{stream}");
    }

    // The checkpoint is a ResNet-18 that evaluates, and its selection replays exactly.
    let eval = json_stdout(&squeeze(&[
        "eval",
        "--model",
        path_str(&out),
        "--dataset",
        "fashion-mnist",
        "--limit",
        "64",
        "--json",
    ]));
    assert_eq!(eval["arch"], "resnet18");
    assert_eq!(eval["params"], manifest["params"]["after"]);
    let replay = compress(&dir.path().join("replay.safetensors"), &["--widths", path_str(&out.with_extension("json"))]);
    assert_eq!(replay["params"]["after"], manifest["params"]["after"]);

    // A VGG has no residual streams to squeeze.
    let vgg = reference_model();
    let failed = squeeze(&[
        "compress",
        "--model",
        path_str(&vgg),
        "--dataset",
        "fashion-mnist",
        "--calib",
        "64",
        "--stream",
        "tau:0.9",
        "--allow-rank-deficient",
        "-o",
        path_str(&dir.path().join("vgg.safetensors")),
    ]);
    assert_clean_failure(&failed, &["--stream", "no residual streams"]);
}
