//! `cargo xtask reproduce vgg16` end to end: the quick run on the reference
//! model writes complete, self-consistent results; `--hf` reads the Hub
//! cache and fails fast and clearly when it would need the network; and
//! the CIFAR-10 path works on binary batches the test writes.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sq_models::checkpoint::{self, StorageDtype};
use sq_models::synthetic::VggSpec;

fn xtask(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run xtask")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn quick_run_writes_complete_consistent_results() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("vgg16");
    let stdout = ok(&xtask(&["reproduce", "vgg16", "--quick", "--out", out_dir.to_str().unwrap()], &[]));
    assert!(stdout.contains("headline (smallest") && stdout.contains("headline (fastest"), "{stdout}");
    for file in ["results.json", "table.md", "pareto.svg", "widths.svg"] {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    for key in ["machine", "date", "commit", "original", "rows", "smallest", "fastest", "timing"] {
        assert!(!results[key].is_null(), "results.json lacks {key}");
    }
    // The wall time and where it went: every phase took some of it, and together no more than all of it.
    let wall = results["timing"]["wall_seconds"].as_f64().unwrap();
    let phases = results["timing"]["phases"].as_object().unwrap();
    for phase in ["squeeze", "profile", "evaluate", "latency", "tract"] {
        assert!(phases[phase].as_f64().unwrap() > 0.0, "no time in {phase}: {phases:?}");
    }
    assert!(phases.values().map(|s| s.as_f64().unwrap()).sum::<f64>() <= wall, "{wall} s vs {phases:?}");
    assert!(stdout.contains("min in all:"), "{stdout}");
    let original = &results["original"];
    let rows = results["rows"].as_array().unwrap();
    let (plain, rounded): (Vec<&Value>, Vec<&Value>) = rows.iter().partition(|r| r["round"] == 1);
    assert_eq!(plain.len(), 4 + 2, "1 tau x (method + 3 baselines) + 1 budget x 2 allocators");
    // The deployment check: the headline models (or the best one) again with widths rounded to 8,
    // every one of them also timed in tract against the original.
    assert!((1..=2).contains(&rounded.len()), "{} rounded rows", rounded.len());
    for row in &rounded {
        assert_eq!(row["round"], 8);
        let twin = plain
            .iter()
            .find(|r| ["budget", "allocator", "select", "compensate"].iter().all(|&key| r[key] == row[key]));
        let twin = twin.expect("a rounded row rounds a row of the table");
        assert!(!twin["tract"].is_null() && !row["tract"].is_null(), "{row}");
        let full = results["original_widths"].as_array().unwrap();
        for (w, n) in row["widths"].as_array().unwrap().iter().zip(full) {
            let (w, n) = (w.as_u64().unwrap(), n.as_u64().unwrap());
            assert!(w % 8 == 0 || w == n, "width {w} of {n} is not rounded");
        }
    }
    for key in ["tract_latency_b1_ms", "tract_latency_b64_ms"] {
        assert!(original[key].as_f64().unwrap() > 0.0, "original lacks {key}");
    }
    for row in rows {
        for key in [
            "budget",
            "allocator",
            "select",
            "compensate",
            "widths",
            "params",
            "params_ratio",
            "flops",
            "flops_ratio",
            "bytes",
            "top1",
            "drop_pp",
            "latency_b1_ms",
            "latency_b64_ms",
            "speedup_b1",
            "speedup_b64",
        ] {
            assert!(!row[key].is_null(), "row lacks {key}: {row}");
        }
        // Every figure agrees with the checkpoint the row wrote.
        let model = checkpoint::load(Path::new(row["checkpoint"].as_str().unwrap()), None).unwrap();
        assert_eq!(row["params"].as_u64().unwrap() as usize, model.param_count());
        assert_eq!(row["flops"].as_u64().unwrap() as usize, model.macs());
        let ratio = original["params"].as_f64().unwrap() / model.param_count() as f64;
        assert!((row["params_ratio"].as_f64().unwrap() - ratio).abs() < 1e-9);
        let widths: Vec<usize> = model.links().iter().map(|l| l.units()).collect();
        let recorded: Vec<usize> =
            row["widths"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap() as usize).collect();
        assert_eq!(widths, recorded);
        let drop = 100.0 * (original["top1"].as_f64().unwrap() - row["top1"].as_f64().unwrap());
        assert!((row["drop_pp"].as_f64().unwrap() - drop).abs() < 1e-9);
    }
    // Baselines run at exactly the method's widths.
    let paper: Vec<&Value> = plain.iter().copied().filter(|r| r["allocator"] == "k(tau)").collect();
    assert_eq!(paper.len(), 4);
    assert!(paper.iter().all(|r| r["widths"] == paper[0]["widths"] && r["budget"] == "tau:0.99"));
    // The global budget is met: at most a quarter of the parameters.
    for row in rows.iter().filter(|r| r["budget"] == "params:4x") {
        assert!(row["params"].as_f64().unwrap() * 4.0 <= original["params"].as_f64().unwrap(), "{row}");
        assert!(["uniform", "measured"].contains(&row["allocator"].as_str().unwrap()), "{row}");
    }
    let table = std::fs::read_to_string(out_dir.join("table.md")).unwrap();
    assert!(table.contains("paper") && table.contains("4.9x") && table.contains("eliminate+lstsq"));
    assert!(table.contains("second engine") && table.contains("round 8"), "{table}");
}

#[test]
fn hub_download_fails_fast_and_clearly_when_offline() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 (discard): the download is refused at once.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", "vgg16", "--hf", "someone/vgg16-cifar10", "--quick"])
        .env("HF_HOME", home.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("someone/vgg16-cifar10") && stderr.contains("--weights"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Writes CIFAR-10 binary batches of `per_file` pseudo-random records.
fn write_cifar(dir: &Path, per_file: usize) {
    let files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (f, name) in files.iter().enumerate() {
        let mut bytes = Vec::with_capacity(per_file * 3073);
        for r in 0..per_file {
            bytes.push(((r + f) % 10) as u8);
            bytes.extend((0..3072).map(|i| ((i * 31 + r * 17 + f * 7) % 256) as u8));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn hub_cache_and_cifar10_run_offline() {
    let home = tempfile::tempdir().unwrap();
    // A Hub cache entry, laid out as hf-hub writes it.
    let repo = home.path().join("hub/models--someone--tiny-vgg");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    let mut model = VggSpec::uniform("vgg11_bn".parse().unwrap(), 8, 3, 32, 16).build(1).unwrap();
    model.metadata_mut().insert("normalize_mean".into(), "0.49,0.48,0.45".into());
    model.metadata_mut().insert("normalize_std".into(), "0.25".into());
    checkpoint::save(&model, &snapshot.join("model.safetensors"), StorageDtype::F32).unwrap();

    let cifar = tempfile::tempdir().unwrap();
    write_cifar(cifar.path(), 24);
    let out_dir = home.path().join("out");
    let dataset = format!("cifar10:{}", cifar.path().display());
    let args = [
        "reproduce",
        "vgg16",
        "--hf",
        "someone/tiny-vgg",
        "--dataset",
        &dataset,
        "--calib",
        "64",
        "--val",
        "16",
        "--taus",
        "0.9",
        "--budgets",
        "params:2x",
        "--runs",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    // An unreachable endpoint proves the cache answered.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("HF_HOME", home.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    ok(&out);
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["settings"]["test_images"], 24);
    let rows = results["rows"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["round"] == 1).count(), 4 + 2);
    // The deployment check runs in tract whatever the rounding could do to a model 8 channels wide
    // (under params:2x, rounding every width up to 8 cannot fit: that row is skipped, not an error).
    assert!(rows.iter().any(|r| r["round"] == 1 && !r["tract"].is_null()), "no deployment check");
}
