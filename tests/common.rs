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
