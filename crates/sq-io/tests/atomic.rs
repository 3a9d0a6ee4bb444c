//! `write_atomic`: complete files, clean failures, nothing left behind.

use std::path::Path;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn writes_and_replaces_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    sq_io::write_atomic(&path, &[1; 1000]).unwrap();
    sq_io::write_atomic(&path, b"short").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"short");
    assert_eq!(entries(dir.path()), ["out.bin"]);
}

#[cfg(unix)]
#[test]
fn every_output_gets_the_same_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    sq_io::write_atomic(&path, b"{}").unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
}

#[test]
fn a_missing_directory_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/out.json");
    let err = sq_io::write_atomic(&path, b"{}").unwrap_err();
    assert!(err.to_string().contains("no/such/dir/out.json"), "{err}");
}

#[test]
fn a_directory_as_target_fails_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    let err = sq_io::write_atomic(&target, b"{}").unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(entries(dir.path()), ["taken"]);
    assert!(target.is_dir());
}

#[cfg(unix)]
#[test]
fn a_symlink_as_target_is_replaced_and_what_it_points_to_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.safetensors");
    std::fs::write(&precious, b"only copy").unwrap();
    let link = dir.path().join("out.safetensors");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    sq_io::write_atomic(&link, b"new").unwrap();
    assert_eq!(std::fs::read(&precious).unwrap(), b"only copy");
    assert_eq!(std::fs::read(&link).unwrap(), b"new");
    assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(entries(dir.path()), ["out.safetensors", "precious.safetensors"]);
}

#[test]
fn an_output_set_that_fails_to_stage_writes_none_of_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = sq_io::OutputSet::new();
    set.stage(&dir.path().join("model.safetensors"), b"weights").unwrap();
    let err = set.stage(&dir.path().join("missing/model.json"), b"{}").unwrap_err();
    assert!(err.to_string().contains("missing/model.json"), "{err}");
    drop(set);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn a_failed_commit_restores_every_target_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new, blocked) =
        (dir.path().join("old.json"), dir.path().join("new.json"), dir.path().join("blocked.svg"));
    std::fs::write(&old, b"previous").unwrap();
    let mut set = sq_io::OutputSet::new();
    set.stage(&old, b"replaced").unwrap();
    set.stage(&new, b"created").unwrap();
    set.stage(&blocked, b"<svg/>").unwrap();
    // A non-empty directory appears where the third file goes: its rename fails.
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    let err = set.commit().unwrap_err();
    assert!(err.to_string().contains("blocked.svg"), "{err}");
    assert_eq!(std::fs::read(&old).unwrap(), b"previous");
    assert!(!new.exists());
    assert_eq!(entries(dir.path()), ["blocked.svg", "old.json"]);
}

#[test]
fn staging_one_file_twice_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let mut set = sq_io::OutputSet::new();
    set.stage(&path, b"1").unwrap();
    let err = set.stage(&path, b"2").unwrap_err();
    assert!(err.to_string().contains("a.json"), "{err}");
}

#[test]
fn the_error_names_the_file_once_and_keeps_the_cause_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let err = sq_io::write_atomic(&dir.path().join("nope/out.json"), b"{}").unwrap_err();
    let cause = std::error::Error::source(&err).expect("an I/O cause").to_string();
    assert!(!err.to_string().contains(&cause), "`{err}` repeats its cause `{cause}`");
}

/// The environment variable that turns [`interrupt_child`] into the child
/// process of [`ctrl_c_while_staging_removes_the_temporary_file`].
const CHILD_DIR: &str = "SQ_IO_INTERRUPT_CHILD_DIR";

