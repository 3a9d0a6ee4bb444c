//! Tests of the dataset readers and preprocessing, on files written here.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use sq_data::{default_data_dir, Dataset, DatasetError, DatasetSpec, Preprocess, PreprocessError, Split};
use tempfile::TempDir;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Bytes of an IDX file: magic, big-endian dimensions, data.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for dim in dims {
        bytes.extend_from_slice(&dim.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A small image set: `count` images of `rows x cols` with distinct pixels,
/// and labels cycling through the classes.
fn sample(count: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels = (0..count * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
    let labels = (0..count).map(|i| (i % 10) as u8).collect();
    (pixels, labels)
}

/// Writes an IDX test split into `dir`, raw or gzipped (as `NAME.gz`).
fn write_idx_split(dir: &Path, pixels: &[u8], labels: &[u8], rows: u32, cols: u32, gz: bool) {
    let count = labels.len() as u32;
    let images = idx(IMAGES_MAGIC, &[count, rows, cols], pixels);
    let labels = idx(LABELS_MAGIC, &[count], labels);
    if gz {
        write(dir, &format!("{TEST_IMAGES}.gz"), &gzip(&images));
        write(dir, &format!("{TEST_LABELS}.gz"), &gzip(&labels));
    } else {
        write(dir, TEST_IMAGES, &images);
        write(dir, TEST_LABELS, &labels);
    }
}

fn load_mnist(dir: &Path) -> Result<Dataset, DatasetError> {
    DatasetSpec::Mnist(dir.to_owned()).load(Split::Test)
}

/// Loads the test split of `dir`, expecting an error whose message names
/// `file`; returns the error for further checks.
fn load_err(dir: &Path, file: &str) -> DatasetError {
    let err = load_mnist(dir).expect_err("loading should fail");
    let message = err.to_string();
    assert!(message.contains(file), "`{message}` should name {file}");
    err
}

#[test]
fn idx_round_trip_raw_and_gzip() {
    let (pixels, labels) = sample(5, 3, 4);
    for gz in [false, true] {
        let dir = TempDir::new().unwrap();
        write_idx_split(dir.path(), &pixels, &labels, 3, 4, gz);
        let ds = load_mnist(dir.path()).unwrap();
        assert_eq!(ds.name(), "mnist");
        assert_eq!(ds.len(), 5);
        assert!(!ds.is_empty());
        assert_eq!(ds.image_shape(), Some((1, 3, 4)));
        assert_eq!(ds.num_classes(), 10);
        assert_eq!(ds.labels().unwrap(), wide(&labels));
        assert_eq!(ds.images().unwrap(), pixels.as_slice());
        assert_eq!(ds.pixels(2).unwrap(), &pixels[24..36]);
    }
}

#[test]
fn idx_gzip_detected_by_content_not_name() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(2, 2, 2);
    write(dir.path(), TEST_IMAGES, &gzip(&idx(IMAGES_MAGIC, &[2, 2, 2], &pixels)));
    write(dir.path(), TEST_LABELS, &idx(LABELS_MAGIC, &[2], &labels));
    let ds = load_mnist(dir.path()).unwrap();
    assert_eq!(ds.images().unwrap(), pixels.as_slice());
}

#[test]
fn idx_train_split_reads_train_files() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(3, 2, 2);
    write(dir.path(), "train-images-idx3-ubyte.gz", &gzip(&idx(IMAGES_MAGIC, &[3, 2, 2], &pixels)));
    write(dir.path(), "train-labels-idx1-ubyte", &idx(LABELS_MAGIC, &[3], &labels));
    let ds = DatasetSpec::FashionMnist(dir.path().to_owned()).load(Split::Train).unwrap();
    assert_eq!(ds.name(), "fashion-mnist");
    assert_eq!(ds.labels().unwrap(), wide(&labels));
}

#[test]
fn truncate_keeps_a_prefix() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(6, 2, 3);
    write_idx_split(dir.path(), &pixels, &labels, 2, 3, false);
    let mut ds = load_mnist(dir.path()).unwrap();
    ds.truncate(10);
    assert_eq!(ds.len(), 6);
    ds.truncate(4);
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.labels().unwrap(), wide(&labels[..4]));
    assert_eq!(ds.images().unwrap(), &pixels[..24]);
    ds.truncate(0);
    assert!(ds.is_empty());
}

