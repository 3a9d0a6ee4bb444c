//! Image-classification datasets, decoding and preprocessing for squeeze.
//!
//! squeeze needs images for three things: a calibration set whose
//! activations are captured before squeezing, a validation slice on which a
//! global budget is allocated (both from the training split), and a
//! held-out test set on which accuracy is measured. This crate knows
//! nothing of models; it reads images and turns them into input tensors:
//!
//! - the IDX files of MNIST and Fashion-MNIST, raw or gzip-compressed, and
//!   the binary batches of CIFAR-10, each split read into memory at once
//!   (Fashion-MNIST's training split is 47 MB, CIFAR-10's 154 MB);
//! - folders of JPEG and PNG files: torchvision's `ImageFolder` layout
//!   (`folder:DIR`, labels numbered as torchvision numbers them) or
//!   unlabelled images (`images:DIR`), listed once and decoded batch by
//!   batch, in parallel, so that memory does not grow with the folder;
//! - [`Preprocess`], torchvision's evaluation transforms: resize, centre
//!   crop, `ToTensor`, `Normalize`, and the border a model's input may add;
//! - [`DrawOrder`]: the order calibration and validation images are drawn
//!   in (a seeded shuffle for class-sorted folders).
//!
//! ```no_run
//! use sq_data::{DatasetSpec, Geometry, Preprocess, Split};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Fashion-MNIST's 28x28 images, padded to a 32x32 model input.
//! let test = "fashion-mnist".parse::<DatasetSpec>()?.load(Split::Test)?;
//! let pre = Preprocess::new(vec![0.286], vec![0.353], (28, 28), (32, 32))?;
//! let batch = pre.batch(&test, 0..256)?; // f32, 256 x 1 x 32 x 32
//!
//! // An ImageNet-style folder, as torchvision's Resize(256), CenterCrop(224).
//! let val = "folder:/data/imagenet".parse::<DatasetSpec>()?.load(Split::Test)?;
//! let imagenet = Preprocess::new(vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225], (224, 224), (224, 224))?
//!     .with_geometry(Geometry { resize: Some(256), crop: Some((224, 224)) })?
//!     .with_channels(3);
//! let batch = imagenet.batch(&val, 0..32)?; // f32, 32 x 3 x 224 x 224, decoded in parallel
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod cifar;
mod decode;
mod folder;
mod idx;
mod preprocess;

pub use decode::MAX_IMAGE_BYTES;
pub use preprocess::{parse_hw, Geometry, MeanStd, Preprocess, PreprocessError, MAX_NORMALIZED, MAX_SIDE};

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use thiserror::Error;

/// Number of classes of the IDX and CIFAR-10 datasets (MNIST, Fashion-MNIST
/// and CIFAR-10 all have ten); their labels are checked against it on load.
const NUM_CLASSES: usize = 10;

/// Seed of the shuffle that draws calibration and validation images from an
/// image folder ([`DrawOrder::Shuffled`]).
pub const FOLDER_SEED: u64 = 0;

/// The most pixel or label bytes one dataset file may hold (1 GiB, twice
/// EMNIST's largest split): a header that claims more fails before any data
/// is read, so a corrupt or hostile file cannot make a loader read or
/// allocate gigabytes.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// Environment variable that overrides where the `fashion-mnist` spec looks
/// for its files; see [`default_data_dir`].
pub const DATA_DIR_ENV: &str = "SQUEEZE_DATA_DIR";

/// The forms [`DatasetSpec`] accepts, quoted in parse errors.
const SPEC_FORMS: &str = "fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR, folder:DIR, images:DIR";

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

/// One split of a dataset: `len()` images, each with a label below
/// [`Dataset::num_classes`] unless the dataset is unlabelled.
///
/// The images live in one of two places:
///
/// - **stored**: the IDX and CIFAR-10 loaders read a whole split into one
///   buffer of `u8` pixels (`C x H x W` per image, channel planes in
///   row-major order; Fashion-MNIST's training split is 47 MB), and every
///   image has the same shape ([`Dataset::image_shape`]);
/// - **files**: an image folder is a sorted list of paths, decoded batch by
///   batch when [`Preprocess::batch`] asks for them, so memory does not grow
///   with the folder (ImageNet's validation split is 6.4 GB of JPEG); each
///   image may have its own size.
///
/// Pixels become model inputs batch by batch with [`Preprocess::batch`].
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    name: String,
    images: Images,
    /// One label per image, or `None` for an unlabelled folder.
    labels: Option<Vec<u32>>,
    /// Number of classes (0 when unlabelled).
    classes: usize,
    /// The class folder of each class, for folder datasets (empty otherwise).
    class_names: Vec<String>,
}

