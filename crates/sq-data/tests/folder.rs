//! Image folders: torchvision's `ImageFolder` order and labels, unlabelled
//! folders, the draw order, and every kind of bad file named by its path.

use std::fs;
use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, Rgb};
use sq_data::{DatasetSpec, DrawOrder, Geometry, Preprocess, Split};

/// Writes a `w x h` RGB PNG whose pixels are `seed`-dependent.
fn png(path: &Path, (w, h): (u32, u32), seed: u8) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = ImageBuffer::from_fn(w, h, |x, y| Rgb([seed, (x % 256) as u8, (y % 256) as u8]));
    image.save_with_format(path, image::ImageFormat::Png).unwrap();
}

fn folder(spec: &str, dir: &Path) -> DatasetSpec {
    format!("{spec}:{}", dir.display()).parse().unwrap()
}

#[test]
fn classes_are_sorted_folder_names_and_files_are_sorted_as_torchvision_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train");
    // Created out of order, with a nested folder, an upper-case extension and a file that is not an image.
    // A file named just `.png` is an image to torchvision too.
    let files =
        [("dog/b.png", 1), ("cat/z.PNG", 2), ("cat/a/c.png", 3), ("cat/b.png", 4), ("ant/x.png", 5), ("ant/.png", 6)];
    for (file, seed) in files {
        png(&train.join(file), (4, 3), seed);
    }
    fs::write(train.join("cat/notes.txt"), "not an image").unwrap();
    let data = folder("folder", dir.path()).load(Split::Train).unwrap();
    assert_eq!(data.class_names(), ["ant", "cat", "dog"]);
    assert_eq!(data.num_classes(), 3);
    let files: Vec<String> =
        (0..data.len()).map(|i| data.path(i).unwrap().strip_prefix(&train).unwrap().display().to_string()).collect();
    // os.walk order: the class folder's own files before its sub-folders' ("cat" < "cat/a").
    assert_eq!(files, ["ant/.png", "ant/x.png", "cat/b.png", "cat/z.PNG", "cat/a/c.png", "dog/b.png"]);
    assert_eq!(data.labels().unwrap(), [0, 0, 1, 1, 1, 2]);
    assert_eq!(data.image_shape(), None);
    assert_eq!(data.image_hw(0).unwrap(), (3, 4));
}

#[test]
fn the_test_split_is_val_or_else_test_and_images_have_no_test_split() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("test/only/a.png"), (2, 2), 0);
    assert_eq!(folder("folder", dir.path()).load(Split::Test).unwrap().len(), 1);
    png(&dir.path().join("val/one/a.png"), (2, 2), 0);
    png(&dir.path().join("val/two/a.png"), (2, 2), 0);
    assert_eq!(folder("folder", dir.path()).load(Split::Test).unwrap().num_classes(), 2);
    let err = folder("folder", dir.path()).load(Split::Train).unwrap_err().to_string();
    assert!(err.contains("train"), "{err}");

    let images = folder("images", dir.path());
    let all = images.load(Split::Train).unwrap();
    assert_eq!((all.len(), all.labels(), all.num_classes()), (3, None, 0));
    let err = images.load(Split::Test).unwrap_err().to_string();
    assert!(err.contains("no labels"), "{err}");
}

#[test]
fn a_folder_is_drawn_in_a_seeded_shuffle_that_mixes_its_classes() {
    let dir = tempfile::tempdir().unwrap();
    for class in 0..4 {
        for i in 0..25 {
            png(&dir.path().join(format!("train/c{class}/{i:02}.png")), (1, 1), class);
        }
    }
    let spec = folder("folder", dir.path());
    assert_eq!(spec.draw_order(), DrawOrder::Shuffled { seed: 0 });
    let data = spec.load(Split::Train).unwrap();
    let drawn = data.in_order(spec.draw_order());
    assert_eq!(drawn, data.in_order(spec.draw_order()), "the same seed draws the same order");
    let first: std::collections::BTreeSet<u32> = drawn.labels().unwrap()[..20].iter().copied().collect();
    assert_eq!(first.len(), 4, "the first 20 drawn images cover every class");
    let mut sorted = drawn.labels().unwrap().to_vec();
    sorted.sort();
    assert_eq!(sorted, data.labels().unwrap(), "a permutation");
    assert_eq!(DatasetSpec::FashionMnist(PathBuf::new()).draw_order(), DrawOrder::Stored);
}

/// The error of loading or preprocessing `dir` as `spec`, which must name `names`.
fn error_of(spec: &str, dir: &Path, geometry: Geometry) -> String {
    let data = match folder(spec, dir).load(Split::Train) {
        Ok(data) => data,
        Err(err) => return err.to_string(),
    };
    let pre = Preprocess::with_pad(vec![0.5], vec![0.25], 0).unwrap().with_geometry(geometry).unwrap().with_channels(3);
    pre.batch(&data, 0..data.len()).map(|_| String::new()).unwrap_or_else(|err| err.to_string())
}