#[test]
fn missing_file_names_every_path_tried() {
    let dir = TempDir::new().unwrap();
    let err = load_err(dir.path(), &format!("{TEST_IMAGES}.gz"));
    let DatasetError::MissingFile { file, tried } = err else {
        panic!("expected MissingFile, got {err:?}");
    };
    assert_eq!(file, TEST_IMAGES);
    assert_eq!(tried, [dir.path().join(TEST_IMAGES), dir.path().join(format!("{TEST_IMAGES}.gz"))]);
}

fn err_text_contains_all(err: &DatasetError, parts: &[&str]) -> bool {
    let message = err.to_string();
    parts.iter().all(|part| message.contains(part))
}

#[test]
fn bad_magic_says_what_was_expected_and_found() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(2, 2, 2);
    write_idx_split(dir.path(), &pixels, &labels, 2, 2, false);
    // The label file where the image file belongs.
    write(dir.path(), TEST_IMAGES, &idx(LABELS_MAGIC, &[2], &labels));
    let err = load_err(dir.path(), TEST_IMAGES);
    assert!(matches!(err, DatasetError::BadMagic { expected: IMAGES_MAGIC, found: LABELS_MAGIC, .. }), "{err:?}");
    assert!(err_text_contains_all(&err, &["0x00000803", "0x00000801"]));
}

#[test]
fn truncated_images_report_expected_and_actual_size() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(4, 2, 2);
    write_idx_split(dir.path(), &pixels, &labels, 2, 2, false);
    write(dir.path(), TEST_IMAGES, &idx(IMAGES_MAGIC, &[4, 2, 2], &pixels[..10]));
    let err = load_err(dir.path(), TEST_IMAGES);
    assert!(matches!(err, DatasetError::Truncated { expected: 32, actual: 26, .. }), "{err:?}");
    assert!(err_text_contains_all(&err, &["32", "26"]));
}

#[test]
fn truncated_labels_report_expected_and_actual_size() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(4, 2, 2);
    write_idx_split(dir.path(), &pixels, &labels, 2, 2, true);
    write(dir.path(), &format!("{TEST_LABELS}.gz"), &gzip(&idx(LABELS_MAGIC, &[4], &labels[..3])));
    let err = load_err(dir.path(), TEST_LABELS);
    assert!(matches!(err, DatasetError::Truncated { expected: 12, actual: 11, .. }), "{err:?}");
}

#[test]
fn truncated_header_is_reported() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(1, 1, 1);
    write_idx_split(dir.path(), &pixels, &labels, 1, 1, false);
    write(dir.path(), TEST_IMAGES, &idx(IMAGES_MAGIC, &[1], &[]));
    let err = load_err(dir.path(), TEST_IMAGES);
    assert!(matches!(err, DatasetError::Truncated { expected: 16, actual: 8, .. }), "{err:?}");
}

#[test]
fn corrupt_gzip_stream_names_the_file() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(50, 4, 4);
    write_idx_split(dir.path(), &pixels, &labels, 4, 4, true);
    let images = gzip(&idx(IMAGES_MAGIC, &[50, 4, 4], &pixels));
    write(dir.path(), &format!("{TEST_IMAGES}.gz"), &images[..images.len() / 2]);
    let err = load_err(dir.path(), TEST_IMAGES);
    assert!(matches!(err, DatasetError::Io { .. } | DatasetError::Truncated { .. }), "{err:?}");
}

