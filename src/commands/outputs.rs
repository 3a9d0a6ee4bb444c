//! Output planning: every file a command reads and writes, resolved and
//! checked before any work, then the outputs written all or none.
//!
//! A command names its inputs (`--model`, `--widths`, `--stats`, the
//! dataset's files) and its outputs (`-o` and the manifest derived from it,
//! `--json`, `--plot`, `--save-stats`) to a [`Plan`]; [`Plan::check`]
//! resolves every path (symbolic links and `..` followed, relative paths
//! made absolute) and refuses, naming both flags and the file:
//!
//! * an output that is an input, or the same file as one (a link to it);
//! * two outputs that are the same file;
//! * an output whose directory is missing or read-only, or that is a
//!   directory ([`sq_io::check_writable`]);
//! * an output that is not a regular file (a FIFO, a device, a directory,
//!   or a symbolic link to one), `--force` or not;
//! * an output that already exists, unless `--force` (inputs are never
//!   overwritten, `--force` or not).
//!
//! Temporary files that killed runs left beside an output are removed
//! (and named on stderr) first ([`sq_io::remove_leftovers`]).
//!
//! Inputs must be regular files ([`sq_io::check_input`]: a FIFO, a device
//! or a directory is refused before anything opens it). Once the work is
//! done, [`Outputs::write`] stages every file and commits them together
//! ([`sq_io::OutputSet`]): all are written, or none is. Without `--force`
//! each output is created exclusively at commit time, so an output that
//! another run created meanwhile is kept and this command fails, instead of
//! one silently replacing the other.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// One file a command reads or writes, with the flag that named it.
#[derive(Debug)]
struct Entry {
    /// The flag, in words: `--model`, `-o`, `the manifest (-o with .json)`.
    role: String,
    /// As the user gave it.
    path: PathBuf,
    /// Absolute, with `..` and symbolic links in the directory resolved.
    canonical: PathBuf,
    /// Where the file itself is a symbolic link, or exists under another
    /// name (hard link): the resolved file and its identity.
    resolved: Option<PathBuf>,
    identity: Option<FileId>,
}

/// What the operating system says identifies a file (device and inode on Unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).ok().map(|m| FileId(m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The inputs and outputs of one command.
#[derive(Debug, Default)]
pub struct Plan {
    force: bool,
    inputs: Vec<Entry>,
    outputs: Vec<Entry>,
    errors: Vec<String>,
}

/// Outputs that passed [`Plan::check`], by role.
#[derive(Debug)]
pub struct Outputs {
    force: bool,
    paths: Vec<(String, PathBuf)>,
}

impl Plan {
    /// A plan for a command; `force` allows replacing existing outputs.
    pub fn new(force: bool) -> Self {
        Self { force, ..Self::default() }
    }

    /// An input file that must exist and be a regular file (or a link to one).
    pub fn input(&mut self, role: &str, path: &Path) -> &mut Self {
        match sq_io::check_input(path) {
            Err(e) => self.errors.push(format!("{role} {}: {}", path.display(), io_reason(&e))),
            Ok(_) => self.inputs.push(entry(role, path)),
        }
        self
    }

    /// An optional input file.
    pub fn input_opt(&mut self, role: &str, path: Option<&Path>) -> &mut Self {
        match path {
            Some(path) => self.input(role, path),
            None => self,
        }
    }

    /// Several input files, each of which must exist; the same file given
    /// twice is an error (it would be counted twice).
    pub fn inputs(&mut self, role: &str, paths: &[PathBuf]) -> &mut Self {
        for (i, path) in paths.iter().enumerate() {
            let before = self.inputs.len();
            self.input(role, path);
            if self.inputs.len() > before {
                let new = &self.inputs[before];
                if let Some(first) = paths[..i].iter().find(|p| same_file(&entry(role, p), new)) {
                    self.errors.push(format!(
                        "{role} {} and {} are the same file: its statistics would be counted twice",
                        first.display(),
                        path.display()
                    ));
                }
            }
        }
        self
    }

