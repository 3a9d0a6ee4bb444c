//! Bounded inputs: type checks before opening, size caps, safetensors
//! headers checked before the data, strict JSON.

use std::path::Path;

use proptest::prelude::*;
use sq_io::Cap;

const CAP: Cap = Cap { bytes: 1 << 20, what: "a test file" };

fn message(result: std::io::Result<Vec<u8>>) -> String {
    result.unwrap_err().to_string()
}

/// A minimal safetensors file: one f32 tensor `a` of `n` values.
fn safetensors(n: usize) -> Vec<u8> {
    let header = format!(r#"{{"a":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#, 4 * n);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; 4 * n]);
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_regular_file_within_the_cap_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.json", b"{}");
    assert_eq!(sq_io::read_input(&path, CAP).unwrap(), b"{}");
    let path = write(dir.path(), "a.safetensors", &safetensors(3));
    assert_eq!(sq_io::read_safetensors(&path, CAP).unwrap(), safetensors(3));
}

#[test]
fn a_file_over_the_cap_is_refused_naming_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big.json", &[b' '; 2000]);
    let cap = Cap { bytes: 1000, what: "a widths file" };
    let text = message(sq_io::read_input(&path, cap));
    assert!(text.contains("2000 bytes") && text.contains("1000 bytes a widths file"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_fifo_a_device_and_a_directory_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Nothing ever writes to the FIFO: a read that opened it would block forever.
    for (path, kind) in
        [(fifo.as_path(), "named pipe"), (Path::new("/dev/zero"), "character device"), (dir.path(), "directory")]
    {
        for text in [message(sq_io::read_input(path, CAP)), message(sq_io::read_safetensors(path, CAP))] {
            assert!(text.contains(kind) && text.contains("not a regular file"), "{text}");
        }
        assert_eq!(sq_io::check_input(path).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn a_safetensors_file_padded_or_truncated_is_refused_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    // A valid file padded to 64 MiB (sparse: nothing is written or read).
    let path = write(dir.path(), "padded.safetensors", &safetensors(3));
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(64 << 20).unwrap();
    let text = message(sq_io::read_safetensors(&path, Cap { bytes: 1 << 30, what: "a checkpoint" }));
    assert!(text.contains("data after its last tensor"), "{text}");
    let bytes = safetensors(3);
    let path = write(dir.path(), "short.safetensors", &bytes[..bytes.len() - 1]);
    let err = sq_io::read_safetensors(&path, CAP).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let path = write(dir.path(), "huge-header.safetensors", &u64::MAX.to_le_bytes());
    assert!(message(sq_io::read_safetensors(&path, CAP)).contains("not a safetensors file"));
}

#[test]
fn a_safetensors_header_naming_a_tensor_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let entry = r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
    let header = format!("{{{entry},{entry}}}");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend([0u8; 4]);
    let path = write(dir.path(), "twice.safetensors", &bytes);
    let text = message(sq_io::read_safetensors(&path, CAP));
    assert!(text.contains("`a` twice"), "{text}");
}

#[test]
fn json_with_a_key_named_twice_at_any_depth_is_refused() {
    assert!(sq_io::parse_json(br#"{"a": [1, {"b": 2, "c": 3}], "d": null}"#).is_ok());
    for text in [&br#"{"x": 1, "x": 1}"#[..], br#"{"a": [{"b": 1, "b": 2}]}"#, br#"{"a": {"": 1, "": 2}}"#] {
        let err = sq_io::parse_json(text).unwrap_err();
        assert!(err.to_string().contains("twice") && err.line() == 1, "{err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Damaged safetensors files are read or refused, never a panic, and
    /// a file is only returned when it is exactly as long as its header says.
    #[test]
    fn damaged_safetensors_files_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..4), cut in 0usize..120) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = safetensors(8);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(bytes.len() - cut.min(bytes.len()));
        let path = write(dir.path(), "m.safetensors", &bytes);
        if let Ok(read) = sq_io::read_safetensors(&path, CAP) {
            prop_assert_eq!(read, bytes);
        }
    }
}
