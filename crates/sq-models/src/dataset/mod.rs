//! Image-classification datasets and their preprocessing.
//!
//! squeeze needs labelled images for two things: a calibration set whose
//! activations are captured before squeezing, and a held-out test set on which
//! accuracy is measured before and after. This module reads the two on-disk
//! formats the project uses and turns pixels into model inputs:
//!
//! - the IDX files of MNIST and Fashion-MNIST, raw or gzip-compressed;
//! - the binary batches of CIFAR-10;
//! - [`Preprocess`], which maps `u8` pixels to the normalised, padded `f32`
//!   tensors that a trained model expects.
//!
//! A split is read into memory at once (Fashion-MNIST's training split is 47
//! MB, CIFAR-10's 154 MB): every consumer makes at least one full pass, and
//! batches are then cheap slices of one buffer.
//!
//! ```no_run
//! use sq_models::dataset::{DatasetSpec, Preprocess, Split};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec: DatasetSpec = "fashion-mnist".parse()?;
//! let test = spec.load(Split::Test)?;
//! let pre = Preprocess::new(vec![0.286], vec![0.353], (28, 28), (32, 32))?;
//! let batch = pre.batch(&test, 0..256)?; // f32, 256 x 1 x 32 x 32
//! # Ok(())
//! # }
//! ```

mod cifar;
mod idx;
mod preprocess;

pub use preprocess::{MeanStd, Preprocess, PreprocessError, MAX_NORMALIZED};

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

/// Number of classes of every dataset read here (MNIST, Fashion-MNIST and
/// CIFAR-10 all have ten); labels are checked against it on load.
const NUM_CLASSES: usize = 10;

/// The most pixel or label bytes one dataset file may hold (1 GiB, twice
/// EMNIST's largest split): a header that claims more fails before any data
/// is read, so a corrupt or hostile file cannot make a loader read or
/// allocate gigabytes.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// Environment variable that overrides where the `fashion-mnist` spec looks
/// for its files; see [`default_data_dir`].
pub const DATA_DIR_ENV: &str = "SQUEEZE_DATA_DIR";

/// The forms [`DatasetSpec`] accepts, quoted in parse errors.
const SPEC_FORMS: &str = "fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR";

/// Which of a dataset's two standard splits to read.
///
/// Calibration draws from [`Split::Train`] so that the held-out
/// [`Split::Test`] stays untouched for measuring accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (60,000 images for (Fashion-)MNIST, 50,000 for
    /// CIFAR-10).
    Train,
    /// The held-out test split (10,000 images in all three datasets).
    Test,
}

impl Split {
    /// The split's name as accepted by [`FromStr`]: `"train"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DatasetError::UnknownSplit { split: s.to_owned() }),
        }
    }
}

/// One split of a dataset, held in memory: `len()` images of identical shape
/// `C x H x W` with one label each.
///
/// Pixels are kept as the dataset stores them (`u8`, channel planes in
/// row-major order) and converted to model inputs batch by batch with
/// [`Preprocess::batch`], so a whole split costs one byte per pixel.
/// Every label is below [`Dataset::num_classes`].
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    name: String,
    channels: usize,
    height: usize,
    width: usize,
    /// `len() x C x H x W` pixels, image after image.
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// A dataset held in memory: `labels.len()` images of `shape`
    /// `(channels, height, width)`, their pixels concatenated image after
    /// image (channel planes in row-major order), as the loaders produce.
    ///
    /// # Errors
    ///
    /// [`DatasetError::InvalidData`] if the pixel count is not
    /// `labels.len() * channels * height * width`, the image shape has a zero
    /// side, or a label is not below [`Dataset::num_classes`].
    pub fn new(
        name: impl Into<String>,
        shape: (usize, usize, usize),
        images: Vec<u8>,
        labels: Vec<u8>,
    ) -> Result<Dataset, DatasetError> {
        let name = name.into();
        let (channels, height, width) = shape;
        let invalid = |reason: String| DatasetError::InvalidData { name: name.clone(), reason };
        if channels == 0 || height == 0 || width == 0 {
            return Err(invalid(format!("image shape {channels}x{height}x{width} has a zero side")));
        }
        let expected = labels.len().checked_mul(channels * height * width);
        if expected != Some(images.len()) {
            return Err(invalid(format!(
                "{} pixels for {} images of {channels}x{height}x{width}",
                images.len(),
                labels.len()
            )));
        }
        if let Some(index) = labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
            return Err(invalid(format!("label {} of image {index} is not below {NUM_CLASSES}", labels[index])));
        }
        Ok(Dataset { name, channels, height, width, images, labels })
    }

    /// Short name of the dataset the images come from, e.g. `"fashion-mnist"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of one image, `(channels, height, width)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        NUM_CLASSES
    }

    /// All labels, in file order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, in file order: `len() x C x H x W` bytes.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// The `C x H x W` pixels of image `index`: one row-major `H x W` plane
    /// per channel.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`, like slice indexing.
    pub fn pixels(&self, index: usize) -> &[u8] {
        assert!(index < self.len(), "image index {index} out of range for a dataset of {} images", self.len());
        &self.images[self.pixel_range(index..index + 1)]
    }

    /// Keeps only the first `limit` images, in file order (a no-op if there
    /// are fewer).
    ///
    /// Calibration sets and `--limit` runs take a deterministic prefix this
    /// way, so that two runs with the same limit see the same images.
    pub fn truncate(&mut self, limit: usize) {
        if limit < self.len() {
            let end = self.pixel_range(0..limit).end;
            self.labels.truncate(limit);
            self.images.truncate(end);
        }
    }

    /// A copy of the images with indices in `range` (clamped to the
    /// dataset), in file order: e.g. a validation slice held out from the end
    /// of the training split while calibration takes its start.
    pub fn slice(&self, range: Range<usize>) -> Dataset {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Dataset {
            name: self.name.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            images: self.images[self.pixel_range(start..end)].to_vec(),
            labels: self.labels[start..end].to_vec(),
        }
    }

    /// Byte range in `images` of the images with indices in `range`.
    fn pixel_range(&self, range: Range<usize>) -> Range<usize> {
        let image_len = self.channels * self.height * self.width;
        range.start * image_len..range.end * image_len
    }
}

