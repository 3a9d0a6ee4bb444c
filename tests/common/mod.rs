//! Helpers shared by the integration tests: run the `squeeze` binary, find the data.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (where `data/` lives).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The reference checkpoint shipped in `data/`.
pub fn reference_model() -> PathBuf {
    root().join("data/vgg16_bn_fashion_mnist.safetensors")
}

/// Runs `squeeze ARGS...` from the workspace root.
pub fn squeeze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_squeeze")).args(args).current_dir(root()).output().expect("run squeeze")
}

/// Asserts that a run failed cleanly: non-zero exit, no panic, and stderr
/// containing every one of `needles`. Returns stderr.
pub fn assert_clean_failure(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr does not mention `{n}`: {stderr}");
    }
    stderr
}

/// Parses stdout as one JSON object.
pub fn json_stdout(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A small random VGG-11-BN (8 channels per conv, a hidden layer of 16,
/// 10 classes) for 1x32x32 inputs with Fashion-MNIST's normalisation,
/// saved as `dir/name`: a checkpoint the commands accept and run in a
/// fraction of a second.
pub fn small_model(dir: &Path, name: &str) -> PathBuf {
    let mut model = sq_models::synthetic::VggSpec::uniform("vgg11_bn".parse().unwrap(), 8, 1, 32, 16).build(3).unwrap();
    model.metadata_mut().insert("normalize_mean".into(), "0.286".into());
    model.metadata_mut().insert("normalize_std".into(), "0.353".into());
    let path = dir.join(name);
    sq_models::checkpoint::save(&model, &path, sq_models::checkpoint::StorageDtype::F32).unwrap();
    path
}

/// The names in `dir`, sorted (hidden temporary files included).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// `path` as a `&str` argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}
