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