#[test]
fn trailing_data_is_reported() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(2, 2, 2);
    write_idx_split(dir.path(), &pixels, &labels, 2, 2, false);
    write(dir.path(), TEST_LABELS, &idx(LABELS_MAGIC, &[2], &[0, 1, 2]));
    let err = load_err(dir.path(), TEST_LABELS);
    assert!(matches!(err, DatasetError::TrailingData { expected: 10, .. }), "{err:?}");
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = TempDir::new().unwrap();
    let (pixels, labels) = sample(3, 2, 2);
    write_idx_split(dir.path(), &pixels, &labels, 2, 2, false);
    write(dir.path(), TEST_LABELS, &idx(LABELS_MAGIC, &[2], &labels[..2]));
    let err = load_err(dir.path(), TEST_IMAGES);
    assert!(err.to_string().contains(TEST_LABELS), "{err}");
    assert!(matches!(err, DatasetError::CountMismatch { image_count: 3, label_count: 2, .. }), "{err:?}");
}

#[test]
fn label_out_of_range_is_reported() {
    let dir = TempDir::new().unwrap();
    let (pixels, _) = sample(3, 2, 2);
    write_idx_split(dir.path(), &pixels, &[0, 9, 10], 2, 2, false);
    let err = load_err(dir.path(), TEST_LABELS);
    assert!(matches!(err, DatasetError::LabelOutOfRange { index: 2, label: 10, .. }), "{err:?}");
}

/// A CIFAR-10 record whose channel `c` pixel `i` is `c * 80 + seed + i % 16`.
fn cifar_record(label: u8, seed: u8) -> Vec<u8> {
    let mut record = vec![label];
    for channel in 0..3u8 {
        record.extend((0..1024).map(|i| channel * 80 + seed + (i % 16) as u8));
    }
    record
}

#[test]
fn cifar_reads_channel_planes_from_dir_and_subdir() {
    let dir = TempDir::new().unwrap();
    for batch in 1..=5u8 {
        write(dir.path(), &format!("data_batch_{batch}.bin"), &cifar_record(batch, batch));
    }
    let sub = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    let test = [cifar_record(7, 0), cifar_record(3, 40)].concat();
    write(&sub, "test_batch.bin", &test);

    let spec = DatasetSpec::Cifar10(dir.path().to_owned());
    let train = spec.load(Split::Train).unwrap();
    assert_eq!(train.name(), "cifar10");
    assert_eq!(train.labels().unwrap(), &[1, 2, 3, 4, 5]);
    assert_eq!(train.pixels(4).unwrap(), &cifar_record(5, 5)[1..]);

    let test = spec.load(Split::Test).unwrap();
    assert_eq!(test.image_shape(), Some((3, 32, 32)));
    assert_eq!(test.labels().unwrap(), &[7, 3]);
    let image = test.pixels(1).unwrap();
    for (channel, plane) in image.chunks(1024).enumerate() {
        assert_eq!(plane[0], channel as u8 * 80 + 40, "channel {channel}");
        assert_eq!(plane[33], channel as u8 * 80 + 40 + 1, "channel {channel}");
    }
}

#[test]
fn cifar_bad_size_names_the_file() {
    let dir = TempDir::new().unwrap();
    let mut bytes = cifar_record(1, 0);
    bytes.pop();
    write(dir.path(), "test_batch.bin", &bytes);
    let err = DatasetSpec::Cifar10(dir.path().to_owned()).load(Split::Test).unwrap_err();
    assert!(err.to_string().contains("test_batch.bin"), "{err}");
    assert!(
        matches!(err, DatasetError::CifarSize { len, record: CIFAR_RECORD, .. } if len == CIFAR_RECORD - 1),
        "{err:?}"
    );
}

#[test]
fn cifar_bad_label_names_the_file() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "test_batch.bin", &[cifar_record(1, 0), cifar_record(200, 0)].concat());
    let err = DatasetSpec::Cifar10(dir.path().to_owned()).load(Split::Test).unwrap_err();
    assert!(err.to_string().contains("test_batch.bin"), "{err}");
    assert!(matches!(err, DatasetError::LabelOutOfRange { index: 1, label: 200, .. }), "{err:?}");
}

