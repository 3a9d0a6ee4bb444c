//! `cargo xtask memory`: the peak resident memory of `squeeze compress` as
//! the calibration set grows.
//!
//! Each `--calib` value runs the `squeeze` binary (built first, in release
//! mode) as a child process, and the kernel's account of that child
//! (`wait4`'s `ru_maxrss`) gives its peak resident set: the whole run,
//! decoding, capture, the frontier and the rewrite included, with nothing
//! sampled. The frontier of activations is capped (`sq_capture::FRONTIER_MEMORY`)
//! and spills beyond it, so the peak should barely move between the rows;
//! the table shows whether it does.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Flags of `cargo xtask memory`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint to squeeze.
    #[arg(long)]
    model: PathBuf,
    /// Dataset, as `squeeze compress --dataset` takes it (`images:DIR`, `folder:DIR`, ...).
    #[arg(long)]
    dataset: String,
    /// Calibration sizes, one run each.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
    calib: Vec<usize>,
    /// Further `squeeze compress` flags, after `--` (e.g. `-- --preprocess imagenet --tau 0.9`).
    #[arg(last = true)]
    compress: Vec<String>,
}

/// Runs `cargo xtask memory`: one compression per `--calib`, a table of
/// peak memory and time.
pub fn run(args: Args) -> Result<()> {
    if let Some(flag) = args.compress.iter().find(|f| ["--calib", "-o", "--output", "--json"].contains(&f.as_str())) {
        bail!("{flag} is set by `cargo xtask memory` itself; pass only the other compress flags after --");
    }
    let squeeze = build_squeeze()?;
    let scratch = tempfile::tempdir().context("creating a temporary folder for the squeezed models")?;
    println!(
        "`squeeze compress --model {} --dataset {} {}`",
        args.model.display(),
        args.dataset,
        args.compress.join(" ")
    );
    println!();
    println!("| --calib | peak resident memory | wall time |");
    println!("|---:|---:|---:|");
    for &calib in &args.calib {
        let output = scratch.path().join(format!("calib-{calib}.safetensors"));
        let mut command = Command::new(&squeeze);
        command
            .args(["compress", "--model"])
            .arg(&args.model)
            .args(["--dataset", &args.dataset, "--calib", &calib.to_string()])
            .args(&args.compress)
            .arg("-o")
            .arg(&output)
            .stdout(Stdio::null());
        let start = Instant::now();
        let peak = peak_memory(command).with_context(|| format!("squeeze compress --calib {calib}"))?;
        let seconds = start.elapsed().as_secs_f64();
        println!("| {calib} | {:.2} GB | {seconds:.0} s |", peak as f64 / 1e9);
    }
    Ok(())
}

/// Builds the `squeeze` binary in release mode (a no-op when it is up to
/// date) and returns its path, next to this program's.
fn build_squeeze() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "squeeze"])
        .status()
        .context("running cargo build --release --bin squeeze")?;
    if !status.success() {
        bail!("cargo build --release --bin squeeze failed ({status})");
    }
    let here = std::env::current_exe().context("locating the xtask binary")?;
    let squeeze = here.with_file_name(format!("squeeze{}", std::env::consts::EXE_SUFFIX));
    if !squeeze.is_file() {
        bail!("{} is missing after the build", squeeze.display());
    }
    Ok(squeeze)
}

/// Runs `command` to its end and returns its peak resident memory in
/// bytes, as the kernel accounted it; a failed run is an error carrying
/// its stderr's last lines.
fn peak_memory(mut command: Command) -> Result<u64> {
    let child = command.stderr(Stdio::piped()).spawn().context("starting it")?;
    let pid = libc::pid_t::try_from(child.id()).context("process id out of range")?;
    // stderr is read on a thread while the child runs, so a chatty child never blocks on a full pipe.
    let mut stderr = child.stderr.context("no stderr pipe")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text)
    });
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (std's `Child` only reaps in `wait`, which is
    // never called), and both pointers are to live locals of the right types.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("waiting for it: {}", std::io::Error::last_os_error());
    }
    let stderr = reader.join().map_err(|_| anyhow::anyhow!("the stderr reader panicked"))??;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        bail!("it failed (wait status {status}):\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    // Linux reports ru_maxrss in kilobytes.
    Ok(u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024)
}
