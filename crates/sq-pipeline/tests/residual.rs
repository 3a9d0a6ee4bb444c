//! The whole pipeline on ResNets: planted exact dependencies in the
//! residual streams and inside the blocks are found and removed with the
//! predictions unchanged, and a stream selection replays.

use std::collections::BTreeMap;

use candle_core::Tensor;
use sq_data::{Dataset, Preprocess};
use sq_models::checkpoint::from_state_dict;
use sq_models::synthetic::{plant_scaled_copy, ResNetSpec, Stem};
use sq_models::{BlockKind, Model, ResNetArch};
use sq_pipeline::{compress, Settings, Widths};
use sq_select::{Budget, Tau};

/// A ResNet with one scaled copy in every stream (channel 1 = 2 x channel 0)
/// and in every block's first conv (unit 2 = 0.5 x unit 1).
fn planted(kind: BlockKind) -> Model {
    let spec = ResNetSpec {
        planes: vec![5, 6],
        ..ResNetSpec::uniform(ResNetArch { kind, blocks: vec![2, 2] }, Stem::Cifar, 5, 1, 32)
    };
    let meta = BTreeMap::from([("input".to_string(), "1x32x32".to_string())]);
    let mut state = spec.state_dict(4).unwrap();
    let plain = from_state_dict(state.clone(), meta.clone(), None).unwrap();
    for stream in plain.streams() {
        for writer in stream.writers {
            plant_scaled_copy(&mut state, &plain.name(writer), 0, 1, 2.0).unwrap();
        }
    }
    for link in plain.links().iter().filter(|l| plain.name(l.producer).ends_with("conv1")) {
        plant_scaled_copy(&mut state, &plain.name(link.producer), 1, 2, 0.5).unwrap();
    }
    from_state_dict(state, meta, None).unwrap()
}

fn data() -> (Dataset, Preprocess) {
    let pixels: Vec<u8> = (0..48 * 28 * 28).map(|i| ((i * 7919) % 251) as u8).collect();
    let calib = Dataset::new("random", (1, 28, 28), pixels, vec![0; 48], 10).unwrap();
    let pre = Preprocess::new(vec![0.5], vec![0.25], (28, 28), (32, 32)).unwrap();
    (calib, pre)
}

fn logits(model: &Model, calib: &Dataset, pre: &Preprocess) -> Vec<f32> {
    let batches = pre.batches(calib, 16).collect::<Result<Vec<Tensor>, _>>().unwrap();
    batches.iter().flat_map(|x| model.forward(x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

#[test]
fn planted_copies_in_streams_and_blocks_go_and_the_predictions_stay() {
    let (calib, pre) = data();
    for kind in [BlockKind::Basic, BlockKind::Bottleneck] {
        let model = planted(kind);
        let tau = Budget::Tau(Tau::new(1.0).unwrap());
        let settings = Settings { widths: Widths::Uniform(tau), stream: Some(tau), ..Settings::default() };
        let outcome = compress(&model, &calib, &pre, &settings, |_, _| {}).unwrap();
        let streams = model.streams();
        assert_eq!(outcome.layers.len(), streams.len() + model.links().len());
        // Every planted copy went: each stream and each block's first conv lost at least one unit.
        for (stream, layer) in streams.iter().zip(&outcome.layers) {
            assert_eq!(layer.name, stream.name);
            assert!(layer.k < stream.units, "{kind:?} {}: kept {} of {}", layer.name, layer.k, stream.units);
        }
        for layer in outcome.layers.iter().filter(|l| l.name.ends_with("conv1")) {
            assert!(layer.k < layer.width, "{kind:?} {}: kept {} of {}", layer.name, layer.k, layer.width);
        }
        let (before, after) = (logits(&model, &calib, &pre), logits(&outcome.model, &calib, &pre));
        let scale = before.iter().fold(0f32, |m, v| m.max(v.abs()));
        let gap = before.iter().zip(&after).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(gap < 1e-4, "{kind:?}: relative change of the logits {gap}");

        // The manifest's selection replays, streams included.
        let widths: BTreeMap<String, usize> =
            outcome.selection.layers().iter().map(|l| (l.name().to_string(), l.k())).collect();
        let replay = Settings { widths: Widths::PerLayer(widths), ..Settings::default() };
        let again = compress(&model, &calib, &pre, &replay, |_, _| {}).unwrap();
        assert_eq!(again.model.param_count(), outcome.model.param_count());
    }
}

#[test]
fn a_stream_budget_on_a_vgg_and_a_stream_width_out_of_range_are_refused() {
    let (calib, pre) = data();
    let model = planted(BlockKind::Basic);
    let widths: BTreeMap<String, usize> =
        model.links().iter().map(|l| (model.name(l.producer), l.units())).chain([("layer1".to_string(), 99)]).collect();
    let settings = Settings { widths: Widths::PerLayer(widths), ..Settings::default() };
    let err = compress(&model, &calib, &pre, &settings, |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("layer1") && err.contains("99"), "{err}");

    let vgg = sq_models::synthetic::VggSpec::uniform("vgg11_bn".parse().unwrap(), 4, 1, 32, 8).build(0).unwrap();
    let settings = Settings { stream: Some(Budget::Width(1)), ..Settings::default() };
    // It would change nothing: an error, not a setting recorded as applied.
    let err = compress(&vgg, &calib, &pre, &settings, |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("no residual streams"), "{err}");
}