/// Where a [`Dataset`]'s pixels are.
#[derive(Clone, PartialEq, Eq)]
enum Images {
    /// Every image in memory, all of one shape.
    Stored { channels: usize, height: usize, width: usize, pixels: Vec<u8> },
    /// One file per image, decoded on demand.
    Files(Vec<PathBuf>),
}

impl Dataset {
    /// A dataset held in memory: `labels.len()` images of `shape`
    /// `(channels, height, width)`, their pixels concatenated image after
    /// image (channel planes in row-major order), as the loaders produce,
    /// with labels below `classes`.
    ///
    /// # Errors
    ///
    /// [`DatasetError::InvalidData`] if the pixel count is not
    /// `labels.len() * channels * height * width`, the image shape has a zero
    /// side, `classes` is 0, or a label is not below `classes`.
    pub fn new(
        name: impl Into<String>,
        shape: (usize, usize, usize),
        pixels: Vec<u8>,
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Dataset, DatasetError> {
        let name = name.into();
        let (channels, height, width) = shape;
        let invalid = |reason: String| DatasetError::InvalidData { name: name.clone(), reason };
        if channels == 0 || height == 0 || width == 0 {
            return Err(invalid(format!("image shape {channels}x{height}x{width} has a zero side")));
        }
        let expected = labels.len().checked_mul(channels * height * width);
        if expected != Some(pixels.len()) {
            return Err(invalid(format!(
                "{} pixels for {} images of {channels}x{height}x{width}",
                pixels.len(),
                labels.len()
            )));
        }
        check_labels(&labels, classes).map_err(invalid)?;
        let images = Images::Stored { channels, height, width, pixels };
        Ok(Dataset { name, images, labels: Some(labels), classes, class_names: Vec::new() })
    }

    /// A dataset of image files, decoded when a batch needs them: labelled
    /// (`labels` has one label per path, each below `class_names.len()`,
    /// the name of each class) or unlabelled (`labels` is `None` and
    /// `class_names` empty).
    ///
    /// # Errors
    ///
    /// [`DatasetError::InvalidData`] if the labels do not fit the paths or
    /// the classes.
    pub fn from_files(
        name: impl Into<String>,
        paths: Vec<PathBuf>,
        labels: Option<Vec<u32>>,
        class_names: Vec<String>,
    ) -> Result<Dataset, DatasetError> {
        let name = name.into();
        let invalid = |reason: String| DatasetError::InvalidData { name: name.clone(), reason };
        if let Some(labels) = &labels {
            if labels.len() != paths.len() {
                return Err(invalid(format!("{} labels for {} files", labels.len(), paths.len())));
            }
            check_labels(labels, class_names.len()).map_err(invalid)?;
        } else if !class_names.is_empty() {
            return Err(invalid("class names for an unlabelled dataset".into()));
        }
        let classes = class_names.len();
        Ok(Dataset { name, images: Images::Files(paths), labels, classes, class_names })
    }

    /// Short name of the dataset the images come from, e.g. `"fashion-mnist"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match &self.images {
            Images::Stored { channels, height, width, pixels } => pixels.len() / (channels * height * width),
            Images::Files(paths) => paths.len(),
        }
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of every image, `(channels, height, width)`, for a dataset held
    /// in memory; `None` for image files, whose shapes are known only once
    /// decoded and may differ.
    pub fn image_shape(&self) -> Option<(usize, usize, usize)> {
        match &self.images {
            Images::Stored { channels, height, width, .. } => Some((*channels, *height, *width)),
            Images::Files(_) => None,
        }
    }

    /// Number of classes; every label is below it. 0 for an unlabelled dataset.
    pub fn num_classes(&self) -> usize {
        self.classes
    }

