mod common;

use common::random_psd;
use sq_select::{select_layer, Budget, Error, LayerDefect, LayerSelection, Selection, Strategy, Tau};

fn layer(name: &str, width: usize, kept: Vec<usize>) -> sq_select::Result<LayerSelection> {
    LayerSelection::new(name, width, kept, Strategy::Qr, Budget::Tau(Tau::new(0.99).unwrap()), 0.5)
}

fn sample() -> Selection {
    let c = random_psd(3, 16, 6);
    let norms: Vec<f64> = (0..16).map(|i| i as f64).collect();
    Selection::new(vec![
        select_layer("features.0", &c, Budget::Tau(Tau::new(0.9).unwrap()), Strategy::Eliminate, None).unwrap(),
        select_layer("features.3", &c, Budget::Width(5), Strategy::L1, Some(&norms)).unwrap(),
        select_layer("classifier.0", &c, Budget::Fraction(0.5), Strategy::Random { seed: 9 }, None).unwrap(),
    ])
    .unwrap()
}

#[test]
fn select_layer_records_what_it_did() {
    let c = random_psd(3, 16, 6);
    let layer = select_layer("conv", &c, Budget::Tau(Tau::new(1.0).unwrap()), Strategy::Eliminate, None).unwrap();
    assert_eq!((layer.name(), layer.width(), layer.k()), ("conv", 16, 6));
    assert_eq!(layer.strategy(), Strategy::Eliminate);
    assert_eq!(layer.budget(), Budget::Tau(Tau::new(1.0).unwrap()));
    assert!((layer.retained_variance() - 1.0).abs() < 1e-9);
    let removed = layer.removed();
    assert_eq!(removed.len(), 10);
    assert!(removed.iter().all(|r| !layer.kept().contains(r)));
}

#[test]
fn json_round_trip_and_file_round_trip() {
    let selection = sample();
    let json = selection.to_json();
    assert_eq!(Selection::from_json(&json).unwrap(), selection);
    assert!(json.contains("\"strategy\": \"random:9\"") && json.contains("\"budget\": \"width:5\""));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("selection.json");
    selection.save(&path).unwrap();
    assert_eq!(Selection::load(&path).unwrap(), selection);
    assert_eq!(selection.get("features.3").unwrap().kept(), &[11, 12, 13, 14, 15]);
    assert!(selection.get("features.1").is_none());
}

/// Replaces the kept list of layer `features.3` in valid JSON.
fn with_kept(kept: &str) -> String {
    let json = sample().to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut value = value;
    value["layers"][1]["kept"] = serde_json::from_str(kept).unwrap();
    value.to_string()
}

#[test]
fn invalid_layers_are_rejected_by_name() {
    for (kept, defect) in [
        ("[1, 3, 3]", LayerDefect::Duplicate(3)),
        ("[1, 16]", LayerDefect::OutOfRange { index: 16, width: 16 }),
        ("[4, 2]", LayerDefect::Unsorted(2)),
        ("[]", LayerDefect::Empty),
    ] {
        match Selection::from_json(&with_kept(kept)) {
            Err(Error::InvalidLayer { layer, defect: found }) => {
                assert_eq!((layer.as_str(), &found), ("features.3", &defect));
            }
            other => panic!("{kept}: expected an invalid layer, got {other:?}"),
        }
        let message = Selection::from_json(&with_kept(kept)).unwrap_err().to_string();
        assert!(message.contains("features.3"), "{message}");
    }
    // The same checks guard direct construction and plain deserialization.
    assert!(matches!(layer("x", 4, vec![0, 0]), Err(Error::InvalidLayer { .. })));
    assert!(matches!(
        LayerSelection::new("x", 4, vec![0], Strategy::Qr, Budget::Width(1), 1.5),
        Err(Error::InvalidLayer { defect: LayerDefect::RetainedVariance(_), .. })
    ));
    assert!(serde_json::from_str::<Selection>(&with_kept("[2, 2]")).is_err());
}

#[test]
fn malformed_files_and_duplicate_layers_are_errors() {
    assert!(matches!(Selection::from_json("{\"layers\": 3}"), Err(Error::Json(_))));
    let bad_strategy = sample().to_json().replace("random:9", "random:nine");
    assert!(matches!(Selection::from_json(&bad_strategy), Err(Error::Json(_))));

    let twice = vec![layer("a", 4, vec![1]).unwrap(), layer("a", 4, vec![2]).unwrap()];
    assert!(matches!(Selection::new(twice), Err(Error::DuplicateLayer(name)) if name == "a"));
    let mut selection = Selection::default();
    selection.push(layer("a", 4, vec![1]).unwrap()).unwrap();
    assert!(selection.push(layer("a", 4, vec![1]).unwrap()).is_err());

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let error = Selection::load(&missing).unwrap_err();
    assert!(matches!(error, Error::Io { .. }) && error.to_string().contains("missing.json"));
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, with_kept("[1, 1]")).unwrap();
    let error = Selection::load(&broken).unwrap_err();
    assert!(matches!(error, Error::Load { .. }));
    // The file is named once, the defect once, in the error and its source.
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(error.to_string().contains("broken.json") && cause.contains("features.3"), "{error}: {cause}");
}
