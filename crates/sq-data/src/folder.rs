//! Folders of image files: torchvision's `ImageFolder` layout, and flat
//! folders of unlabelled images.
//!
//! Listing follows torchvision's `ImageFolder` exactly, so that label `i`
//! means the same class in both:
//!
//! - the classes are the sub-folders of the split's folder, sorted by name
//!   (Unicode code points, as Python sorts strings);
//! - a class's files are every file under its folder, sub-folders and
//!   symbolic links included, whose extension is one of torchvision's image
//!   extensions (case-insensitive), ordered by folder path and then name;
//! - a class with no image file is an error, as in torchvision.
//!
//! Only the paths are kept: images are decoded batch by batch when
//! preprocessed. Names that are not valid UTF-8 and symbolic-link loops
//! are errors that name the path.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Dataset, DatasetError, Split};

/// The extensions torchvision's `ImageFolder` lists (`IMG_EXTENSIONS`),
/// lower-case. squeeze decodes JPEG and PNG; a file with another of these
/// extensions is listed, and fails by name when it is decoded.
const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// The most files one split may list (ImageNet's training split has 1.28
/// million): a bound on the memory the listing takes.
const MAX_FILES: usize = 20_000_000;

/// Reads one split of an `ImageFolder` dataset: `dir/train` for
/// [`Split::Train`], `dir/val` (or else `dir/test`) for [`Split::Test`].
pub(super) fn load_classes(dir: &Path, name: &str, split: Split) -> Result<Dataset, DatasetError> {
    let candidates = match split {
        Split::Train => vec![dir.join("train")],
        Split::Test => vec![dir.join("val"), dir.join("test")],
    };
    let Some(root) = candidates.iter().find(|path| path.is_dir()) else {
        let file = match split {
            Split::Train => "the training folder",
            Split::Test => "the validation or test folder",
        };
        return Err(DatasetError::MissingFile { file, tried: candidates });
    };
    let mut classes = Vec::new();
    for entry in read_dir(root)? {
        if entry.is_dir() {
            classes.push((utf8_name(&entry)?, entry));
        }
    }
    if classes.is_empty() {
        return Err(folder_error(
            root,
            "has no class folders (expected one sub-folder per class, as torchvision's ImageFolder)",
        ));
    }
    classes.sort();
    let (mut paths, mut labels) = (Vec::new(), Vec::new());
    for (label, (_, class_dir)) in classes.iter().enumerate() {
        let files = image_files(class_dir)?;
        if files.is_empty() {
            return Err(folder_error(class_dir, "is a class folder with no image files (.jpg, .jpeg, .png, ...)"));
        }
        labels.extend(std::iter::repeat_n(label as u32, files.len()));
        paths.extend(files);
        if paths.len() > MAX_FILES {
            return Err(folder_error(root, &format!("holds more than {MAX_FILES} image files")));
        }
    }
    let class_names = classes.into_iter().map(|(name, _)| name).collect();
    Dataset::from_files(name, paths, Some(labels), class_names)
}

/// Reads the unlabelled images anywhere under `dir`: its only split is
/// [`Split::Train`] (calibration and validation need no labels).
pub(super) fn load_unlabelled(dir: &Path, name: &str, split: Split) -> Result<Dataset, DatasetError> {
    if split == Split::Test {
        return Err(DatasetError::NoSplit {
            spec: format!("{name}:{}", dir.display()),
            split,
            reason: "its images have no labels, so accuracy cannot be measured on them; \
                     use a labelled folder:DIR (one sub-folder per class)"
                .into(),
        });
    }
    if !dir.is_dir() {
        return Err(DatasetError::MissingFile { file: "the image folder", tried: vec![dir.to_owned()] });
    }
    let paths = image_files(dir)?;
    if paths.is_empty() {
        return Err(folder_error(dir, "holds no image files (.jpg, .jpeg, .png, ...)"));
    }
    Dataset::from_files(name, paths, None, Vec::new())
}

/// Every image file under `dir`, following symbolic links, in torchvision's
/// order: by folder path, then by name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut found: Vec<(String, String, PathBuf)> = Vec::new();
    let mut visited = HashSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        let meta = fs::metadata(&folder).map_err(|source| DatasetError::Io { path: folder.clone(), source })?;
        if !visited.insert((meta.dev(), meta.ino())) {
            return Err(folder_error(
                &folder,
                "is reached twice: a symbolic-link loop, or two links to one folder (its images would be listed twice)",
            ));
        }
        let folder_name = utf8_path(&folder)?;
        for entry in read_dir(&folder)? {
            if entry.is_dir() {
                pending.push(entry);
            } else if has_image_extension(&entry) {
                let name = utf8_name(&entry)?;
                found.push((folder_name.clone(), name, entry));
            }
            if found.len() > MAX_FILES {
                return Err(folder_error(dir, &format!("holds more than {MAX_FILES} image files")));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, _, path)| path).collect())
}

/// The entries of `dir`, as paths.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io { path: dir.to_owned(), source };
    fs::read_dir(dir).map_err(io)?.map(|entry| entry.map(|e| e.path()).map_err(io)).collect()
}

/// Whether `path`'s name ends in `.` and one of [`IMAGE_EXTENSIONS`], in
/// any case, as torchvision's `has_file_allowed_extension` tests it (so a
/// file named just `.jpg` is an image too).
fn has_image_extension(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    IMAGE_EXTENSIONS.iter().any(|extension| name.ends_with(&format!(".{extension}")))
}

/// The last component of `path`, which must be valid UTF-8 (labels and
/// order are defined on names).
fn utf8_name(path: &Path) -> Result<String, DatasetError> {
    match path.file_name().map(|name| name.to_str()) {
        Some(Some(name)) => Ok(name.to_owned()),
        _ => Err(folder_error(path, "has a name that is not valid UTF-8; rename it")),
    }
}

/// `path` as a string, which must be valid UTF-8.
fn utf8_path(path: &Path) -> Result<String, DatasetError> {
    path.to_str().map(str::to_owned).ok_or_else(|| folder_error(path, "has a name that is not valid UTF-8; rename it"))
}

fn folder_error(path: &Path, reason: &str) -> DatasetError {
    DatasetError::Folder { path: path.to_owned(), reason: reason.to_owned() }
}