#[test]
fn cifar_missing_file_names_both_places() {
    let dir = TempDir::new().unwrap();
    let err = DatasetSpec::Cifar10(dir.path().to_owned()).load(Split::Train).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("data_batch_1.bin"), "{message}");
    assert!(message.contains("cifar-10-batches-bin"), "{message}");
}

#[test]
fn specs_parse_and_display_round_trip() {
    let cases = [
        ("mnist:/data/mnist", DatasetSpec::Mnist("/data/mnist".into())),
        ("cifar10:rel/dir", DatasetSpec::Cifar10("rel/dir".into())),
        ("fashion-mnist:C:\\data", DatasetSpec::FashionMnist("C:\\data".into())),
        ("fashion-mnist", DatasetSpec::FashionMnist(default_data_dir())),
    ];
    for (text, spec) in cases {
        let parsed: DatasetSpec = text.parse().unwrap();
        assert_eq!(parsed, spec, "{text}");
        assert_eq!(parsed.to_string().parse::<DatasetSpec>().unwrap(), spec);
    }
    assert_eq!(DatasetSpec::Mnist("/d".into()).to_string(), "mnist:/d");
}

#[test]
fn unknown_spec_lists_accepted_forms() {
    for bad in ["imagenet:/data", "mnist", "cifar10:", "", "MNIST:/d"] {
        let err = bad.parse::<DatasetSpec>().unwrap_err();
        assert!(matches!(err, DatasetError::InvalidSpec { .. }), "{bad}: {err:?}");
        let message = err.to_string();
        for form in ["fashion-mnist:DIR", "mnist:DIR", "cifar10:DIR"] {
            assert!(message.contains(form), "{message}");
        }
        assert!(message.contains(&format!("`{bad}`")), "{message}");
    }
}

#[test]
fn splits_parse() {
    assert_eq!("train".parse::<Split>().unwrap(), Split::Train);
    assert_eq!("test".parse::<Split>().unwrap(), Split::Test);
    assert_eq!(Split::Test.to_string(), "test");
    let err = "valid".parse::<Split>().unwrap_err();
    assert!(err.to_string().contains("`valid`"), "{err}");
}

/// A one-image 28x28 grey dataset whose pixel (y, x) is `(y * 28 + x) % 256`.
fn grey_28x28(dir: &Path) -> Dataset {
    let pixels: Vec<u8> = (0..28 * 28).map(|i| (i % 256) as u8).collect();
    write_idx_split(dir, &pixels, &[3], 28, 28, false);
    load_mnist(dir).unwrap()
}

#[test]
fn preprocess_normalises_then_pads_with_normalised_black() {
    let dir = TempDir::new().unwrap();
    let ds = grey_28x28(dir.path());
    let pre = Preprocess::new(vec![0.286], vec![0.353], (28, 28), (32, 32)).unwrap();
    assert_eq!(pre.pad(), 2);
    let batch = pre.batch(&ds, 0..1).unwrap();
    assert_eq!(batch.dims(), &[1, 1, 32, 32]);
    assert_eq!(batch.dtype(), candle_core::DType::F32);
    let values = batch.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let at = |y: usize, x: usize| values[y * 32 + x];

    let black = (0.0f32 - 0.286) / 0.353;
    assert!((black - -0.81020).abs() < 1e-5);
    for i in 0..32 {
        for (y, x) in [(0, i), (1, i), (30, i), (31, i), (i, 0), (i, 1), (i, 30), (i, 31)] {
            assert_eq!(at(y, x), black, "border ({y}, {x})");
        }
    }
    // Image pixel (y, x) lands at (y + 2, x + 2), computed as torchvision does.
    for (y, x) in [(0, 0), (0, 27), (9, 3), (27, 27)] {
        let p = ((y * 28 + x) % 256) as f32;
        assert_eq!(at(y + 2, x + 2), (p / 255.0 - 0.286) / 0.353, "pixel ({y}, {x})");
    }
    // Pixel (9, 3) is 255: white.
    assert_eq!(at(11, 5), (1.0 - 0.286) / 0.353);
}

