//! ResNets: torchvision checkpoints of every depth and both stems load, run
//! and save back under the same keys; the fused runner agrees with the
//! layer-by-layer reference; residual streams are found; bad files get an
//! error naming the key.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use sq_models::checkpoint::{load, save, StorageDtype};
use sq_models::synthetic::{ResNetSpec, Stem};
use sq_models::{ActShape, Error, Flow, Model};

use common::{input, max_rel_diff};

fn spec(arch: &str, stem: Stem) -> ResNetSpec {
    let side = match stem {
        Stem::Cifar => 16,
        Stem::ImageNet => 64,
    };
    ResNetSpec::uniform(arch.parse().unwrap(), stem, 4, 1, side)
}

/// Writes a `state_dict` as an f32 safetensors file with `metadata`.
fn write_state_dict(path: &Path, tensors: &BTreeMap<String, Tensor>, metadata: &[(&str, &str)]) {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let bytes =
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
            (k.clone(), t.dims().to_vec(), bytes)
        })
        .collect();
    let views = data.iter().map(|(k, shape, bytes)| {
        (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap())
    });
    let metadata = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

fn saved_keys(model: &Model) -> Vec<String> {
    let mut keys: Vec<String> = (0..model.layers().len())
        .flat_map(|i| model.layers()[i].tensors().into_iter().map(move |(suffix, _)| (i, suffix)))
        .map(|(i, suffix)| format!("{}.{suffix}", model.name(i)))
        .collect();
    keys.sort();
    keys
}

#[test]
fn every_torchvision_depth_and_both_stems_load_run_and_save_under_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["resnet18", "resnet34", "resnet50", "resnet101"] {
        for stem in [Stem::Cifar, Stem::ImageNet] {
            let spec = spec(arch, stem);
            let state = spec.state_dict(7).unwrap();
            let path = dir.path().join(format!("{arch}.safetensors"));
            let side = spec.input_side.to_string();
            write_state_dict(&path, &state, &[("input", &format!("1x{side}x{side}"))]);

            let model = load(&path, None).unwrap();
            assert_eq!(model.arch_name(), arch);
            assert_eq!(model.input_shape(), ActShape::Map { c: 1, h: spec.input_side, w: spec.input_side });
            // The names give back exactly torchvision's keys.
            assert_eq!(saved_keys(&model), state.keys().cloned().collect::<Vec<_>>(), "{arch} {stem:?}");
            let x = input(&model, 2, 1);
            let logits = model.forward(&x).unwrap();
            assert_eq!(logits.dims(), [2, 10]);

            let again = dir.path().join("again.safetensors");
            save(&model, &again, StorageDtype::F32).unwrap();
            let reloaded = load(&again, None).unwrap();
            assert_eq!(reloaded.metadata().get("arch").map(String::as_str), Some(arch));
            assert_eq!(reloaded.forward(&x).unwrap().to_vec2::<f32>().unwrap(), logits.to_vec2::<f32>().unwrap());
        }
    }
}

#[test]
fn the_fused_runner_matches_the_layer_by_layer_reference_on_resnets() {
    for (arch, stem) in [("resnet18", Stem::Cifar), ("resnet50", Stem::ImageNet), ("resnet34", Stem::ImageNet)] {
        let model = spec(arch, stem).build(3).unwrap();
        assert!(model.uses_plan());
        let x = input(&model, 3, 2);
        let fast = model.forward(&x).unwrap();
        let reference = model.forward_layers(&x, 0..model.layers().len()).unwrap();
        let gap = max_rel_diff(&reference, &fast);
        assert!(gap < 1e-4, "{arch}: relative gap {gap}");
    }
}

#[test]
fn a_flow_carries_the_block_input_across_a_range_that_starts_inside_a_block() {
    let model = spec("resnet18", Stem::Cifar).build(5).unwrap();
    let x = input(&model, 2, 3);
    let end = model.layers().len();
    let inside = model.index_of("layer2.0.conv2").unwrap();
    assert_eq!(model.open_blocks(inside), 1);
    let flow = model.forward_flow(Flow::new(x.clone()), 0..inside).unwrap();
    assert_eq!(flow.open.len(), 1);
    let logits = model.forward_flow(flow.clone(), inside..end).unwrap();
    assert!(logits.open.is_empty());
    assert!(max_rel_diff(&model.forward(&x).unwrap(), &logits.x) < 1e-5);
    // Without the block's input the range cannot run, and says why.
    let err = model.forward_range(&flow.x, inside..end).unwrap_err();
    assert!(err.to_string().contains("residual block"), "{err}");
}

