//! Real photographs through squeeze's preprocessing against torchvision's.
//!
//! `tests/fixtures/photos/` holds five photographs from OpenCV's sample data
//! (Debian's `opencv-doc`, Apache-2.0 / BSD-3-Clause), one of them also as a
//! CMYK JPEG, and
//! `preprocessed.safetensors`, the tensors torchvision's evaluation transforms
//! made of them (`make_fixture.py`): ImageNet's Resize(256), CenterCrop(224),
//! Normalize in RGB, and a grey Resize(64), CenterCrop((48, 56)). squeeze
//! decodes with other JPEG decoders than PIL's libjpeg-turbo and resamples
//! with another implementation of PIL's filter, so the two agree to within a
//! pixel level, not bit for bit: the bound is a mean absolute difference of
//! 1/255 of the pixel range per value.

use std::path::{Path, PathBuf};

use half::f16;
use safetensors::SafeTensors;
use sq_data::{DatasetSpec, Geometry, Preprocess, Split};

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/photos")
}

/// The torchvision tensors of one pipeline, by file name.
fn reference(pipeline: &str) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(photos().join("preprocessed.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let file = name.strip_prefix(&format!("{pipeline}/"))?.to_owned();
            let values = view.data().chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
            Some((file, values))
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Mean and largest absolute difference per value, in units of the pixel
/// range [0, 1] (the normalised difference times the channel's std).
fn differences(ours: &[f32], theirs: &[f32], std: &[f32]) -> (f64, f64) {
    let plane = ours.len() / std.len();
    let (mut sum, mut max) = (0.0f64, 0.0f64);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let d = f64::from((a - b).abs() * std[i / plane]);
        sum += d;
        max = max.max(d);
    }
    (sum / ours.len() as f64, max)
}

fn check(pipeline: &str, pre: &Preprocess, std: &[f32]) {
    let data = DatasetSpec::Images(photos()).load(Split::Train).unwrap();
    let expected = reference(pipeline);
    let names: Vec<String> =
        (0..data.len()).map(|i| data.path(i).unwrap().file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, expected.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(), "sorted as Python sorts");
    let batch = pre.batch(&data, 0..data.len()).unwrap();
    let values = batch.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let per_image = values.len() / data.len();
    for (index, (name, theirs)) in expected.iter().enumerate() {
        assert_eq!(theirs.len(), per_image, "{name}: shape");
        let (mean, max) = differences(&values[index * per_image..(index + 1) * per_image], theirs, std);
        eprintln!("{pipeline}/{name}: mean |difference| {:.3} levels, largest {:.1} levels", mean * 255.0, max * 255.0);
        assert!(mean <= 1.0 / 255.0, "{pipeline}/{name}: mean difference {mean} is more than 1/255");
    }
}

#[test]
fn imagenet_preprocessing_matches_torchvision_on_photographs() {
    let (mean, std) = (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]);
    let geometry = Geometry { resize: Some(256), crop: Some((224, 224)) };
    let pre = Preprocess::new(mean, std.clone(), (224, 224), (224, 224)).unwrap().with_geometry(geometry).unwrap();
    check("imagenet", &pre.with_channels(3), &std);
}

#[test]
fn grey_preprocessing_matches_torchvision_on_photographs() {
    let geometry = Geometry { resize: Some(64), crop: Some((48, 56)) };
    let pre = Preprocess::new(vec![0.5], vec![0.25], (48, 56), (48, 56)).unwrap().with_geometry(geometry).unwrap();
    check("grey", &pre.with_channels(1), &[0.25]);
}
