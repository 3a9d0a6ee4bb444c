//! Checkpoint loading and saving: round trips, architecture detection,
//! BatchNorm folding, and a clear error for every kind of bad file.

mod common;

use std::path::Path;

use sq_models::checkpoint::{load, save, StorageDtype};
use sq_models::synthetic::VggSpec;
use sq_models::transform::fold_batchnorm;
use sq_models::{ActShape, Arch, Layer, Model};

use common::{input, max_rel_diff};

fn arch(name: &str) -> Arch {
    name.parse().unwrap()
}

fn small(name: &str) -> VggSpec {
    VggSpec::uniform(arch(name), 4, 1, 32, 16)
}

fn tensors_of(model: &Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for (i, layer) in model.layers().iter().enumerate() {
        for (suffix, t) in layer.tensors() {
            out.push((
                format!("{}.{suffix}", model.name(i)),
                t.dims().to_vec(),
                t.flatten_all().unwrap().to_vec1().unwrap(),
            ));
        }
    }
    out
}

#[test]
fn save_then_load_gives_identical_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut model = small("vgg16_bn").build(1).unwrap();
    model.metadata_mut().insert("normalize_mean".into(), "0.5".into());
    save(&model, &path, StorageDtype::F32).unwrap();
    let loaded = load(&path, None).unwrap();
    assert_eq!(tensors_of(&model), tensors_of(&loaded));
    assert_eq!(loaded.metadata().get("normalize_mean").map(String::as_str), Some("0.5"));
    assert_eq!(loaded.metadata().get("arch").map(String::as_str), Some("vgg16_bn"));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn f16_storage_halves_the_file_and_stays_close() {
    let dir = tempfile::tempdir().unwrap();
    let (p32, p16) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    let model = VggSpec::uniform(arch("vgg11_bn"), 32, 1, 32, 64).build(2).unwrap();
    save(&model, &p32, StorageDtype::F32).unwrap();
    save(&model, &p16, StorageDtype::F16).unwrap();
    let (s32, s16) = (std::fs::metadata(&p32).unwrap().len(), std::fs::metadata(&p16).unwrap().len());
    assert!(s16 < s32 * 6 / 10, "f16 {s16} bytes vs f32 {s32}");
    let x = input(&model, 2, 0);
    let (a, b) = (load(&p32, None).unwrap().forward(&x).unwrap(), load(&p16, None).unwrap().forward(&x).unwrap());
    assert!(max_rel_diff(&a, &b) < 1e-2);
}

#[test]
fn detects_every_vgg_family_with_and_without_batchnorm() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"] {
        let path = dir.path().join(format!("{name}.safetensors"));
        let model = small(name).build(3).unwrap();
        save(&model, &path, StorageDtype::F32).unwrap();
        let loaded = load(&path, None).unwrap();
        assert_eq!(Arch::of(&loaded).name(), name);
        assert_eq!(loaded.layers().len(), model.layers().len(), "{name}");
        let x = input(&model, 2, 1);
        assert_eq!(max_rel_diff(&model.forward(&x).unwrap(), &loaded.forward(&x).unwrap()), 0.0, "{name}");
        // An explicit --arch gives the same model; a wrong one is refused.
        assert_eq!(tensors_of(&load(&path, Some(&arch(name))).unwrap()), tensors_of(&loaded));
        let wrong = if name.starts_with("vgg16") { "vgg19" } else { "vgg16" };
        assert!(matches!(load(&path, Some(&arch(wrong))), Err(sq_models::Error::Layout { .. })));
    }
}

#[test]
fn torchvision_numbering_of_vgg16_bn() {
    let model = small("vgg16_bn").build(0).unwrap();
    let names: Vec<String> = model.links().iter().map(|l| model.name(l.producer)).collect();
    let expected = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40].map(|i| format!("features.{i}"));
    assert_eq!(&names[..13], &expected);
    assert_eq!(&names[13..], ["classifier.0"]);
    assert_eq!(model.name(model.layers().len() - 1), "classifier.3");
}

