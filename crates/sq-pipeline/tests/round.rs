//! `Settings::round`: every kept width becomes a multiple of M (or the
//! producer's full width), never fewer units than the budget asked for.

use std::collections::BTreeMap;

use sq_data::{Dataset, Preprocess};
use sq_models::synthetic::VggSpec;
use sq_models::Model;
use sq_pipeline::{compress, Mode, Multiple, Outcome, Settings, Widths};
use sq_select::{Budget, Tau};

/// A random VGG-11-BN 12 channels wide with a 20-unit hidden layer (widths
/// that are not multiples of 8), and 64 calibration images.
fn setup() -> (Model, Dataset, Preprocess) {
    let model = VggSpec::uniform("vgg11_bn".parse().unwrap(), 12, 1, 32, 20).build(3).unwrap();
    let pixels: Vec<u8> = (0..64 * 28 * 28).map(|i| ((i * 7 + i / 97) % 251) as u8).collect();
    let calib = Dataset::new("synthetic", (1, 28, 28), pixels, vec![0; 64], 10).unwrap();
    let pre = Preprocess::new(vec![0.5], vec![0.25], (28, 28), (32, 32)).unwrap();
    (model, calib, pre)
}

fn squeeze(model: &Model, calib: &Dataset, pre: &Preprocess, widths: Widths, round: usize) -> Outcome {
    // One-pass: every producer's statistics come from the original model, so
    // k(tau) does not depend on how the earlier producers were rounded.
    let settings =
        Settings { widths, mode: Mode::OnePass, round: Multiple::new(round).unwrap(), ..Settings::default() };
    compress(model, calib, pre, &settings, |_, _| {}).unwrap()
}

fn widths_of(outcome: &Outcome) -> Vec<(usize, usize)> {
    outcome.layers.iter().map(|l| (l.k, l.width)).collect()
}

#[test]
fn tau_widths_are_rounded_up_to_the_multiple_or_the_full_width() {
    let (model, calib, pre) = setup();
    let tau = Widths::Uniform(Budget::Tau(Tau::new(0.9).unwrap()));
    let plain = widths_of(&squeeze(&model, &calib, &pre, tau.clone(), 1));
    let rounded = squeeze(&model, &calib, &pre, tau, 8);
    assert!(plain.iter().any(|(k, _)| k % 8 != 0), "the test needs some width to round: {plain:?}");
    for ((k, n), (r, _)) in plain.iter().zip(widths_of(&rounded)) {
        assert_eq!(r, k.next_multiple_of(8).min(*n), "k(0.9) = {k} of {n}");
    }
    // The checkpoint has those widths, so it loads and runs as usual.
    let x = pre.batch(&calib, 0..2).unwrap();
    assert_eq!(rounded.model.forward(&x).unwrap().dims(), &[2, 10]);
}

#[test]
fn explicit_widths_are_rounded_too_and_rounding_one_changes_nothing() {
    let (model, calib, pre) = setup();
    let links = model.links();
    let wanted: Vec<usize> = links.iter().enumerate().map(|(i, l)| 1 + i % l.units()).collect();
    let explicit: BTreeMap<String, usize> =
        links.iter().zip(&wanted).map(|(l, &k)| (model.name(l.producer), k)).collect();
    let widths = Widths::PerLayer(explicit);
    let as_given = widths_of(&squeeze(&model, &calib, &pre, widths.clone(), 1));
    assert_eq!(as_given.iter().map(|w| w.0).collect::<Vec<_>>(), wanted);
    for ((k, n), (r, _)) in as_given.iter().zip(widths_of(&squeeze(&model, &calib, &pre, widths, 4))) {
        assert!(r >= *k && (r % 4 == 0 || r == *n), "{k} of {n} became {r}");
        assert!(r < k + 4, "rounded past the next multiple: {k} -> {r}");
    }
}
