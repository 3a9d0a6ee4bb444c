//! Bounded inputs: every file squeeze reads is checked to be a regular file
//! before it is opened (a FIFO would block forever, `/dev/zero` would never
//! end) and is read with a size cap stated per kind of file, so a wrong path
//! fails at once, naming the file and what is wrong with it.
//!
//! Safetensors files (checkpoints, statistics) are checked by their header
//! before their data is read: a header whose tensors do not end exactly where
//! the file ends (a truncated file, or a valid one padded to gigabytes) is
//! refused after reading a few kilobytes, and so is a header that names a
//! tensor twice.
//!
//! Errors are [`std::io::Error`]s whose message says what is wrong: of kind
//! [`InvalidInput`](std::io::ErrorKind::InvalidInput) for a file refused
//! before its contents are read (its type, its size), of kind
//! [`InvalidData`](std::io::ErrorKind::InvalidData) for malformed contents.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

use serde_json::Value;

/// The most bytes one kind of input file may hold, with the kind's name for
/// errors ("a checkpoint", "a statistics file").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// The size limit in bytes.
    pub bytes: u64,
    /// What the file is, with its article: `a checkpoint`.
    pub what: &'static str,
}

/// The largest safetensors header the format allows (its crate's own limit).
const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// Checks, without opening it, that `path` is a regular file (a symbolic
/// link to one counts), and returns its length. A directory, FIFO, device
/// or socket is an error that says which it is.
pub fn check_input(path: &Path) -> io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    regular_len(&meta)
}

/// Opens a regular file for reading and returns it with its length. The
/// type is checked before opening (a device is never opened) and again on
/// the open file (a FIFO swapped in meanwhile cannot block the open: it is
/// opened non-blocking, then refused).
pub fn open_input(path: &Path) -> io::Result<(File, u64)> {
    check_input(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let len = regular_len(&file.metadata()?)?;
    Ok((file, len))
}

/// Reads a whole regular file of at most `cap.bytes` bytes.
pub fn read_input(path: &Path, cap: Cap) -> io::Result<Vec<u8>> {
    let (file, len) = open_input(path)?;
    check_cap(len, cap)?;
    read_rest(file, Vec::with_capacity(len as usize), len)
}

/// Reads a safetensors file of at most `cap.bytes` bytes, checking its
/// header before its data: the header must be well-formed JSON naming each
/// tensor once, and its tensors must end exactly where the file ends.
pub fn read_safetensors(path: &Path, cap: Cap) -> io::Result<Vec<u8>> {
    let (mut file, len) = open_input(path)?;
    check_cap(len, cap)?;
    let mut prefix = [0u8; 8];
    if len < 8 {
        return Err(invalid(format!("{len} bytes is too short for a safetensors file (its header alone takes 8)")));
    }
    file.read_exact(&mut prefix)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_SAFETENSORS_HEADER {
        return Err(invalid(format!(
            "its first 8 bytes announce a header of {header_len} bytes, more than the {MAX_SAFETENSORS_HEADER} \
             the safetensors format allows: this is not a safetensors file"
        )));
    }
    if 8 + header_len > len {
        return Err(invalid(format!(
            "its first 8 bytes announce a header of {header_len} bytes, but the file holds only {len} bytes: \
             it is truncated or not a safetensors file"
        )));
    }
    let mut raw_header = vec![0u8; header_len as usize];
    file.read_exact(&mut raw_header)?;
    let header =
        crate::json::parse_json(&raw_header).map_err(|e| invalid(format!("its header is not valid JSON: {e}")))?;
    if let Some(data_len) = tensor_data_len(&header) {
        let expected = 8 + header_len + data_len;
        if expected != len {
            let what = if len < expected { "it is truncated" } else { "it has data after its last tensor" };
            return Err(invalid(format!(
                "its header describes a file of {expected} bytes, but the file holds {len}: {what}"
            )));
        }
    }
    let mut start = Vec::with_capacity(len as usize);
    start.extend_from_slice(&prefix);
    start.extend_from_slice(&raw_header);
    read_rest(file, start, len)
}

/// The end of the last tensor's data according to a safetensors header, or
/// `None` where the header is malformed (the safetensors parser then says how).
fn tensor_data_len(header: &Value) -> Option<u64> {
    let mut end = 0;
    for (name, entry) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let offsets = entry.get("data_offsets")?.as_array()?;
        end = end.max(offsets.get(1)?.as_u64()?);
    }
    Some(end)
}

/// The length of a regular file, or an error naming what the path is instead.
fn regular_len(meta: &std::fs::Metadata) -> io::Result<u64> {
    if meta.is_file() {
        return Ok(meta.len());
    }
    Err(refused(format!("it is {}, not a regular file", kind_of(&meta.file_type()))))
}

/// What a file that is not a regular file is, in words.
pub(crate) fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

fn check_cap(len: u64, cap: Cap) -> io::Result<()> {
    if len > cap.bytes {
        return Err(refused(format!("it holds {len} bytes, more than the {} bytes {} may hold", cap.bytes, cap.what)));
    }
    Ok(())
}

/// Appends the rest of `file` to `bytes` (what was read of it so far) and
/// checks that the file ends at `len` bytes.
fn read_rest(file: File, mut bytes: Vec<u8>, len: u64) -> io::Result<Vec<u8>> {
    // One byte more than expected reveals a file that grew meanwhile.
    file.take(len - bytes.len() as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(changed());
    }
    Ok(bytes)
}

fn changed() -> io::Error {
    invalid("the file changed size while it was being read".into())
}

/// A file whose contents are malformed ([`io::ErrorKind::InvalidData`]).
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A file refused before its contents are read: not a regular file, or
/// too large ([`io::ErrorKind::InvalidInput`]).
fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
