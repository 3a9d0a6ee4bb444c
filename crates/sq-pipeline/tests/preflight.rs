//! The pre-flight checks read only shapes and counts, and catch what would
//! otherwise be a silently meaningless squeeze.

use std::collections::BTreeMap;

use sq_models::synthetic::VggSpec;
use sq_pipeline::{check_samples, check_widths, shortfalls, Error};

/// VGG-11-BN, 8 channels per conv, 32x32 input (1x1 after the last pool), hidden layer of 16.
fn model() -> sq_models::Model {
    VggSpec::uniform("vgg11_bn".parse().unwrap(), 8, 1, 32, 16).build(0).unwrap()
}

#[test]
fn shortfalls_count_images_times_positions_against_the_width() {
    let model = model();
    // 8 images: the 1x1 taps get 8 samples; features.25 (8 units) needs 9, classifier.0 (16) needs 17.
    let short = shortfalls(&model, 8);
    let names: Vec<_> = short.iter().map(|s| (s.layer.as_str(), s.samples, s.images_needed)).collect();
    assert_eq!(names, [("features.25", 8, 9), ("classifier.0", 8, 17)]);
    // features.22 reads a 2x2 map: 4 samples per image, so 3 images (12 samples) do for 8 units.
    assert!(shortfalls(&model, 3).iter().all(|s| s.layer != "features.22"));
    assert!(shortfalls(&model, 2).iter().any(|s| s.layer == "features.22" && s.images_needed == 3));
    assert!(shortfalls(&model, 17).is_empty());
    match check_samples(&model, 1) {
        Err(Error::TooFewSamples { images_needed: 17, layers }) => {
            assert_eq!(layers.last().unwrap().layer, "classifier.0")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn explicit_widths_must_name_every_producer_within_its_size() {
    let model = model();
    let producers = [
        "features.0",
        "features.4",
        "features.8",
        "features.11",
        "features.15",
        "features.18",
        "features.22",
        "features.25",
        "classifier.0",
    ];
    let widths = |overrides: &[(&str, usize)]| -> BTreeMap<String, usize> {
        let mut w: BTreeMap<String, usize> = producers.iter().map(|p| (p.to_string(), 4)).collect();
        for (name, k) in overrides {
            w.insert(name.to_string(), *k);
        }
        w
    };
    check_widths(&model, &widths(&[])).unwrap();
    check_widths(&model, &widths(&[("classifier.0", 16)])).unwrap();
    assert!(matches!(
        check_widths(&model, &widths(&[("classifier.0", 17)])),
        Err(Error::WidthOutOfRange { width: 17, units: 16, .. })
    ));
    assert!(matches!(
        check_widths(&model, &widths(&[("features.4", 0)])),
        Err(Error::WidthOutOfRange { width: 0, .. })
    ));
    assert!(
        matches!(check_widths(&model, &widths(&[("classifier.3", 4)])), Err(Error::UnknownProducer { name, .. }) if name == "classifier.3")
    );
    let mut missing = widths(&[]);
    missing.remove("features.8");
    assert!(matches!(check_widths(&model, &missing), Err(Error::MissingWidth(name)) if name == "features.8"));
}

#[test]
fn the_capture_batch_shrinks_when_one_image_activation_is_large() {
    // 32x32: the largest activation is 8 x 32 x 32 floats (32 KB an image); the batch stays 64.
    assert_eq!(sq_pipeline::capture_batch(&model()), 64);
    // 224x224 with 64 channels in the first stage, as torchvision's VGG: 12.8 MB an image, 20 in 256 MiB.
    let vgg = VggSpec::uniform("vgg11_bn".parse().unwrap(), 64, 3, 224, 16).build(0).unwrap();
    assert_eq!(vgg.largest_activation(), 64 * 224 * 224);
    assert_eq!(sq_pipeline::capture_batch(&vgg), 20);
    // A single image larger than the budget still gets a batch of one.
    let huge = VggSpec::uniform("vgg11_bn".parse().unwrap(), 64, 3, 2048, 16).build(0).unwrap();
    assert_eq!(sq_pipeline::capture_batch(&huge), 1);
}