#[test]
fn the_taps_the_hook_sees_are_the_tensors_the_reference_feeds_those_layers() {
    let model = spec("resnet50", Stem::ImageNet).build(9).unwrap();
    let x = input(&model, 2, 4);
    let mut seen = 0;
    model
        .forward_with(&x, |i, tapped| {
            let mut flow = Flow::new(x.clone());
            for layer in &model.layers()[..i] {
                layer.forward(&mut flow).unwrap();
            }
            assert!(max_rel_diff(&flow.x, tapped) < 1e-4, "tap {}", model.name(i));
            seen += 1;
            Ok::<_, Error>(())
        })
        .unwrap();
    // Every conv and fc (the projections are inside the adds), and the flatten.
    assert_eq!(seen, 1 + 16 * 3 + 1 + 1);
}

#[test]
fn streams_group_every_writer_and_reader_of_a_stage() {
    let model = spec("resnet18", Stem::Cifar).build(0).unwrap();
    let streams = model.streams();
    let names = |layers: &[usize]| layers.iter().map(|&i| model.name(i)).collect::<Vec<_>>();
    assert_eq!(streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["layer1", "layer2", "layer3", "layer4"]);
    assert_eq!(names(&streams[0].writers), ["conv1", "layer1.0.conv2", "layer1.1.conv2"]);
    let readers = |s: usize| streams[s].readers.iter().map(|r| r.layer).collect::<Vec<_>>();
    assert_eq!(names(&readers(0)), ["layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample"]);
    assert_eq!(names(&streams[1].writers), ["layer2.0.conv2", "layer2.0.downsample", "layer2.1.conv2"]);
    assert_eq!(names(&readers(3)), ["layer4.1.conv1", "fc"]);
    assert_eq!(model.name(streams[3].readers[1].tap), "flatten");
    // The projection reads the block input: the same tap as the block's first conv.
    assert_eq!(streams[0].readers[3].tap, streams[0].readers[2].tap);
    assert_eq!(streams.iter().map(|s| s.units).collect::<Vec<_>>(), [4, 8, 16, 32]);
    // Internal links stay inside the blocks.
    let links: Vec<String> = model.links().iter().map(|l| model.name(l.producer)).collect();
    assert_eq!(links.len(), 8);
    assert!(links.iter().all(|n| n.ends_with(".conv1")), "{links:?}");

    // A ResNet-50's first block projects the stem's 4 channels to 16: the
    // stem is a stream of its own.
    let model = spec("resnet50", Stem::ImageNet).build(0).unwrap();
    let streams = model.streams();
    assert_eq!(streams.len(), 5);
    assert_eq!(streams[0].name, "stem");
    assert_eq!(model.links().len(), 16 * 2);
}

#[test]
fn a_block_with_a_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.safetensors");
    let mut state = spec("resnet18", Stem::Cifar).state_dict(1).unwrap();
    state.remove("layer2.1.bn1.running_var");
    write_state_dict(&path, &state, &[]);
    match load(&path, None) {
        Err(Error::MissingTensor { key, .. }) => assert_eq!(key, "layer2.1.bn1.running_var"),
        other => panic!("expected a missing tensor, got {other:?}"),
    }
}

#[test]
fn a_downsample_that_does_not_fit_its_block_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.safetensors");
    let mut state = spec("resnet18", Stem::Cifar).state_dict(1).unwrap();
    // 6 output channels where the block writes 8.
    let narrow = state["layer2.0.downsample.0.weight"].narrow(0, 0, 6).unwrap();
    state.insert("layer2.0.downsample.0.weight".into(), narrow);
    write_state_dict(&path, &state, &[]);
    let err = load(&path, None).unwrap_err().to_string();
    assert!(err.contains("broken.safetensors") && err.contains("layer2.0.downsample"), "{err}");
}

#[test]
fn unknown_keys_and_unknown_stems_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.safetensors");
    let mut state = spec("resnet18", Stem::Cifar).state_dict(1).unwrap();
    state.insert("layer1.0.se.weight".into(), Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap());
    write_state_dict(&path, &state, &[]);
    match load(&path, None) {
        Err(Error::UnknownTensors { keys, .. }) => assert_eq!(keys, ["layer1.0.se.weight"]),
        other => panic!("expected unknown tensors, got {other:?}"),
    }

    let mut state = spec("resnet18", Stem::Cifar).state_dict(1).unwrap();
    state.insert("conv1.weight".into(), Tensor::zeros((4, 1, 5, 5), candle_core::DType::F32, &Device::Cpu).unwrap());
    write_state_dict(&path, &state, &[]);
    let err = load(&path, None).unwrap_err().to_string();
    assert!(err.contains("conv1") && err.contains("5x5"), "{err}");
}