#[test]
fn bad_folders_and_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let none = Geometry::default();

    // A class folder with no image.
    fs::create_dir_all(root.join("a/train/empty")).unwrap();
    png(&root.join("a/train/full/x.png"), (2, 2), 0);
    let err = error_of("folder", &root.join("a"), none);
    assert!(err.contains("empty") && err.contains("no image files"), "{err}");

    // No class folders at all.
    png(&root.join("b/train/x.png"), (2, 2), 0);
    let err = error_of("folder", &root.join("b"), none);
    assert!(err.contains("no class folders"), "{err}");

    // A 0-byte file, a truncated JPEG, a text file named .jpg: each named.
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("zero.png", Vec::new(), "empty"),
        (
            "cut.jpg",
            {
                let mut jpeg = Vec::new();
                let image = ImageBuffer::from_fn(64, 64, |x, y| Luma([(x * y) as u8]));
                image::DynamicImage::ImageLuma8(image)
                    .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
                    .unwrap();
                jpeg.truncate(jpeg.len() / 2);
                jpeg
            },
            "truncated",
        ),
        ("text.jpg", b"hello".to_vec(), "not a JPEG or PNG"),
    ];
    for (name, bytes, expected) in cases {
        let case = root.join(format!("c-{name}"));
        fs::create_dir_all(&case).unwrap();
        fs::write(case.join(name), bytes).unwrap();
        let err = error_of("images", &case, none);
        assert!(err.contains(name) && err.contains(expected), "{name}: {err}");
    }

    // A crop larger than the (resized) image.
    png(&root.join("d/x.png"), (40, 30), 0);
    let err = error_of("images", &root.join("d"), Geometry { resize: Some(20), crop: Some((24, 24)) });
    assert!(err.contains("x.png") && err.contains("larger than the image, 20x26 once resized"), "{err}");

    // Images of several sizes without a resize and crop.
    png(&root.join("e/a.png"), (4, 4), 0);
    png(&root.join("e/b.png"), (5, 4), 0);
    let err = error_of("images", &root.join("e"), none);
    assert!(err.contains("b.png") && err.contains("4x5"), "{err}");

    // A 1x1 image and a 100000x10 strip: resized, or refused by name when too large.
    png(&root.join("f/dot.png"), (1, 1), 7);
    assert_eq!(error_of("images", &root.join("f"), Geometry { resize: Some(8), crop: Some((8, 8)) }), "");
    png(&root.join("g/strip.png"), (100_000, 10), 7);
    let err = error_of("images", &root.join("g"), Geometry { resize: Some(256), crop: Some((224, 224)) });
    assert!(err.contains("strip.png") && err.contains("2560000"), "{err}");
}

#[cfg(unix)]
#[test]
fn non_utf8_names_and_symbolic_link_loops_are_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().unwrap();
    let bad = OsStr::from_bytes(b"caf\xe9.png");
    png(&dir.path().join("a/ok.png"), (2, 2), 0);
    png(&dir.path().join("a").join(bad), (2, 2), 0);
    let err = folder("images", &dir.path().join("a")).load(Split::Train).unwrap_err().to_string();
    assert!(err.contains("caf") && err.contains("UTF-8"), "{err}");

    fs::create_dir_all(dir.path().join("b/train").join(OsStr::from_bytes(b"cl\xffss"))).unwrap();
    let err = folder("folder", &dir.path().join("b")).load(Split::Train).unwrap_err().to_string();
    assert!(err.contains("UTF-8"), "{err}");

    png(&dir.path().join("c/x.png"), (2, 2), 0);
    std::os::unix::fs::symlink(dir.path().join("c"), dir.path().join("c/again")).unwrap();
    let err = folder("images", &dir.path().join("c")).load(Split::Train).unwrap_err().to_string();
    assert!(err.contains("again") && err.contains("symbolic-link loop"), "{err}");
}

#[test]
fn grey_rgba_and_sixteen_bit_pngs_convert_as_pil_does() {
    let dir = tempfile::tempdir().unwrap();
    let grey = ImageBuffer::from_fn(1, 1, |_, _| Luma([200u8]));
    grey.save(dir.path().join("a-grey.png")).unwrap();
    let rgba = ImageBuffer::from_fn(1, 1, |_, _| image::Rgba([10u8, 20, 30, 0]));
    rgba.save(dir.path().join("b-rgba.png")).unwrap();
    let deep = ImageBuffer::from_fn(1, 1, |_, _| Rgb([0xABCDu16, 0x1234, 0xFF00]));
    deep.save(dir.path().join("c-deep.png")).unwrap();
    let data = folder("images", dir.path()).load(Split::Train).unwrap();
    // Identity normalisation: mean 0, std 1/255 gives the pixel values back.
    let values = |channels: usize| {
        let pre = Preprocess::with_pad(vec![0.0], vec![1.0 / 255.0], 0).unwrap().with_channels(channels);
        let batch = pre.batch(&data, 0..3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        batch.iter().map(|v| v.round() as u32).collect::<Vec<_>>()
    };
    // RGB: grey repeated, alpha dropped (not composited), 16-bit by its high byte.
    assert_eq!(values(3), [200, 200, 200, 10, 20, 30, 0xAB, 0x12, 0xFF]);
    // Grey: PIL's L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
    let luma = |r: u32, g: u32, b: u32| (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16;
    assert_eq!(values(1), [200, luma(10, 20, 30), luma(0xAB, 0x12, 0xFF)]);
}

#[test]
fn the_first_readable_images_are_found_in_order_and_the_rest_left_undecoded() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6u8 {
        png(&dir.path().join(format!("{i}.png")), (4, 4), i);
    }
    fs::write(dir.path().join("1.png"), b"").unwrap();
    fs::write(dir.path().join("4.png"), b"not an image").unwrap();
    let data = folder("images", dir.path()).load(Split::Train).unwrap();

    let (readable, skipped) = data.first_readable(0..data.len(), 3);
    assert_eq!(readable, [0, 2, 3]);
    // 4.png comes after the third readable image: it is never decoded, so not reported.
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].image.ends_with("1.png") && skipped[0].reason.contains("empty"), "{:?}", skipped[0]);

    // From the end, as validation is drawn; asking for more than there are returns what there is.
    let (readable, skipped) = data.first_readable((0..data.len()).rev(), 10);
    assert_eq!(readable, [5, 3, 2, 0]);
    let skipped: Vec<&str> = skipped.iter().map(|file| file.image.rsplit('/').next().unwrap()).collect();
    assert_eq!(skipped, ["4.png", "1.png"]);
}