/// Summarises instead of dumping every pixel.
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("name", &self.name)
            .field("len", &self.len())
            .field("image_shape", &self.image_shape())
            .finish_non_exhaustive()
    }
}

/// Which dataset to read, and from which directory.
///
/// Parsed from the strings a user types on the command line:
///
/// | spec                  | meaning                                             |
/// |-----------------------|-----------------------------------------------------|
/// | `fashion-mnist`       | Fashion-MNIST from [`default_data_dir`]             |
/// | `fashion-mnist:DIR`   | Fashion-MNIST IDX files in `DIR`                    |
/// | `mnist:DIR`           | MNIST IDX files in `DIR`                            |
/// | `cifar10:DIR`         | CIFAR-10 binary batches in `DIR` or `DIR/cifar-10-batches-bin` |
///
/// IDX files may be raw or gzip-compressed, named with or without `.gz`.
/// [`Display`](fmt::Display) writes the `NAME:DIR` form, which parses back to
/// an equal spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DatasetSpec {
    /// Fashion-MNIST (Zalando's clothing images, 28x28 grey), the dataset of
    /// the project's reference checkpoint; the directory of its IDX files.
    FashionMnist(PathBuf),
    /// MNIST handwritten digits (28x28 grey); the directory of its IDX files.
    Mnist(PathBuf),
    /// CIFAR-10 (32x32 colour); the directory of its binary batches.
    Cifar10(PathBuf),
}

impl DatasetSpec {
    /// The dataset's name as written in a spec, e.g. `"fashion-mnist"`; it
    /// also becomes the loaded [`Dataset::name`].
    pub fn name(&self) -> &'static str {
        match self {
            DatasetSpec::FashionMnist(_) => "fashion-mnist",
            DatasetSpec::Mnist(_) => "mnist",
            DatasetSpec::Cifar10(_) => "cifar10",
        }
    }

    /// The directory the files are read from.
    pub fn dir(&self) -> &Path {
        match self {
            DatasetSpec::FashionMnist(dir) | DatasetSpec::Mnist(dir) | DatasetSpec::Cifar10(dir) => dir,
        }
    }

    /// Every path the two splits may be read from, whether or not it exists:
    /// what a command must never write over.
    pub fn candidate_files(&self) -> Vec<PathBuf> {
        match self {
            DatasetSpec::FashionMnist(dir) | DatasetSpec::Mnist(dir) => idx::candidates(dir),
            DatasetSpec::Cifar10(dir) => cifar::candidates(dir),
        }
    }

    /// Reads one split into memory, checking every header, size and label.
    ///
    /// # Errors
    ///
    /// If a file is missing or unreadable, or its contents are malformed;
    /// see [`DatasetError`].
    pub fn load(&self, split: Split) -> Result<Dataset, DatasetError> {
        match self {
            DatasetSpec::FashionMnist(dir) | DatasetSpec::Mnist(dir) => idx::load(dir, self.name(), split),
            DatasetSpec::Cifar10(dir) => cifar::load(dir, self.name(), split),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name(), self.dir().display())
    }
}

impl FromStr for DatasetSpec {
    type Err = DatasetError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| DatasetError::InvalidSpec { spec: spec.to_owned(), reason };
        let (name, dir) = match spec.split_once(':') {
            None if spec == "fashion-mnist" => return Ok(DatasetSpec::FashionMnist(default_data_dir())),
            None => (spec, None),
            Some((_, "")) => return Err(invalid("the directory after `:` is empty".into())),
            Some((name, dir)) => (name, Some(PathBuf::from(dir))),
        };
        let make: fn(PathBuf) -> DatasetSpec = match name {
            "fashion-mnist" => DatasetSpec::FashionMnist,
            "mnist" => DatasetSpec::Mnist,
            "cifar10" => DatasetSpec::Cifar10,
            _ => return Err(invalid(format!("unknown dataset `{name}`"))),
        };
        dir.map(make).ok_or_else(|| invalid(format!("`{name}` needs a directory: `{name}:DIR`")))
    }
}