    /// The class folder names of a folder dataset, in label order (empty for
    /// other datasets): label `i` is `class_names()[i]`.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// All labels, in dataset order; `None` for an unlabelled dataset.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// All pixels of a dataset held in memory, in dataset order
    /// (`len() x C x H x W` bytes); `None` for image files.
    pub fn images(&self) -> Option<&[u8]> {
        match &self.images {
            Images::Stored { pixels, .. } => Some(pixels),
            Images::Files(_) => None,
        }
    }

    /// The `C x H x W` pixels of image `index` of a dataset held in memory
    /// (one row-major `H x W` plane per channel); `None` for image files.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`, like slice indexing.
    pub fn pixels(&self, index: usize) -> Option<&[u8]> {
        assert!(index < self.len(), "image index {index} out of range for a dataset of {} images", self.len());
        match &self.images {
            Images::Stored { channels, height, width, pixels } => {
                let image_len = channels * height * width;
                Some(&pixels[index * image_len..(index + 1) * image_len])
            }
            Images::Files(_) => None,
        }
    }

    /// The file of image `index`, for a dataset of image files.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`, like slice indexing.
    pub fn path(&self, index: usize) -> Option<&Path> {
        match &self.images {
            Images::Stored { .. } => None,
            Images::Files(paths) => Some(&paths[index]),
        }
    }

    /// The `(height, width)` of image `index` as stored: the dataset's
    /// shape, or what an image file's header says.
    ///
    /// # Errors
    ///
    /// [`PreprocessError::Image`] naming the file if its header cannot be read.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`, like slice indexing.
    pub fn image_hw(&self, index: usize) -> Result<(usize, usize), PreprocessError> {
        match &self.images {
            Images::Stored { height, width, .. } => Ok((*height, *width)),
            Images::Files(paths) => decode::dimensions(&paths[index])
                .map_err(|reason| PreprocessError::Image { image: self.describe(index), reason }),
        }
    }

    /// Image `index` in words, for error messages: its file, or its index.
    pub fn describe(&self, index: usize) -> String {
        match &self.images {
            Images::Files(paths) if index < paths.len() => paths[index].display().to_string(),
            _ => format!("image {index} of {}", self.name),
        }
    }

    /// Keeps only the first `limit` images, in dataset order (a no-op if
    /// there are fewer).
    ///
    /// `--limit` runs take a deterministic prefix this way, so that two runs
    /// with the same limit see the same images.
    pub fn truncate(&mut self, limit: usize) {
        if limit < self.len() {
            *self = self.slice(0..limit);
        }
    }

    /// A copy of the images with indices in `range` (clamped to the
    /// dataset), in dataset order: e.g. a validation slice held out from the
    /// end of the training split while calibration takes its start.
    pub fn slice(&self, range: Range<usize>) -> Dataset {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        self.select(&(start..end).collect::<Vec<_>>())
    }

