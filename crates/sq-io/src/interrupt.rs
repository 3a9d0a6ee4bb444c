//! The process-wide log of temporary files in flight, and the Ctrl-C
//! handler that removes them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Exit status of a process stopped by [`remove_outputs_on_interrupt`]'s
/// handler: 128 + SIGINT, as shells report a Ctrl-C.
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// The temporary files of every output set in flight, by set id.
///
/// Only temporary files need to be here: a set's renames happen while it
/// holds the lock on this log ([`OutputSet::commit`](crate::OutputSet::commit)),
/// so the handler, which takes the same lock, runs either before a commit
/// (targets untouched, temporaries to remove) or after it (nothing left to do).
#[derive(Debug, Default)]
pub(crate) struct Log {
    next_id: u64,
    sets: BTreeMap<u64, Vec<PathBuf>>,
}

impl Log {
    /// Opens a new, empty entry and returns its id.
    pub(crate) fn open(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sets.insert(id, Vec::new());
        id
    }

    /// Records a temporary file of set `id`.
    pub(crate) fn add(&mut self, id: u64, temp: PathBuf) {
        self.sets.entry(id).or_default().push(temp);
    }

    /// Forgets set `id`: it is committed or cleaned up.
    pub(crate) fn close(&mut self, id: u64) {
        self.sets.remove(&id);
    }

    /// Removes every temporary file in flight.
    fn remove_all(&mut self) {
        for temp in self.sets.values().flatten() {
            let _ = std::fs::remove_file(temp);
        }
        self.sets.clear();
    }
}

/// The log, locked. Every update is a single insert or remove, so a panic
/// while it was held leaves it consistent and poisoning is ignored.
pub(crate) fn log() -> MutexGuard<'static, Log> {
    static LOG: Mutex<Log> = Mutex::new(Log { next_id: 0, sets: BTreeMap::new() });
    LOG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The interrupt handler could not be installed (another one is already
/// set in this process, or the system refused).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot install the Ctrl-C handler that removes unfinished outputs: {0}")]
pub struct InterruptError(String);

/// Installs a handler for SIGINT, SIGTERM and SIGHUP (Ctrl-C on Windows)
/// that removes the temporary file of every output in flight and exits with
/// status [`INTERRUPTED_EXIT_CODE`]. A commit in progress finishes first
/// (it takes microseconds), so the targets of an
/// [`OutputSet`](crate::OutputSet) are all old or all new.
///
/// It also ignores `SIGXFSZ`, so that a write past a file-size limit
/// (`ulimit -f`) fails with an error, which removes the temporary file,
/// instead of killing the process and leaving it behind.
///
/// Meant for binaries, once at start-up; calling it again is a no-op that
/// returns the first call's result. Libraries never install it themselves:
/// without it, a signal kills the process the default way and may leave a
/// temporary file (never a truncated target).
pub fn remove_outputs_on_interrupt() -> Result<(), InterruptError> {
    static INSTALLED: OnceLock<Result<(), InterruptError>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            #[cfg(unix)]
            // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            ctrlc::set_handler(|| {
                // Keep the lock until the process is gone, so that no other
                // thread can create a temporary file or commit afterwards.
                let mut log = log();
                log.remove_all();
                std::process::exit(INTERRUPTED_EXIT_CODE);
            })
            .map_err(|e| InterruptError(e.to_string()))
        })
        .clone()
}

/// Restores the default action of `SIGPIPE` (Rust's runtime ignores it), so
/// that `squeeze eval ... | head` ends quietly when the reader goes away, as
/// Unix tools do, instead of panicking on a write to a closed stdout. Every
/// command commits its outputs before it prints its summary, so the files
/// are whole either way. Meant for binaries, at start-up; a no-op elsewhere
/// than on Unix.
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
