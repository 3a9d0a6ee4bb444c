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
    existing: Existing,
    staged: Vec<Staged>,
    /// Temporary files of killed earlier runs, removed while staging.
    leftovers: Vec<PathBuf>,
}

/// What [`OutputSet::commit`] does with a target that exists when it is
/// renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Replace it (a regular file, or a symbolic link, which is replaced
    /// itself; what it points to is left alone).
    #[default]
    Replace,
    /// Keep it and fail the whole commit: the target is created exclusively
    /// (an atomic no-replace rename), so a file that another process created
    /// meanwhile is never silently replaced.
    Keep,
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
    /// An empty set whose commit replaces existing targets ([`Existing::Replace`]).
    pub fn new() -> Self {
        Self::with_existing(Existing::Replace)
    }

    /// An empty set whose commit treats existing targets as `existing` says.
    pub fn with_existing(existing: Existing) -> Self {
        Self { id: log().open(), existing, staged: Vec::new(), leftovers: Vec::new() }
    }

    /// Temporary files that killed earlier runs had left beside the targets,
    /// removed while staging ([`remove_leftovers`](crate::remove_leftovers)).
    pub fn leftovers_removed(&self) -> &[PathBuf] {
        &self.leftovers
    }

    /// The targets staged so far, in order.
    pub fn targets(&self) -> impl Iterator<Item = &Path> {
        self.staged.iter().map(|s| s.target.as_path())
    }

    /// Writes `bytes` to a new temporary file beside `path` (created
    /// exclusively, flushed to disk, mode `0644`); `path` itself is not
    /// touched until [`commit`](Self::commit). Temporary files of `path`
    /// that killed runs left behind are removed first.
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
        self.leftovers.extend(crate::remove_leftovers(path));
        let mut tmp = {
            // Created and logged under one lock: an interrupt finds the file
            // either not yet created or already logged for removal.
            let mut log = log();
            let tmp = tempfile::Builder::new()
                .prefix(&crate::leftovers::prefix(name))
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
    /// If a target exists and is not a regular file or a symbolic link (a
    /// FIFO, a device, a directory), or exists at all under
    /// [`Existing::Keep`], or a rename fails: the renames already done are
    /// undone (new targets removed, replaced ones restored from a hard-link
    /// backup), every temporary file is removed, and the error names the
    /// file that failed.
    pub fn commit(mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        // Backups only serve to roll back a *later* failure.
        let backups_needed = staged.len() > 1;
        // The whole commit holds the lock, so an interrupt cannot split it.
        let mut log = log();
        let mut done: Vec<Undo> = Vec::with_capacity(staged.len());
        let mut failure = None;
        for Staged { target, temp } in staged {
            let existed = match replaceable(&target, self.existing) {
                Ok(existed) => existed,
                Err(source) => {
                    failure = Some(Error { path: target, source });
                    break;
                }
            };
            let backup = if existed && backups_needed { backup_of(&target) } else { None };
            let persisted = match self.existing {
                Existing::Replace => temp.persist(&target),
                Existing::Keep => temp.persist_noclobber(&target),
            };
            if let Err(e) = persisted {
                // `e.path` is dropped here, which removes the temporary file.
                let source = match e.error.kind() {
                    std::io::ErrorKind::AlreadyExists if self.existing == Existing::Keep => appeared(),
                    _ => e.error,
                };
                failure = Some(Error { path: target, source });
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

/// Whether `target` exists now, or why it may not be replaced.
fn replaceable(target: &Path, existing: Existing) -> std::io::Result<bool> {
    let Ok(meta) = std::fs::symlink_metadata(target) else { return Ok(false) };
    if existing == Existing::Keep {
        return Err(appeared());
    }
    let file_type = meta.file_type();
    if !(file_type.is_file() || file_type.is_symlink()) {
        let kind = crate::input::kind_of(&file_type);
        return Err(std::io::Error::other(format!("it is {kind}, not a regular file: squeeze never replaces one")));
    }
    Ok(true)
}

/// The error of a target that another process created while the command ran.
fn appeared() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "the file was created by something else while this command ran (another run writing the same output?); \
         it was kept and nothing was written",
    )
}

/// A fresh hard link to `target`'s current content beside it, or `None`
/// where the file system has no hard links (or `target` is not a file).
fn backup_of(target: &Path) -> Option<TempPath> {
    tempfile::Builder::new()
        .prefix(&crate::leftovers::prefix(target.file_name()?))
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
