//! [`OutputSet`]: the outputs of one command, written all or none.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::interrupt::log;
use crate::{parent_dir, Error, Result};

/// The output files of one command, written together: stage each file's
/// bytes, then [`commit`](Self::commit) them all. Dropping a set that was
/// not committed removes its temporary files and leaves every target as it
/// was. See the crate documentation for the exact guarantees.
#[derive(Debug)]
pub struct OutputSet {
    /// Entry in the process-wide log of temporary files.
    id: u64,
    staged: Vec<Staged>,
}

/// One complete temporary file waiting to be renamed over its target.
#[derive(Debug)]
struct Staged {
    target: PathBuf,
    /// Removed when dropped, unless renamed.
    temp: TempPath,
}

/// How to undo one rename of a commit that failed later.
enum Undo {
    /// The target did not exist: remove the new file.
    Remove(PathBuf),
    /// The target existed: put its old content back from the hard link.
    Restore { backup: TempPath, target: PathBuf },
    /// The target existed and no backup could be taken: it keeps the new content.
    Keep,
}

impl Default for OutputSet {
    fn default() -> Self {
        Self::new()
    }
}

impl OutputSet {
    /// An empty set.
    pub fn new() -> Self {
        Self { id: log().open(), staged: Vec::new() }
    }

    /// The targets staged so far, in order.
    pub fn targets(&self) -> impl Iterator<Item = &Path> {
        self.staged.iter().map(|s| s.target.as_path())
    }

    /// Writes `bytes` to a new temporary file beside `path` (created
    /// exclusively, flushed to disk, mode `0644`); `path` itself is not
    /// touched until [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// If `path` names no file, was already staged in this set, or its
    /// directory cannot hold the temporary file (missing, read-only, full).
    pub fn stage(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let error = |source| Error { path: path.to_owned(), source };
        let name = path.file_name().ok_or_else(|| error(std::io::Error::other("the path names no file")))?;
        if self.staged.iter().any(|s| s.target == path) {
            return Err(error(std::io::Error::other("the same file is written twice by one command")));
        }
        let mut tmp = {
            // Created and logged under one lock: an interrupt finds the file
            // either not yet created or already logged for removal.
            let mut log = log();
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{}.", name.to_string_lossy()))
                .suffix(".tmp")
                .tempfile_in(parent_dir(path))
                .map_err(error)?;
            log.add(self.id, tmp.path().to_owned());
            tmp
        };
        // Dropping `tmp` on any error below removes the temporary file.
        tmp.write_all(bytes).map_err(error)?;
        set_output_permissions(tmp.as_file()).map_err(error)?;
        tmp.as_file().sync_all().map_err(error)?;
        self.staged.push(Staged { target: path.to_owned(), temp: tmp.into_temp_path() });
        Ok(())
    }

    /// Renames every staged file over its target, in staging order.
    ///
    /// # Errors
    ///
    /// If a rename fails: the renames already done are undone (new targets
    /// removed, replaced ones restored from a hard-link backup), every
    /// temporary file is removed, and the error names the file that failed.
    pub fn commit(mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        // Backups only serve to roll back a *later* failure.
        let backups_needed = staged.len() > 1;
        // The whole commit holds the lock, so an interrupt cannot split it.
        let mut log = log();
        let mut done: Vec<Undo> = Vec::with_capacity(staged.len());
        let mut failure = None;
        for Staged { target, temp } in staged {
            let existed = std::fs::symlink_metadata(&target).is_ok();
            let backup = if existed && backups_needed { backup_of(&target) } else { None };
            if let Err(e) = temp.persist(&target) {
                // `e.path` is dropped here, which removes the temporary file.
                failure = Some(Error { path: target, source: e.error });
                break;
            }
            done.push(match backup {
                Some(backup) => Undo::Restore { backup, target },
                None if existed => Undo::Keep,
                None => Undo::Remove(target),
            });
        }
        let result = match failure {
            Some(err) => {
                for undo in done.into_iter().rev() {
                    match undo {
                        Undo::Remove(target) => {
                            let _ = std::fs::remove_file(target);
                        }
                        Undo::Restore { backup, target } => {
                            let _ = backup.persist(&target);
                        }
                        Undo::Keep => {}
                    }
                }
                Err(err)
            }
            None => {
                // Dropping the backups removes them; the new files stay.
                let mut dirs: Vec<PathBuf> = Vec::new();
                for undo in done {
                    if let Undo::Remove(target) | Undo::Restore { target, .. } = undo {
                        let dir = parent_dir(&target).to_path_buf();
                        if !dirs.contains(&dir) {
                            dirs.push(dir);
                        }
                    }
                }
                dirs.iter().for_each(|dir| sync_dir(dir));
                Ok(())
            }
        };
        log.close(self.id);
        result
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        // Uncommitted temporary files are removed with `self.staged`.
        self.staged.clear();
        log().close(self.id);
    }
}

/// A fresh hard link to `target`'s current content beside it, or `None`
/// where the file system has no hard links (or `target` is not a file).
fn backup_of(target: &Path) -> Option<TempPath> {
    let name = target.file_name()?.to_string_lossy().into_owned();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".bak")
        .make_in(parent_dir(target), |path| std::fs::hard_link(target, path))
        .ok()
        .map(|f| f.into_temp_path())
}

/// Flushes a directory's entries (the renames) to disk, where the system allows it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
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