#[test]
fn imagenet_shaped_flatten_with_spatial_positions() {
    // Input 64x64 leaves a 2x2 map before the classifier: in_features = C * 4.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.safetensors");
    let spec = VggSpec::uniform(arch("vgg11"), 8, 3, 64, 32);
    let model = spec.build(4).unwrap();
    save(&model, &path, StorageDtype::F32).unwrap();
    let loaded = load(&path, None).unwrap();
    assert_eq!(loaded.input_shape(), sq_models::ActShape::Map { c: 3, h: 64, w: 64 });
    let last = loaded.links().into_iter().find(|l| matches!(loaded.layers()[l.tap], Layer::Flatten)).unwrap();
    assert_eq!(last.shape, sq_models::ActShape::Map { c: 8, h: 2, w: 2 });
    let x = input(&model, 3, 2);
    assert_eq!(loaded.forward(&x).unwrap().dims(), &[3, 10]);
    assert_eq!(max_rel_diff(&model.forward(&x).unwrap(), &loaded.forward(&x).unwrap()), 0.0);
}

#[test]
fn folding_batchnorm_keeps_outputs_and_renames_like_plain_vgg() {
    for name in ["vgg11_bn", "vgg16_bn"] {
        let model = VggSpec::uniform(arch(name), 8, 3, 32, 16).build(5).unwrap();
        let folded = fold_batchnorm(&model).unwrap();
        assert_eq!(Arch::of(&folded).name(), name.trim_end_matches("_bn"));
        assert!(folded.layers().iter().all(|l| !matches!(l, Layer::BatchNorm2d(_))));
        let x = input(&model, 4, 3);
        let diff = max_rel_diff(&model.forward(&x).unwrap(), &folded.forward(&x).unwrap());
        assert!(diff < 1e-4, "{name}: relative difference {diff}");
        // The folded model saves and loads as a plain VGG.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("folded.safetensors");
        save(&folded, &path, StorageDtype::F32).unwrap();
        assert_eq!(tensors_of(&load(&path, None).unwrap()), tensors_of(&folded));
    }
}

#[test]
fn counts_parameters_and_macs() {
    let model = VggSpec { classifier: vec![10], ..VggSpec::uniform(arch("vgg11"), 2, 1, 32, 0) }.build(6).unwrap();
    // 8 convs: first 1->2, then 2->2; 3x3 kernels with bias. Linear 2 -> 10.
    let conv_params = (2 * 9 + 2) + 7 * (2 * 2 * 9 + 2);
    assert_eq!(model.param_count(), conv_params + 2 * 10 + 10);
    // Conv outputs: 32x32, 16x16, 8x8 (x2), 4x4 (x2), 2x2 (x2).
    let positions = [1024, 256, 64, 64, 16, 16, 4, 4];
    let conv_macs: usize = positions.iter().enumerate().map(|(i, p)| p * 2 * if i == 0 { 9 } else { 18 }).sum();
    assert_eq!(model.macs(), conv_macs + 20);
}

// ---- bad input: one test per case, each must name the file ----

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn error_for(bytes: Option<&[u8]>) -> (String, sq_models::Error) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    if let Some(b) = bytes {
        write(&path, b);
    }
    let err = load(&path, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.safetensors"), "error does not name the file: {msg}");
    (msg, err)
}

fn valid_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.safetensors");
    save(&small("vgg11_bn").build(7).unwrap(), &path, StorageDtype::F32).unwrap();
    std::fs::read(path).unwrap()
}