    /// A copy of the images at `indices`, in that order.
    ///
    /// # Panics
    ///
    /// If an index is out of range, like slice indexing.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let images = match &self.images {
            Images::Stored { channels, height, width, .. } => Images::Stored {
                channels: *channels,
                height: *height,
                width: *width,
                pixels: indices.iter().flat_map(|&i| self.pixels(i).unwrap_or_default()).copied().collect(),
            },
            Images::Files(paths) => Images::Files(indices.iter().map(|&i| paths[i].clone()).collect()),
        };
        Dataset {
            name: self.name.clone(),
            images,
            labels: self.labels.as_ref().map(|labels| indices.iter().map(|&i| labels[i]).collect()),
            classes: self.classes,
            class_names: self.class_names.clone(),
        }
    }

    /// The first `count` images, taken in the order of `candidates`, that
    /// decode; and the files passed over because they do not, each with the
    /// reason (for `--skip-unreadable`: a user who prefers a run on fewer
    /// images to no run, told which ones were left out). Files are decoded
    /// in parallel, a chunk at a time, and only until `count` decode, so a
    /// calibration slice of a large folder costs one decoding of its images;
    /// images held in memory always decode.
    ///
    /// # Panics
    ///
    /// If a candidate index is out of range, like slice indexing.
    pub fn first_readable(
        &self,
        candidates: impl IntoIterator<Item = usize>,
        count: usize,
    ) -> (Vec<usize>, Vec<Unreadable>) {
        let mut candidates = candidates.into_iter();
        let Images::Files(paths) = &self.images else { return (candidates.take(count).collect(), Vec::new()) };
        let (mut readable, mut unreadable) = (Vec::with_capacity(count), Vec::new());
        while readable.len() < count {
            let chunk: Vec<usize> = candidates.by_ref().take(count - readable.len()).collect();
            if chunk.is_empty() {
                break;
            }
            let results: Vec<Result<(), String>> =
                chunk.par_iter().map(|&i| decode::decode(&paths[i], 3).map(drop)).collect();
            for (index, result) in chunk.into_iter().zip(results) {
                match result {
                    Ok(()) => readable.push(index),
                    Err(reason) => unreadable.push(Unreadable { image: self.describe(index), reason }),
                }
            }
        }
        (readable, unreadable)
    }

    /// The same images in the order `order` draws them: calibration and
    /// validation slices are then taken from the start and the end of it.
    pub fn in_order(&self, order: DrawOrder) -> Dataset {
        match order {
            DrawOrder::Stored => self.clone(),
            DrawOrder::Shuffled { seed } => {
                let mut indices: Vec<usize> = (0..self.len()).collect();
                indices.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
                self.select(&indices)
            }
        }
    }

    /// The same images labelled with `labels` (for example an original
    /// model's predictions, to score an unlabelled folder by agreement),
    /// with `classes` classes.
    ///
    /// # Errors
    ///
    /// [`DatasetError::InvalidData`] if there is not one label per image
    /// below `classes`.
    pub fn with_labels(mut self, labels: Vec<u32>, classes: usize) -> Result<Dataset, DatasetError> {
        let invalid = |reason: String| DatasetError::InvalidData { name: self.name.clone(), reason };
        if labels.len() != self.len() {
            return Err(invalid(format!("{} labels for {} images", labels.len(), self.len())));
        }
        check_labels(&labels, classes).map_err(invalid)?;
        self.labels = Some(labels);
        self.classes = classes;
        self.class_names.clear();
        Ok(self)
    }
}

/// An image file that does not decode ([`Dataset::first_readable`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The file.
    pub image: String,
    /// Why it does not decode.
    pub reason: String,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.image, self.reason)
    }
}

/// Checks that every label is below `classes`, and that there are classes.
fn check_labels(labels: &[u32], classes: usize) -> Result<(), String> {
    if classes == 0 {
        return Err("a labelled dataset needs at least one class".into());
    }
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(index) => Err(format!("label {} of image {index} is not below {classes}", labels[index])),
        None => Ok(()),
    }
}

/// Summarises instead of dumping every pixel.
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("name", &self.name)
            .field("len", &self.len())
            .field("image_shape", &self.image_shape())
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

/// In which order calibration and validation images are drawn from a
/// training split: the first `--calib` images of this order calibrate, the
/// last `--val` validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DrawOrder {
    /// The split's own order: IDX and CIFAR-10 files store their images in
    /// random class order, so any prefix is a fair sample.
    Stored,
    /// A seeded shuffle: an image folder is sorted by class, so its first
    /// files would all be of one class.
    Shuffled {
        /// Seed of the ChaCha8 generator that drives the Fisher-Yates shuffle.
        seed: u64,
    },
}

impl fmt::Display for DrawOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrawOrder::Stored => f.write_str("stored order"),
            DrawOrder::Shuffled { seed } => write!(f, "shuffled (ChaCha8, seed {seed})"),
        }
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
/// | `folder:DIR`          | torchvision `ImageFolder`s `DIR/train` and `DIR/val` (or `DIR/test`) |
/// | `images:DIR`          | unlabelled images anywhere under `DIR` (a training split only) |
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
    /// Labelled JPEG and PNG images in torchvision's `ImageFolder` layout:
    /// `DIR/train/CLASS/...` and `DIR/val/CLASS/...` (or `DIR/test`), one
    /// folder per class, labels numbered in the sorted order of the folder
    /// names exactly as torchvision numbers them.
    Folder(PathBuf),
    /// Unlabelled JPEG and PNG images anywhere under a directory: enough to
    /// calibrate and validate a compression (which compares the squeezed
    /// model with the original), not to measure accuracy.
    Images(PathBuf),
}