#[test]
fn preprocess_per_channel_stats_apply_to_their_plane() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "test_batch.bin", &[cifar_record(0, 0), cifar_record(1, 5)].concat());
    let ds = DatasetSpec::Cifar10(dir.path().to_owned()).load(Split::Test).unwrap();
    let (mean, std) = ([0.4914f32, 0.4822, 0.4465], [0.247f32, 0.243, 0.261]);
    let pre = Preprocess::new(mean.to_vec(), std.to_vec(), (32, 32), (34, 34)).unwrap();
    let batch = pre.batch(&ds, 1..2).unwrap();
    assert_eq!(batch.dims(), &[1, 3, 34, 34]);
    let planes = batch.squeeze(0).unwrap().to_vec3::<f32>().unwrap();
    for c in 0..3 {
        assert_eq!(planes[c][0][0], (0.0 - mean[c]) / std[c]);
        let p = f32::from(c as u8 * 80 + 5);
        assert_eq!(planes[c][1][1], (p / 255.0 - mean[c]) / std[c]);
    }
    // The same stats cannot serve grey images.
    let grey = grey_28x28(TempDir::new().unwrap().path());
    let err = pre.batch(&grey, 0..1).unwrap_err();
    assert!(matches!(err, PreprocessError::ChannelMismatch { stats: 3, channels: 1 }), "{err:?}");
}

#[test]
fn preprocess_rejects_bad_geometry_stats_and_ranges() {
    let new = |image, input| Preprocess::new(vec![0.5], vec![0.5], image, input);
    assert_eq!(new((28, 28), (28, 28)).unwrap().pad(), 0);
    assert!(matches!(new((28, 28), (26, 30)), Err(PreprocessError::InputTooSmall { .. })));
    assert!(matches!(new((28, 28), (31, 31)), Err(PreprocessError::UnevenPadding { .. })));
    assert!(matches!(new((28, 28), (32, 30)), Err(PreprocessError::UnevenPadding { .. })));

    let with = |mean: &[f32], std: &[f32]| Preprocess::with_pad(mean.to_vec(), std.to_vec(), 0);
    assert!(with(&[0.5], &[0.2, 0.3, 0.4]).is_ok());
    assert!(matches!(with(&[], &[1.0]), Err(PreprocessError::StatsLength { .. })));
    assert!(matches!(with(&[0.1, 0.2], &[0.1, 0.2, 0.3]), Err(PreprocessError::StatsLength { .. })));
    assert!(matches!(with(&[0.5], &[0.0]), Err(PreprocessError::InvalidStats { channel: 0, .. })));
    assert!(matches!(with(&[0.5, f32::NAN], &[1.0]), Err(PreprocessError::InvalidStats { channel: 1, .. })));

    let dir = TempDir::new().unwrap();
    let ds = grey_28x28(dir.path());
    let pre = new((28, 28), (32, 32)).unwrap();
    assert_eq!(pre.batch(&ds, 1..1).unwrap().dims(), &[0, 1, 32, 32]);
    assert!(matches!(pre.batch(&ds, 0..2), Err(PreprocessError::OutOfRange { len: 1, .. })));
}

