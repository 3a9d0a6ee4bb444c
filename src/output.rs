//! Writing result files so that readers never see half of one.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary sibling and a rename: a
/// crash or a full disk leaves the old file (or none), never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = sq_models::checkpoint::temp_path(path);
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