    /// Files that are read if they exist (a dataset's candidate files): no
    /// error when absent, the loader reports that, but never overwritten;
    /// one that exists and is not a regular file (a FIFO) is refused now.
    pub fn inputs_if_present(&mut self, role: &str, paths: impl IntoIterator<Item = PathBuf>) -> &mut Self {
        for path in paths {
            if std::fs::symlink_metadata(&path).is_ok() {
                self.input(role, &path);
            }
        }
        self
    }

    /// An output file.
    pub fn output(&mut self, role: &str, path: &Path) -> &mut Self {
        self.outputs.push(entry(role, path));
        self
    }

    /// Checks every rule of the module documentation and reports all
    /// violations at once.
    pub fn check(&mut self) -> Result<Outputs> {
        let mut errors = std::mem::take(&mut self.errors);
        for (i, out) in self.outputs.iter().enumerate() {
            let shown = out.path.display();
            if let Some(input) = self.inputs.iter().find(|input| same_file(input, out)) {
                errors.push(format!(
                    "{} {shown} would overwrite the input {} {}; choose another path",
                    out.role,
                    input.role,
                    input.path.display()
                ));
                continue;
            }
            if let Some(other) = self.outputs[..i].iter().find(|other| same_file(other, out)) {
                errors.push(format!(
                    "{} and {} are the same file {shown}; each output needs its own path",
                    other.role, out.role
                ));
                continue;
            }
            for leftover in sq_io::remove_leftovers(&out.path) {
                eprintln!("note: removed {}, left behind by an earlier run that was killed", leftover.display());
            }
            if let Err(e) = sq_io::check_writable(&out.path) {
                errors.push(format!("{}: {}", out.role, chain(&e)));
                continue;
            }
            if !self.force && std::fs::symlink_metadata(&out.path).is_ok() {
                errors.push(format!("{} {shown} already exists; pass --force to replace it", out.role));
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("\nerror: "));
        }
        let paths = self.outputs.iter().map(|o| (o.role.clone(), o.path.clone())).collect();
        Ok(Outputs { force: self.force, paths })
    }
}

impl Outputs {
    /// Writes every output whose bytes are given, all or none: `files` pairs
    /// a role given to [`Plan::output`] with the file's content. Without
    /// `--force`, an output that appeared since [`Plan::check`] fails the
    /// whole write (and is kept).
    pub fn write(&self, files: &[(&str, &[u8])]) -> Result<()> {
        let existing = if self.force { sq_io::Existing::Replace } else { sq_io::Existing::Keep };
        let mut set = sq_io::OutputSet::with_existing(existing);
        for (role, bytes) in files {
            let Some((_, path)) = self.paths.iter().find(|(r, _)| r == role) else {
                bail!("internal error: output `{role}` was not planned");
            };
            set.stage(path, bytes).with_context(|| format!("{role} (nothing was written)"))?;
        }
        for leftover in set.leftovers_removed() {
            eprintln!("note: removed {}, left behind by an earlier run that was killed", leftover.display());
        }
        set.commit().map_err(|e| {
            let role = self.paths.iter().find(|(_, p)| *p == e.path).map_or("an output", |(r, _)| r.as_str());
            anyhow::Error::new(e).context(format!("{role} (nothing was written)"))
        })?;
        Ok(())
    }
}

fn entry(role: &str, path: &Path) -> Entry {
    let canonical = canonical_location(path);
    let resolved = std::fs::canonicalize(path).ok().filter(|r| *r != canonical);
    Entry { role: role.to_owned(), path: path.to_owned(), canonical, resolved, identity: file_id(path) }
}

/// `path` made absolute with its directory resolved (the file itself need
/// not exist, and a symbolic link as the last component is not followed).
fn canonical_location(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| std::path::absolute(dir).unwrap_or(dir.to_owned()));
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Whether two entries name the same file: the same place, the same file
/// through a symbolic link, or the same file under two names (hard link).
fn same_file(a: &Entry, b: &Entry) -> bool {
    let places = |e: &Entry| [Some(e.canonical.clone()), e.resolved.clone()];
    let shared_place = places(a).iter().flatten().any(|p| places(b).iter().flatten().any(|q| p == q));
    shared_place || matches!((a.identity, b.identity), (Some(x), Some(y)) if x == y)
}

/// An I/O error as a reason, without the "(os error N)" noise.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}