/// Run as a child process: installs the handler, stages a file, says so and
/// waits to be interrupted. A no-op in a normal test run.
#[test]
fn interrupt_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let dir = std::path::PathBuf::from(dir);
    sq_io::remove_outputs_on_interrupt().unwrap();
    let mut set = sq_io::OutputSet::new();
    set.stage(&dir.join("model.safetensors"), &[7; 1 << 20]).unwrap();
    set.stage(&dir.join("model.json"), b"{}").unwrap();
    println!("sq-io-child-staged");
    // Wait for the parent's SIGINT; give up (and fail the parent's check) after a minute.
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[cfg(unix)]
#[test]
fn ctrl_c_while_staging_removes_the_temporary_file() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.json"), b"previous").unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "interrupt_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines();
    assert!(lines.any(|l| l.unwrap().ends_with("sq-io-child-staged")), "the child never staged its files");
    // Both temporary files exist now, next to the old manifest.
    assert_eq!(entries(dir.path()).len(), 3, "{:?}", entries(dir.path()));
    // SAFETY: `kill` with a valid pid and signal has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(sq_io::INTERRUPTED_EXIT_CODE));
    assert_eq!(entries(dir.path()), ["model.json"]);
    assert_eq!(std::fs::read(dir.path().join("model.json")).unwrap(), b"previous");
}

#[test]
fn a_set_that_keeps_existing_targets_refuses_one_created_meanwhile_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, manifest) = (dir.path().join("m.safetensors"), dir.path().join("m.json"));
    let mut set = sq_io::OutputSet::with_existing(sq_io::Existing::Keep);
    set.stage(&model, b"weights").unwrap();
    set.stage(&manifest, b"{}").unwrap();
    // Another run writes the manifest between this one's check and its commit.
    std::fs::write(&manifest, b"the other run's manifest").unwrap();
    let err = set.commit().unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("m.json") && text.contains("created by something else"), "{text}");
    assert_eq!(std::fs::read(&manifest).unwrap(), b"the other run's manifest");
    assert_eq!(entries(dir.path()), ["m.json"]);
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_directory_as_target_is_never_replaced() {
    use std::os::unix::fs::FileTypeExt as _;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.onnx");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = sq_io::write_atomic(&fifo, b"onnx").unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("named pipe"), "{text}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(sq_io::check_writable(&fifo).is_err());
    assert_eq!(entries(dir.path()), ["out.onnx"]);
}

#[test]
fn temporary_files_of_killed_runs_are_removed_by_the_next_write_and_backups_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.json");
    // Left by a run with a process id no live process has, and by this one.
    let stale = dir.path().join(".model.json.sq4000000000.Ab12Cd.tmp");
    let backup = dir.path().join(".model.json.sq4000000000.Ab12Cd.bak");
    let live = dir.path().join(format!(".model.json.sq{}.Zz99Yy.tmp", std::process::id()));
    let other = dir.path().join(".other.json.sq4000000000.Ab12Cd.tmp");
    for path in [&stale, &backup, &live, &other] {
        std::fs::write(path, b"x").unwrap();
    }
    let mut set = sq_io::OutputSet::new();
    set.stage(&target, b"{}").unwrap();
    assert_eq!(set.leftovers_removed(), std::slice::from_ref(&stale));
    set.commit().unwrap();
    assert!(!stale.exists());
    for kept in [&backup, &live, &other] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
}

#[cfg(unix)]
#[test]
fn a_file_size_limit_fails_the_write_and_leaves_no_temporary_file() {
    // In a child process: the limit and the ignored SIGXFSZ are its own.
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "file_size_limit_child", "--nocapture", "--test-threads=1"])
        .env(SIZE_LIMIT_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && stdout.contains("sq-io-child-refused"), "{stdout}");
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

/// The environment variable that turns [`file_size_limit_child`] into the
/// child process of [`a_file_size_limit_fails_the_write_and_leaves_no_temporary_file`].
const SIZE_LIMIT_DIR: &str = "SQ_IO_SIZE_LIMIT_DIR";

/// Run as a child process: a 64 KiB file-size limit, then a 1 MiB write.
#[cfg(unix)]
#[test]
fn file_size_limit_child() {
    let Some(dir) = std::env::var_os(SIZE_LIMIT_DIR) else { return };
    sq_io::remove_outputs_on_interrupt().unwrap();
    let limit = libc::rlimit { rlim_cur: 64 << 10, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct it is given; no memory is shared.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
    let err = sq_io::write_atomic(&std::path::Path::new(&dir).join("big.bin"), &[0; 1 << 20]).unwrap_err();
    assert!(err.to_string().contains("big.bin"), "{err}");
    println!("sq-io-child-refused");
}
