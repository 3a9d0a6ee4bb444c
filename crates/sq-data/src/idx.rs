//! The IDX format of MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header followed by raw data: the magic number
//! `0x0000TTDD` (`TT` the element type, `0x08` for `u8`; `DD` the number of
//! dimensions), then one `u32` per dimension, then the elements in row-major
//! order. Image files have three dimensions (count, rows, columns), label
//! files one (count). Files may be gzip-compressed, as they are distributed;
//! compression is recognised by its magic bytes, whatever the file's name.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::{locate, Dataset, DatasetError, Split, MAX_DATA_BYTES, NUM_CLASSES};

/// Magic number of a `u8` IDX file with three dimensions.
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a `u8` IDX file with one dimension.
const LABELS_MAGIC: u32 = 0x0000_0801;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Initial buffer size cap, so that a corrupt header cannot reserve
/// gigabytes up front; the buffer grows past it for real data.
const MAX_RESERVE: u64 = 64 << 20;

/// The image and label files of a split.
fn files(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// Every path [`load`] may read in `dir`, for both splits.
pub(super) fn candidates(dir: &Path) -> Vec<PathBuf> {
    [Split::Train, Split::Test]
        .into_iter()
        .flat_map(|split| {
            let (images, labels) = files(split);
            [images, labels]
        })
        .flat_map(|file| [dir.join(file), dir.join(format!("{file}.gz"))])
        .collect()
}

/// Reads one split of an IDX dataset (MNIST layout) from `dir`.
pub(super) fn load(dir: &Path, name: &str, split: Split) -> Result<Dataset, DatasetError> {
    let (images_file, labels_file) = files(split);
    let images_path = find(dir, images_file)?;
    let labels_path = find(dir, labels_file)?;

    let ([label_count], labels) = read(&labels_path, LABELS_MAGIC, "IDX label file (u8, 1 dimension)")?;
    if let Some(index) = labels.iter().position(|&label| usize::from(label) >= NUM_CLASSES) {
        return Err(DatasetError::LabelOutOfRange { path: labels_path, index, label: labels[index] });
    }
    let ([image_count, height, width], images) = read(&images_path, IMAGES_MAGIC, "IDX image file (u8, 3 dimensions)")?;
    if image_count != label_count {
        return Err(DatasetError::CountMismatch { images: images_path, labels: labels_path, image_count, label_count });
    }
    let labels = labels.into_iter().map(u32::from).collect();
    Dataset::new(name, (1, height, width), images, labels, NUM_CLASSES)
}

/// `dir/file`, or else `dir/file.gz`.
fn find(dir: &Path, file: &'static str) -> Result<PathBuf, DatasetError> {
    locate(file, vec![dir.join(file), dir.join(format!("{file}.gz"))])
}

/// Reads an IDX file of `u8` elements with `D` dimensions: checks the magic
/// number against `magic` (described as `kind` in errors) and the data length
/// against the header, and returns the dimensions and the data.
fn read<const D: usize>(path: &Path, magic: u32, kind: &'static str) -> Result<([usize; D], Vec<u8>), DatasetError> {
    let io_error = |source| DatasetError::Io { path: path.to_owned(), source };
    let (mut reader, compressed, file_len) = open(path)?;

    let header_len = 4 * (1 + D as u64);
    let mut header = Vec::with_capacity(4 * (1 + D));
    (&mut reader).take(header_len).read_to_end(&mut header).map_err(io_error)?;
    let mut words = header.chunks_exact(4).map(|word| u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    if let Some(found) = words.next() {
        if found != magic {
            return Err(DatasetError::BadMagic { path: path.to_owned(), kind, expected: magic, found });
        }
    }
    let truncated = |expected, actual| DatasetError::Truncated { path: path.to_owned(), expected, actual };
    if (header.len() as u64) < header_len {
        return Err(truncated(header_len, header.len() as u64));
    }
    let mut dims = [0; D];
    for (dim, word) in dims.iter_mut().zip(words) {
        *dim = word as usize;
    }
    let shape = |reason: String| DatasetError::Shape { path: path.to_owned(), reason };
    if dims[0] == 0 {
        return Err(shape("the header says it holds no items".into()));
    }
    if dims[1..].contains(&0) {
        return Err(shape(format!(
            "the header gives items of shape {}, with a zero side",
            sq_io::dims_text(&dims[1..])
        )));
    }

    let data_len = dims.iter().fold(1u64, |len, &dim| len.saturating_mul(dim as u64));
    if data_len > MAX_DATA_BYTES {
        return Err(shape(format!(
            "the header claims {data_len} bytes of data (dimensions {}), more than the {MAX_DATA_BYTES} a dataset file may hold",
            sq_io::dims_text(&dims)
        )));
    }
    // Deflate expands at most 1032:1, so a file of `len` bytes can never
    // hold more than that: fail now rather than after decompressing it all.
    if compressed && data_len > file_len.saturating_mul(1032) {
        return Err(shape(format!(
            "the header claims {data_len} bytes of data, more than this {file_len}-byte gzip file can hold decompressed"
        )));
    }
    if !compressed && header_len.saturating_add(data_len) > file_len {
        return Err(truncated(header_len.saturating_add(data_len), file_len));
    }
    let mut data = Vec::with_capacity(data_len.min(MAX_RESERVE) as usize);
    // One byte more than promised reveals trailing data.
    reader.take(data_len.saturating_add(1)).read_to_end(&mut data).map_err(io_error)?;
    let expected = header_len.saturating_add(data_len);
    match (data.len() as u64).cmp(&data_len) {
        std::cmp::Ordering::Less => Err(truncated(expected, header_len + data.len() as u64)),
        std::cmp::Ordering::Greater => Err(DatasetError::TrailingData { path: path.to_owned(), expected }),
        std::cmp::Ordering::Equal => Ok((dims, data)),
    }
}

/// Opens the regular file `path` for reading, decompressing it if it starts
/// with the gzip magic bytes (then the flag is true); also returns its length.
fn open(path: &Path) -> Result<(Box<dyn Read>, bool, u64), DatasetError> {
    let io_error = |source| DatasetError::Io { path: path.to_owned(), source };
    let (file, len) = sq_io::open_input(path).map_err(io_error)?;
    if len > MAX_DATA_BYTES {
        let reason = format!("{len} bytes is more than the {MAX_DATA_BYTES} a dataset file may hold");
        return Err(DatasetError::Shape { path: path.to_owned(), reason });
    }
    let mut reader = BufReader::new(file);
    if reader.fill_buf().map_err(io_error)?.starts_with(&GZIP_MAGIC) {
        Ok((Box::new(MultiGzDecoder::new(reader)), true, len))
    } else {
        Ok((Box::new(reader), false, len))
    }
}