#[test]
fn normalisation_from_checkpoint_metadata() {
    let meta = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let reference = meta(&[("normalize_mean", "0.286"), ("normalize_std", "0.353"), ("arch", "vgg16_bn")]);
    assert_eq!(Preprocess::from_metadata(&reference).unwrap(), Some((vec![0.286], vec![0.353])));
    let cifar = meta(&[("normalize_mean", "[0.4914, 0.4822,0.4465]"), ("normalize_std", "0.25,0.25,0.25")]);
    assert_eq!(Preprocess::from_metadata(&cifar).unwrap(), Some((vec![0.4914, 0.4822, 0.4465], vec![0.25; 3])));
    assert_eq!(Preprocess::from_metadata(&meta(&[("arch", "vgg")])).unwrap(), None);
    let err = Preprocess::from_metadata(&meta(&[("normalize_mean", "0.5")])).unwrap_err();
    assert!(err.to_string().contains("normalize_std"), "{err}");
    let err = Preprocess::from_metadata(&meta(&[("normalize_mean", "0.5"), ("normalize_std", "0.2;0.3")])).unwrap_err();
    assert!(matches!(err, PreprocessError::BadMetadata { key: "normalize_std", .. }), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn idx_round_trips_any_shape(
        count in 0usize..6, rows in 0u32..5, cols in 0u32..5, gz: bool, seed: u8,
    ) {
        let dir = TempDir::new().unwrap();
        let pixels: Vec<u8> =
            (0..count * (rows * cols) as usize).map(|i| seed.wrapping_add(i as u8)).collect();
        let labels: Vec<u8> = (0..count).map(|i| ((seed as usize + i) % 10) as u8).collect();
        write_idx_split(dir.path(), &pixels, &labels, rows, cols, gz);
        if count == 0 || rows == 0 || cols == 0 {
            // No images, or images with a zero side, are not a dataset.
            let err = load_mnist(dir.path()).unwrap_err();
            prop_assert!(matches!(err, DatasetError::Shape { .. }), "{err:?}");
            return Ok(());
        }
        let ds = load_mnist(dir.path()).unwrap();
        prop_assert_eq!(ds.image_shape(), Some((1, rows as usize, cols as usize)));
        prop_assert_eq!(ds.labels().unwrap(), wide(&labels));
        prop_assert_eq!(ds.images().unwrap(), pixels.as_slice());
        let pre = Preprocess::with_pad(vec![0.5], vec![0.25], 1).unwrap();
        let batch = pre.batch(&ds, 0..count).unwrap();
        prop_assert_eq!(batch.dims(), &[count, 1, rows as usize + 2, cols as usize + 2]);
    }

    #[test]
    fn batch_is_lookup_surrounded_by_border(
        pixels in proptest::collection::vec(any::<u8>(), 2 * 3 * 4),
        pad in 0usize..3, mean in -1.0f32..1.0, std in 0.05f32..2.0,
    ) {
        let dir = TempDir::new().unwrap();
        write_idx_split(dir.path(), &pixels, &[1, 2], 3, 4, false);
        let ds = load_mnist(dir.path()).unwrap();
        let pre = Preprocess::with_pad(vec![mean], vec![std], pad).unwrap();
        let (h, w) = (3 + 2 * pad, 4 + 2 * pad);
        let batch = pre.batch(&ds, 0..2).unwrap();
        prop_assert_eq!(batch.dims(), &[2, 1, h, w]);
        let out = batch.squeeze(1).unwrap().to_vec3::<f32>().unwrap();
        for (n, image) in out.iter().enumerate() {
            for (y, row) in image.iter().enumerate() {
                for (x, &value) in row.iter().enumerate() {
                    let inside = (pad..pad + 3).contains(&y) && (pad..pad + 4).contains(&x);
                    let p = if inside { pixels[n * 12 + (y - pad) * 4 + (x - pad)] } else { 0 };
                    prop_assert_eq!(value, (f32::from(p) / 255.0 - mean) / std);
                }
            }
        }
    }
}

/// The real Fashion-MNIST test split, from Debian's `dataset-fashion-mnist`.
#[test]
fn real_fashion_mnist_test_split() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.is_dir() {
        eprintln!("skipped: {} is missing (install dataset-fashion-mnist)", dir.display());
        return;
    }
    let ds = DatasetSpec::FashionMnist(dir.to_owned()).load(Split::Test).unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.image_shape(), Some((1, 28, 28)));
    let mut counts = [0usize; 10];
    for &label in ds.labels().unwrap() {
        counts[label as usize] += 1;
    }
    assert_eq!(counts, [1000; 10]);
}

/// Labels as the loaders return them.
fn wide(labels: &[u8]) -> Vec<u32> {
    labels.iter().map(|&l| u32::from(l)).collect()
}
