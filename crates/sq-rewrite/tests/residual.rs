//! Known-answer tests on ResNets: planted exact dependencies, inside a
//! block or in a residual stream, are removed with the network's output
//! unchanged.
//!
//! A planted unit is a positive multiple of another unit of the same layer
//! (same filter, BatchNorm scale and shift multiplied), so it stays an exact
//! multiple through ReLU, zero padding and every residual addition
//! ([`sq_models::synthetic::plant_scaled_copy`]).

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use proptest::prelude::*;
use sq_capture::accumulate;
use sq_linalg::Moments;
use sq_models::checkpoint::from_state_dict;
use sq_models::synthetic::{plant_scaled_copy, ResNetSpec, Stem};
use sq_models::{BlockKind, Flow, Model, ResNetArch};
use sq_rewrite::{apply, apply_stream, plan, plan_stream, Compensation, Statistics};

fn arch(kind: BlockKind, blocks: Vec<usize>) -> ResNetArch {
    ResNetArch { kind, blocks }
}

fn random_input(model: &Model, n: usize, seed: u64) -> Tensor {
    let sq_models::ActShape::Map { c, h, w } = model.input_shape() else { panic!("map input") };
    let len = n * c * h * w;
    let data: Vec<f32> = (0..len).map(|i| (((i as u64 * 2654435761 + seed) % 2001) as f32 / 1000.0) - 1.0).collect();
    Tensor::from_vec(data, (n, c, h, w), &Device::Cpu).unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The tensor read at tap `tap` for input `x` (the activation of a flow).
fn tapped(model: &Model, x: &Tensor, tap: usize) -> Tensor {
    model.forward_flow(Flow::new(x.clone()), 0..tap).unwrap().x
}

fn moments_at(model: &Model, x: &Tensor, tap: usize) -> Moments {
    let t = tapped(model, x, tap);
    let mut m = Moments::new(t.dims()[1]);
    accumulate(&mut m, &t).unwrap();
    m
}

/// A small ResNet with `copies` of stream channels planted in stream `s`
/// (every writer of it) and returns it with the channels that can go.
fn planted_stream(spec: &ResNetSpec, seed: u64, s: usize, copies: &[(usize, usize, f32)]) -> (Model, Vec<usize>) {
    let mut state: BTreeMap<String, Tensor> = spec.state_dict(seed).unwrap();
    let plain = from_state_dict(state.clone(), BTreeMap::new(), None).unwrap();
    let stream = &plain.streams()[s];
    for &writer in &stream.writers {
        for &(source, copy, scale) in copies {
            plant_scaled_copy(&mut state, &plain.name(writer), source, copy, scale).unwrap();
        }
    }
    let side = spec.input_side;
    let meta = BTreeMap::from([("input".to_string(), format!("1x{side}x{side}"))]);
    let model = from_state_dict(state, meta, None).unwrap();
    (model, copies.iter().map(|c| c.1).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn planted_stream_channels_are_removed_with_the_output_unchanged(
        seed in any::<u64>(),
        bottleneck in any::<bool>(),
        s in 0usize..2,
        scale in 0.3f32..3.0,
        two in any::<bool>(),
    ) {
        let kind = if bottleneck { BlockKind::Bottleneck } else { BlockKind::Basic };
        let spec = ResNetSpec { planes: vec![3, 4], ..ResNetSpec::uniform(arch(kind, vec![2, 2]), Stem::Cifar, 3, 1, 12) };
        let mut copies = vec![(0, 2, scale)];
        if two {
            copies.push((1, 3, 1.0 / scale));
        }
        let (model, removable) = planted_stream(&spec, seed, s, &copies);
        let stream = model.streams()[s].clone();
        let kept: Vec<usize> = (0..stream.units).filter(|u| !removable.contains(u)).collect();
        let x = random_input(&model, 4, seed);
        let moments: Vec<Moments> = stream.taps().iter().map(|&t| moments_at(&model, &x, t)).collect();

        let patch = plan_stream(&stream, &kept, &moments, Compensation::Lstsq).unwrap();
        prop_assert!(patch.relative_errors.iter().all(|&e| e < 1e-3), "{:?}", patch.relative_errors);
        let squeezed = apply_stream(&model, &patch).unwrap();
        prop_assert_eq!(squeezed.streams()[s].units, kept.len());
        prop_assert!(squeezed.param_count() < model.param_count());
        let gap = max_rel_diff(&model.forward(&x).unwrap(), &squeezed.forward(&x).unwrap());
        prop_assert!(gap < 1e-5, "relative output change {}", gap);
        // Still a torchvision-shaped checkpoint: no conv gained a bias.
        let biased = (0..squeezed.layers().len())
            .filter(|&i| squeezed.layers()[i].tensors().iter().any(|(suffix, _)| suffix.ends_with("0.bias")
                || (*suffix == "bias" && squeezed.name(i).contains("conv"))))
            .count();
        prop_assert_eq!(biased, 0);
    }

    #[test]
    fn planted_units_inside_a_block_are_removed_with_the_output_unchanged(
        seed in any::<u64>(),
        bottleneck in any::<bool>(),
        scale in 0.3f32..3.0,
        which in 0usize..4,
    ) {
        let kind = if bottleneck { BlockKind::Bottleneck } else { BlockKind::Basic };
        let spec = ResNetSpec::uniform(arch(kind, vec![2, 2]), Stem::ImageNet, 4, 1, 32);
        let mut state = spec.state_dict(seed).unwrap();
        let meta = BTreeMap::from([("input".to_string(), "1x32x32".to_string())]);
        let plain = from_state_dict(state.clone(), meta.clone(), None).unwrap();
        let link = plain.links()[which].clone();
        plant_scaled_copy(&mut state, &plain.name(link.producer), 1, 3, scale).unwrap();
        let model = from_state_dict(state, meta, None).unwrap();

        let x = random_input(&model, 3, seed);
        let moments = moments_at(&model, &x, link.tap);
        let kept: Vec<usize> = (0..link.units()).filter(|&u| u != 3).collect();
        let patch = plan(&link, "producer", &kept, Statistics::Current(&moments), Compensation::Lstsq).unwrap();
        let squeezed = apply(&model, &patch).unwrap();
        let gap = max_rel_diff(&model.forward(&x).unwrap(), &squeezed.forward(&x).unwrap());
        prop_assert!(gap < 1e-5, "relative output change {}", gap);
    }
}

#[test]
fn removing_a_live_stream_channel_without_a_copy_changes_the_output() {
    // The control: the same cut without a planted copy is not free.
    let spec = ResNetSpec::uniform(arch(BlockKind::Basic, vec![2]), Stem::Cifar, 4, 1, 12);
    let model = spec.build(3).unwrap();
    let stream = model.streams()[0].clone();
    let x = random_input(&model, 4, 1);
    let moments: Vec<Moments> = stream.taps().iter().map(|&t| moments_at(&model, &x, t)).collect();
    let patch = plan_stream(&stream, &[0, 1, 3], &moments, Compensation::Lstsq).unwrap();
    let squeezed = apply_stream(&model, &patch).unwrap();
    let gap = max_rel_diff(&model.forward(&x).unwrap(), &squeezed.forward(&x).unwrap());
    assert!(gap > 1e-3, "relative output change {gap}");
}

#[test]
fn a_stream_patch_for_another_model_is_rejected() {
    let spec = ResNetSpec::uniform(arch(BlockKind::Basic, vec![1, 1]), Stem::Cifar, 4, 1, 12);
    let model = spec.build(0).unwrap();
    let stream = model.streams()[0].clone();
    let x = random_input(&model, 2, 1);
    let moments: Vec<Moments> = stream.taps().iter().map(|&t| moments_at(&model, &x, t)).collect();
    let patch = plan_stream(&stream, &[0, 1], &moments, Compensation::Lstsq).unwrap();
    let squeezed = apply_stream(&model, &patch).unwrap();
    // Applying it again: the stream is now 2 channels wide.
    let err = apply_stream(&squeezed, &patch).unwrap_err().to_string();
    assert!(err.contains("layer1") && err.contains("residual stream"), "{err}");
}
