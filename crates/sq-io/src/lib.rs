//! The files squeeze reads and writes.
//!
//! **Inputs** are bounded ([`read_input`], [`read_safetensors`]): a regular
//! file, checked before it is opened, read with a size cap; JSON is parsed
//! strictly ([`parse_json`]: a key named twice is an error).
//!
//! **Outputs** are atomic: every file squeeze writes (checkpoints, statistics,
//! manifests, reports, plots) goes through [`write_atomic`] or, when one
//! command writes several files, an [`OutputSet`], so that a crash, a full
//! disk, an error halfway or a Ctrl-C leaves the previous files (or none),
//! never a truncated one and never a stray temporary file.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("report.json");
//! sq_io::write_atomic(&path, b"{}")?;
//! assert_eq!(std::fs::read(&path)?, b"{}");
//!
//! // Several outputs of one command: all or none.
//! let mut outputs = sq_io::OutputSet::new();
//! outputs.stage(&dir.path().join("model.safetensors"), b"weights")?;
//! outputs.stage(&dir.path().join("model.json"), b"{}")?;
//! outputs.commit()?;
//! // Nothing else is left in the directory.
//! assert_eq!(std::fs::read_dir(dir.path())?.count(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! * **One file.** The bytes go to a temporary file created *exclusively*
//!   (`O_CREAT | O_EXCL`: it never follows a symbolic link or reuses an
//!   existing path) under an unpredictable name (`.NAME.XXXXXX.tmp`) in the
//!   target's own directory, are flushed to disk (`fsync`), and the file is
//!   then renamed over the target: on POSIX file systems the rename is
//!   atomic, so a reader sees the old file or the whole new one. The
//!   temporary file is removed on every error path. Every output gets the
//!   same permissions (`0644` on Unix), whatever the temporary file had.
//!   A target that is a symbolic link is replaced by a regular file; what it
//!   pointed to is left alone.
//! * **Several files** ([`OutputSet`]): every file is first written to its
//!   temporary file ([`OutputSet::stage`]); only when all of them are
//!   complete does [`OutputSet::commit`] rename them, one after the other.
//!   If a rename fails, the renames already done are undone: a new file is
//!   removed, and a file that existed before is put back from a hard link
//!   taken just before it was replaced (where the file system has hard
//!   links; elsewhere that one file keeps its new content). So after an
//!   error every target is as it was before the command, and no temporary
//!   file remains.
//! * **Ctrl-C** ([`remove_outputs_on_interrupt`]): every temporary file and
//!   every rename in progress is recorded in a process-wide undo log. A
//!   binary that installs the handler gets, on SIGINT (and SIGTERM,
//!   SIGHUP), the same undo as on an error, then exit status 130. The log is
//!   locked while a set commits, so an interrupt lands either before the
//!   commit (nothing written) or after it (everything written).
//!
//! * **Existing targets**: replaced ([`Existing::Replace`]) or kept, the
//!   whole commit failing ([`Existing::Keep`]: each target is created by an
//!   atomic no-replace rename, so two runs writing the same new output
//!   never silently replace each other's file). A target that is a FIFO, a
//!   device or a directory is never replaced.
//! * **Failed writes** (a full disk, an I/O error, a file-size limit) remove
//!   the temporary file; [`remove_outputs_on_interrupt`] also turns
//!   `SIGXFSZ` (a `ulimit -f` exceeded) from a kill into such an error.
//! * **Leftovers**: temporary files are named `.NAME.sqPID.XXXXXX.tmp`; a
//!   `SIGKILL` or a power cut while a file is being staged leaves one behind
//!   (the target itself is intact), and the next run that writes `NAME`
//!   removes it once process `PID` is gone ([`remove_leftovers`]).
//!
//! What cannot be promised: the whole file is built in memory first
//! (squeeze's outputs are at most tens of megabytes).
#![deny(missing_docs)]

mod input;
mod interrupt;
mod json;
mod leftovers;
mod output_set;

use std::path::{Path, PathBuf};

pub use input::{check_input, open_input, read_input, read_safetensors, Cap};
pub use interrupt::{end_quietly_on_closed_stdout, remove_outputs_on_interrupt, InterruptError, INTERRUPTED_EXIT_CODE};
pub use json::parse_json;
pub use leftovers::remove_leftovers;
pub use output_set::{Existing, OutputSet};

/// Why an output file could not be written; names the file. The
/// underlying failure is the error's [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
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
    let mut set = OutputSet::new();
    set.stage(path, bytes)?;
    set.commit()
}

/// Checks up front, before any long work, that `path` can be written:
/// it names a file (not a directory, FIFO or device, nor a link to one),
/// its directory exists, and a new file can be created there (it is not
/// read-only or full). Nothing stays on disk: the probe is an empty
/// temporary file, removed at once.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(sq_io::check_writable(&dir.path().join("out.json")).is_ok());
/// assert!(sq_io::check_writable(&dir.path().join("missing/out.json")).is_err());
/// assert!(sq_io::check_writable(dir.path()).is_err());
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_writable(path: &Path) -> Result<()> {
    let error = |message: String| Error { path: path.to_owned(), source: std::io::Error::other(message) };
    let ends_in_separator = path.as_os_str().to_string_lossy().ends_with(std::path::is_separator);
    if path.file_name().is_none() || ends_in_separator {
        return Err(error("the path names a directory, not a file".into()));
    }
    let dir = parent_dir(path);
    match std::fs::metadata(dir) {
        Err(e) => return Err(error(format!("its directory {} cannot be used: {e}", dir.display()))),
        Ok(meta) if !meta.is_dir() => return Err(error(format!("{} is not a directory", dir.display()))),
        Ok(_) => {}
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            let kind = input::kind_of(&meta.file_type());
            return Err(error(format!("it is {kind}, not a regular file: squeeze never replaces one")));
        }
    }
    let mut probe = OutputSet::new();
    probe.stage(path, b"")
    // Dropping `probe` removes the empty temporary file.
}

/// The directory a file `path` lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A tensor shape for messages: `64x3x3x3` (`scalar` for no dimensions).
pub fn dims_text(dims: &[usize]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}