/// Re-encodes a valid checkpoint after editing its tensors.
fn edited(edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.safetensors");
    std::fs::write(&path, valid_bytes()).unwrap();
    let mut tensors = tensors_of(&load(&path, None).unwrap());
    edit(&mut tensors);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.into_iter().map(|(k, s, v)| (k, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, s, b)| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn missing_file_is_an_io_error() {
    let (msg, err) = error_for(None);
    assert!(matches!(err, sq_models::Error::Io { .. }), "{msg}");
}

#[test]
fn truncated_file_is_rejected() {
    let bytes = valid_bytes();
    let (msg, err) = error_for(Some(&bytes[..bytes.len() - 100]));
    assert!(matches!(err, sq_models::Error::Safetensors { .. }), "{msg}");
}

#[test]
fn corrupt_header_is_rejected() {
    let mut bytes = valid_bytes();
    bytes[10] = b'#';
    let (msg, err) = error_for(Some(&bytes));
    assert!(matches!(err, sq_models::Error::Safetensors { .. }), "{msg}");
    let (msg, err) = error_for(Some(b"hello"));
    assert!(matches!(err, sq_models::Error::Safetensors { .. }), "{msg}");
}

#[test]
fn missing_key_is_named() {
    let bytes = edited(|t| t.retain(|(k, _, _)| k != "features.1.running_var"));
    let (msg, err) = error_for(Some(&bytes));
    assert!(matches!(err, sq_models::Error::MissingTensor { ref key, .. } if key == "features.1.running_var"), "{msg}");
}

#[test]
fn wrong_shape_is_named() {
    // features.4 is the second conv of vgg11_bn (after pool): make it read 3 channels instead of 4.
    let bytes = edited(|t| {
        let e = t.iter_mut().find(|(k, _, _)| k == "features.4.weight").unwrap();
        e.1 = vec![4, 3, 3, 3];
        e.2.truncate(4 * 3 * 9);
    });
    let (msg, _) = error_for(Some(&bytes));
    assert!(msg.contains("features.4") && msg.contains("reads 3 channels"), "{msg}");

    let bytes = edited(|t| {
        let e = t.iter_mut().find(|(k, _, _)| k == "classifier.0.weight").unwrap();
        e.1 = vec![e.1[0] * e.1[1]];
    });
    let (msg, err) = error_for(Some(&bytes));
    assert!(matches!(err, sq_models::Error::TensorShape { .. }) && msg.contains("classifier.0.weight"), "{msg}");
}

#[test]
fn unexpected_key_is_named() {
    let bytes = edited(|t| t.push(("head.weight".into(), vec![1], vec![0.0])));
    let (msg, err) = error_for(Some(&bytes));
    assert!(matches!(err, sq_models::Error::Layout { .. }) && msg.contains("head.weight"), "{msg}");
}

#[test]
fn a_recorded_input_size_describes_a_vgg_whose_pools_floor_odd_sizes() {
    // 48 -> 24 -> 12 -> 6 -> 3 -> 1: the last pool floors, so the classifier's
    // 8 x 1 x 1 features would also fit a 32x32 input.
    let mut model = VggSpec::uniform(arch("vgg11_bn"), 8, 1, 48, 16).build(5).unwrap();
    model.metadata_mut().insert("input".into(), "1x48x48".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floors.safetensors");
    save(&model, &path, StorageDtype::F32).unwrap();
    let again = load(&path, None).unwrap();
    assert_eq!(again.input_shape(), ActShape::Map { c: 1, h: 48, w: 48 });
    let x = input(&model, 2, 7);
    assert_eq!(
        again.forward(&x).unwrap().to_vec2::<f32>().unwrap(),
        model.forward(&x).unwrap().to_vec2::<f32>().unwrap()
    );

    // A recorded size the classifier cannot read, or of other channels, is an error naming the file.
    for (input, needle) in [("1x64x64", "floors.safetensors"), ("3x48x48", "3 channels")] {
        model.metadata_mut().insert("input".into(), input.into());
        save(&model, &path, StorageDtype::F32).unwrap();
        let err = load(&path, None).unwrap_err().to_string();
        assert!(err.contains(needle), "{input}: {err}");
    }
}
