//! Atomic output files: every file squeeze writes (checkpoints, statistics,
//! manifests, reports, plots) goes through [`write_atomic`], so that a crash,
//! a full disk or an error halfway leaves the previous file (or none), never
//! a truncated one.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("report.json");
//! sq_io::write_atomic(&path, b"{}")?;
//! assert_eq!(std::fs::read(&path)?, b"{}");
//! // Nothing else is left in the directory.
//! assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! The bytes go to a temporary file created *exclusively* (`O_EXCL`, so it
//! never follows or reuses an existing path) under an unpredictable name in
//! the target's own directory, are flushed to disk (`fsync`), and the file is
//! then renamed over the target: on POSIX file systems the rename is atomic.
//! The temporary file is removed on every error path. Every output gets the
//! same permissions (`0644` on Unix), whatever the temporary file had.
//! The whole file is built in memory first; squeeze's outputs are at most
//! tens of megabytes.
#![deny(missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why an output file could not be written; names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct Error {
    /// The file that was to be written.
    pub path: PathBuf,
    /// The underlying failure.
    #[source]
    pub source: std::io::Error,
}

/// `Result` specialised to this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Writes `bytes` to `path` atomically: a reader sees either the old content
/// of `path` (or no file) or all of `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let error = |source| Error { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| error(std::io::Error::other("the path names no file")))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(error)?;
    // Dropping `tmp` on any error below removes the temporary file.
    tmp.write_all(bytes).map_err(error)?;
    set_output_permissions(tmp.as_file()).map_err(error)?;
    tmp.as_file().sync_all().map_err(error)?;
    tmp.persist(path).map_err(|e| error(e.error))?;
    Ok(())
}

/// Gives the file the permissions of every squeeze output.
#[cfg(unix)]
fn set_output_permissions(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_output_permissions(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}
