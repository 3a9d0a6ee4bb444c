//! The binary version of CIFAR-10 (`cifar-10-binary.tar.gz`).
//!
//! Each batch file is a sequence of 3073-byte records: one label byte, then
//! the 32x32 image as three row-major planes, red, green and blue — already
//! the `C x H x W` layout of [`Dataset`], so records are copied as they are.

use std::path::{Path, PathBuf};

use super::{locate, Dataset, DatasetError, Split, MAX_DATA_BYTES, NUM_CLASSES};

/// Image channels, height and width.
const SHAPE: (usize, usize, usize) = (3, 32, 32);
/// Bytes per record: the label, then the pixels.
const RECORD: usize = 1 + SHAPE.0 * SHAPE.1 * SHAPE.2;
/// The directory the official archive unpacks to; accepted below the given
/// directory so that users can point at where they unpacked it.
const SUBDIR: &str = "cifar-10-batches-bin";

/// The batch files of a split, in order.
fn files(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => {
            &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"]
        }
        Split::Test => &["test_batch.bin"],
    }
}

/// Every path [`load`] may read below `dir`, for both splits.
pub(super) fn candidates(dir: &Path) -> Vec<PathBuf> {
    [Split::Train, Split::Test]
        .into_iter()
        .flat_map(|split| files(split).iter())
        .flat_map(|file| [dir.join(file), dir.join(SUBDIR).join(file)])
        .collect()
}

/// Reads one split of CIFAR-10 from `dir` or `dir/cifar-10-batches-bin`,
/// concatenating the batch files in order.
pub(super) fn load(dir: &Path, name: &str, split: Split) -> Result<Dataset, DatasetError> {
    let files = files(split);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for &file in files {
        let path = locate(file, vec![dir.join(file), dir.join(SUBDIR).join(file)])?;
        let io_error = |source| DatasetError::Io { path: path.clone(), source };
        let len = sq_io::check_input(&path).map_err(io_error)?;
        if len > MAX_DATA_BYTES {
            let reason = format!("{len} bytes is more than the {MAX_DATA_BYTES} a dataset file may hold");
            return Err(DatasetError::Shape { path, reason });
        }
        if len == 0 {
            return Err(DatasetError::Shape { path, reason: "the file is empty: it holds no images".into() });
        }
        let cap = sq_io::Cap { bytes: MAX_DATA_BYTES, what: "a dataset file" };
        let bytes = sq_io::read_input(&path, cap).map_err(io_error)?;
        if bytes.len() % RECORD != 0 {
            return Err(DatasetError::CifarSize { path, len: bytes.len(), record: RECORD });
        }
        let count = bytes.len() / RECORD;
        images.reserve(count * (RECORD - 1));
        labels.reserve(count);
        for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
            // `chunks_exact` yields whole records, so both halves exist.
            let (label, pixels) = (record[0], &record[1..]);
            if usize::from(label) >= NUM_CLASSES {
                return Err(DatasetError::LabelOutOfRange { path, index, label });
            }
            labels.push(label);
            images.extend_from_slice(pixels);
        }
    }
    let (channels, height, width) = SHAPE;
    let labels = labels.into_iter().map(u32::from).collect();
    Dataset::new(name, (channels, height, width), images, labels, NUM_CLASSES)
}
