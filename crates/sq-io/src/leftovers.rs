//! Temporary files that a killed run left behind: recognisable by name
//! (`.NAME.sqPID.XXXXXX.tmp`), and removed by the next run that writes
//! `NAME` once process `PID` is gone. A commit's backups
//! (`.NAME.sqPID.XXXXXX.bak`) are never removed: after a kill in the middle
//! of a commit, one may be the only copy of a replaced file's old content.
//!
//! Process ids are those of this system's process namespace: runs in two
//! containers writing into one shared directory can take each other's live
//! temporary file for a leftover.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::parent_dir;

/// The name prefix of this process's temporary files for a target called
/// `name`: `.NAME.sqPID.`; a random part and `.tmp` or `.bak` follow.
pub(crate) fn prefix(name: &OsStr) -> String {
    prefix_for(name, std::process::id())
}

fn prefix_for(name: &OsStr, pid: u32) -> String {
    format!(".{}.sq{pid}.", name.to_string_lossy())
}

/// Removes the temporary files of `target` that earlier runs left beside
/// it when they were killed (`SIGKILL`, a power cut) while staging it, and
/// returns their paths. A file whose process still runs is left alone: it
/// may be another run writing the same output right now.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let target = dir.path().join("model.safetensors");
/// // What a run with process id 4000000000 (never a live one) left behind.
/// let stale = dir.path().join(".model.safetensors.sq4000000000.a1B2c3.tmp");
/// std::fs::write(&stale, b"half a checkpoint")?;
/// assert_eq!(sq_io::remove_leftovers(&target), vec![stale.clone()]);
/// assert!(!stale.exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_leftovers(target: &Path) -> Vec<PathBuf> {
    let Some(name) = target.file_name() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(parent_dir(target)) else { return Vec::new() };
    let start = format!(".{}.sq", name.to_string_lossy());
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let Some(pid) = leftover_pid(&file_name, &start) else { continue };
        // Only plain files: never a directory or a link someone put there.
        if !entry.file_type().is_ok_and(|t| t.is_file()) || is_running(pid) {
            continue;
        }
        let path = entry.path();
        if std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

/// The process id in a leftover's name `START PID . XXXXXX .tmp|.bak`.
fn leftover_pid(file_name: &str, start: &str) -> Option<u32> {
    let rest = file_name.strip_prefix(start)?;
    let rest = rest.strip_suffix(".tmp")?;
    let (pid, random) = rest.split_once('.')?;
    let well_formed = random.len() == 6 && random.chars().all(|c| c.is_ascii_alphanumeric());
    (well_formed && !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit())).then(|| pid.parse().ok())?
}

/// Whether process `pid` exists (it may belong to another user). Where that
/// cannot be known, it is taken to run: nothing is removed.
fn is_running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid == 0 {
            return true;
        }
        // SAFETY: signal 0 only checks that the process exists; no memory is involved.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_the_exact_form_are_leftovers() {
        let start = ".m.json.sq";
        assert_eq!(leftover_pid(".m.json.sq42.aB3xYz.tmp", start), Some(42));
        for other in [
            ".m.json.sq42.aB3xYz.bak",
            ".m.json.sq42.aB3xYz.tmpx",
            ".m.json.sq.aB3xYz.tmp",
            ".m.json.sq4x.aB3xYz.tmp",
            ".m.json.sq42.ab.tmp",
        ] {
            assert_eq!(leftover_pid(other, start), None, "{other}");
        }
        assert_eq!(prefix_for(OsStr::new("m.json"), 42), ".m.json.sq42.");
    }

    #[test]
    fn this_process_runs() {
        assert!(is_running(std::process::id()));
    }
}