impl DatasetSpec {
    /// The dataset's name as written in a spec, e.g. `"fashion-mnist"`; it
    /// also becomes the loaded [`Dataset::name`].
    pub fn name(&self) -> &'static str {
        match self {
            DatasetSpec::FashionMnist(_) => "fashion-mnist",
            DatasetSpec::Mnist(_) => "mnist",
            DatasetSpec::Cifar10(_) => "cifar10",
            DatasetSpec::Folder(_) => "folder",
            DatasetSpec::Images(_) => "images",
        }
    }

    /// The order calibration and validation images are drawn in from the
    /// training split: the stored order of IDX and CIFAR-10 files (already
    /// random in class), a seeded shuffle of a folder's sorted files.
    pub fn draw_order(&self) -> DrawOrder {
        if self.is_stored() {
            DrawOrder::Stored
        } else {
            DrawOrder::Shuffled { seed: FOLDER_SEED }
        }
    }

    /// Whether the dataset's images carry labels (every form but `images:`).
    pub fn is_labelled(&self) -> bool {
        !matches!(self, DatasetSpec::Images(_))
    }

    /// Whether its loader reads whole splits into memory (IDX, CIFAR-10)
    /// rather than listing image files.
    pub fn is_stored(&self) -> bool {
        matches!(self, DatasetSpec::FashionMnist(_) | DatasetSpec::Mnist(_) | DatasetSpec::Cifar10(_))
    }

    /// The directory the files are read from.
    pub fn dir(&self) -> &Path {
        match self {
            DatasetSpec::FashionMnist(dir)
            | DatasetSpec::Mnist(dir)
            | DatasetSpec::Cifar10(dir)
            | DatasetSpec::Folder(dir)
            | DatasetSpec::Images(dir) => dir,
        }
    }

    /// Every file the two splits may be read from, whether or not it exists:
    /// what a command must never write over. Empty for folders, whose
    /// files are listed when a split is loaded (and are only ever read).
    pub fn candidate_files(&self) -> Vec<PathBuf> {
        match self {
            DatasetSpec::FashionMnist(dir) | DatasetSpec::Mnist(dir) => idx::candidates(dir),
            DatasetSpec::Cifar10(dir) => cifar::candidates(dir),
            DatasetSpec::Folder(_) | DatasetSpec::Images(_) => Vec::new(),
        }
    }

    /// Reads one split, checking every header, size and label: into memory
    /// for IDX and CIFAR-10 files, as a sorted list of files for folders
    /// (decoded batch by batch later).
    ///
    /// # Errors
    ///
    /// If a file is missing or unreadable, or its contents are malformed;
    /// see [`DatasetError`].
    pub fn load(&self, split: Split) -> Result<Dataset, DatasetError> {
        match self {
            DatasetSpec::FashionMnist(dir) | DatasetSpec::Mnist(dir) => idx::load(dir, self.name(), split),
            DatasetSpec::Cifar10(dir) => cifar::load(dir, self.name(), split),
            DatasetSpec::Folder(dir) => folder::load_classes(dir, self.name(), split),
            DatasetSpec::Images(dir) => folder::load_unlabelled(dir, self.name(), split),
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
            "folder" => DatasetSpec::Folder,
            "images" => DatasetSpec::Images,
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
    /// A label is not a valid class index (the IDX and CIFAR-10 formats have ten classes).
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
    /// An image folder cannot be used: no class folders, an empty class, a
    /// name that is not UTF-8, a symbolic-link loop, no images.
    #[error("{}: {reason}", .path.display())]
    Folder {
        /// The folder (or file) at fault.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A split that the dataset does not have, such as the test split of
    /// unlabelled `images:DIR`.
    #[error("{spec} has no {split} split: {reason}")]
    NoSplit {
        /// The dataset spec.
        spec: String,
        /// The split asked for.
        split: Split,
        /// Why, and what to use instead.
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