/// Where the `fashion-mnist` spec (without a directory) looks for the IDX
/// files, so that the project's own dataset needs no configuration.
///
/// The first that applies:
/// 1. `$SQUEEZE_DATA_DIR` ([`DATA_DIR_ENV`]), if set and non-empty: the
///    directory holding the Fashion-MNIST files themselves;
/// 2. `./data/fashion-mnist`, if it is a directory;
/// 3. `data/fashion-mnist` at the root of the squeeze workspace (also the
///    path named by the missing-file error when neither exists).
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().and_then(Path::parent).unwrap_or(manifest);
    let project = workspace.join("data").join("fashion-mnist");
    let local = Path::new("data").join("fashion-mnist");
    if local.is_dir() {
        local
    } else {
        project
    }
}

/// The first of `candidates` that exists, or [`DatasetError::MissingFile`]
/// naming `file` and every candidate. One that is not a regular file (a
/// FIFO, a directory) is found too, and refused by name when it is read.
fn locate(file: &'static str, candidates: Vec<PathBuf>) -> Result<PathBuf, DatasetError> {
    if let Some(found) = candidates.iter().find(|path| path.exists()) {
        return Ok(found.clone());
    }
    Err(DatasetError::MissingFile { file, tried: candidates })
}

/// Why a dataset could not be read or a spec not parsed.
///
/// Every variant about a file carries its path, and its message names it.
/// Sizes of gzip-compressed files are counted after decompression.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A dataset spec string is not one of the accepted forms.
    #[error("invalid dataset `{spec}`: {reason} (accepted: {SPEC_FORMS})")]
    InvalidSpec {
        /// The string as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A split name is neither `train` nor `test`.
    #[error("unknown split `{split}` (accepted: train, test)")]
    UnknownSplit {
        /// The string as given.
        split: String,
    },
    /// None of the places a dataset file may live holds it.
    #[error("cannot find {file}: tried {}", display_paths(.tried))]
    MissingFile {
        /// The file's canonical name, e.g. `t10k-images-idx3-ubyte`.
        file: &'static str,
        /// Every path looked at, in order of preference.
        tried: Vec<PathBuf>,
    },
    /// Opening, reading or decompressing a file failed.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// An IDX file starts with the wrong magic number, i.e. it is not the
    /// kind of IDX file expected (or not an IDX file at all).
    #[error(
        "{} is not an {kind}: magic number 0x{found:08x}, expected 0x{expected:08x}",
        .path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What the file should be, e.g. `IDX image file (u8, 3 dimensions)`.
        kind: &'static str,
        /// The expected magic number.
        expected: u32,
        /// The magic number found.
        found: u32,
    },
    /// A file ends before the data its header (or format) promises.
    #[error("{} is truncated: expected {expected} bytes, found {actual}", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes promised, header included (saturating at `u64::MAX` for
        /// absurd headers).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A file's header describes an unusable dataset: no images, images
    /// with a zero side, or more data than the file can hold or than
    /// [`MAX_DATA_BYTES`] allows (checked before reading the data).
    #[error("{}: {reason}", .path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// An IDX file holds more data than its header describes.
    #[error("{} has data past the {expected} bytes its header describes", .path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes described by the header, header included.
        expected: u64,
    },
    /// An IDX image file and its label file disagree on the number of items.
    #[error(
        "{} holds {image_count} images but {} holds {label_count} labels",
        .images.display(),
        .labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Number of images in the image file.
        image_count: usize,
        /// Number of labels in the label file.
        label_count: usize,
    },
    /// A label is not a valid class index.
    #[error(
        "{}: label {label} of record {index} is out of range (expected 0..{NUM_CLASSES})",
        .path.display()
    )]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Index of the offending record within the file.
        index: usize,
        /// The offending label.
        label: u8,
    },
    /// Images and labels given to [`Dataset::new`] do not fit together.
    #[error("invalid dataset `{name}`: {reason}")]
    InvalidData {
        /// The dataset's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A CIFAR-10 batch file's size is not a whole number of records.
    #[error(
        "{} is not a CIFAR-10 batch: its size, {len} bytes, is not a multiple of the {record}-byte record",
        .path.display()
    )]
    CifarSize {
        /// The file.
        path: PathBuf,
        /// The file's size in bytes.
        len: usize,
        /// Size of one record: one label byte and 3 x 32 x 32 pixels.
        record: usize,
    },
}

/// `a, b, c` for an error message.
fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(", ")
}
