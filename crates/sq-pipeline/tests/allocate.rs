//! Global budgets: the cost model is exact, the allocation never exceeds its
//! budget and leaves no room for one more unit, it spends cuts where they
//! cost least, and budget specs parse or fail cleanly.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sq_data::{Dataset, Preprocess};
use sq_models::checkpoint::from_state_dict;
use sq_models::synthetic::{ResNetSpec, Stem, VggSpec};
use sq_models::{Arch, BlockKind, ResNetArch};
use sq_pipeline::{
    allocate, total_cost, Allocator, CostModel, LossCurve, ModelBudget, Multiple, Profile, Resource, Settings, Widths,
};

/// A VGG of family `arch` with the given conv widths and hidden sizes.
fn vgg(arch: &str, widths: Vec<usize>, hidden: Vec<usize>, side: usize) -> sq_models::Model {
    let arch: Arch = arch.parse().unwrap();
    let mut classifier = hidden;
    classifier.push(10);
    VggSpec { arch, widths, in_channels: 3, input_side: side, classifier }.build(1).unwrap()
}

/// Strategy: a VGG-11 shape (8 convs, 1 or 2 hidden layers) and narrower widths for each producer.
fn shapes() -> impl Strategy<Value = (bool, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>)> {
    (any::<bool>(), prop::collection::vec(1usize..12, 8), prop::collection::vec(1usize..20, 1..3)).prop_flat_map(
        |(bn, widths, hidden)| {
            let narrow_w = widths.iter().map(|&w| 1..=w).collect::<Vec<_>>();
            let narrow_h = hidden.iter().map(|&h| 1..=h).collect::<Vec<_>>();
            (Just(bn), Just(widths), Just(hidden), narrow_w, narrow_h)
        },
    )
}

fn curve(name: &str, width: usize, slope: f64) -> LossCurve {
    let points = sq_pipeline::grid(width).into_iter().map(|k| (k, slope * (width - k) as f64 / width as f64)).collect();
    LossCurve::new(name, width, points).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The cost model's total at any widths is exactly the parameter and MAC
    /// count of a model built at those widths.
    #[test]
    fn cost_model_is_exact((bn, widths, hidden, narrow_w, narrow_h) in shapes(), side in prop::sample::select(vec![32usize, 64])) {
        let arch = if bn { "vgg11_bn" } else { "vgg11" };
        let full = vgg(arch, widths, hidden, side);
        let small = vgg(arch, narrow_w.clone(), narrow_h.clone(), side);
        let cost = CostModel::new(&full);
        let at: Vec<usize> = narrow_w.into_iter().chain(narrow_h).collect();
        prop_assert_eq!(cost.total(cost.widths(), Resource::Params), full.param_count());
        prop_assert_eq!(cost.total(cost.widths(), Resource::Flops), full.macs());
        prop_assert_eq!(cost.total(&at, Resource::Params), small.param_count());
        prop_assert_eq!(cost.total(&at, Resource::Flops), small.macs());
    }

    /// Whatever the curves and the width multiple, the allocation stays
    /// within the budget, every width is a multiple or the full width, and
    /// growing any producer by one step (one unit, or to its next multiple)
    /// would exceed the budget.
    #[test]
    fn allocation_meets_the_budget_exactly(
        (bn, widths, hidden, _, _) in shapes(),
        slopes in prop::collection::vec(0.0f64..5.0, 10),
        ratio in 1.05f64..8.0,
        flops: bool,
        multiple in prop::sample::select(vec![1usize, 1, 2, 4, 8]),
    ) {
        let round = Multiple::new(multiple).unwrap();
        let model = vgg(if bn { "vgg11_bn" } else { "vgg11" }, widths, hidden, 32);
        let cost = CostModel::new(&model);
        let resource = if flops { Resource::Flops } else { Resource::Params };
        let links = model.links();
        let curves: Vec<LossCurve> =
            links.iter().zip(slopes.iter().cycle()).map(|(l, &s)| curve(&model.name(l.producer), l.units(), s)).collect();
        let limit = (cost.total(cost.widths(), resource) as f64 / ratio) as usize;
        let smallest: Vec<usize> = links.iter().map(|l| round.round_up(1, l.units())).collect();
        let smallest = cost.total(&smallest, resource);
        match allocate(&cost, &curves, resource, limit, round) {
            Ok(widths) => {
                prop_assert!(cost.total(&widths, resource) <= limit);
                for l in 0..widths.len() {
                    let n = links[l].units();
                    prop_assert!(widths[l] >= 1 && widths[l] <= n);
                    prop_assert!(widths[l] % multiple == 0 || widths[l] == n, "width {} of {}", widths[l], n);
                    if widths[l] < n {
                        let mut grown = widths.clone();
                        grown[l] = round.round_up(widths[l] + 1, n);
                        prop_assert!(cost.total(&grown, resource) > limit, "producer {} could still grow", l);
                    }
                }
            }
            // Only when even one unit per producer does not fit.
            Err(_) => prop_assert!(smallest > limit, "refused a reachable budget: {} <= {}", smallest, limit),
        }
    }
}

/// A ResNet whose block-internal widths are narrowed to `widths` (one per
/// link, first `k` units kept), built from the sliced `state_dict`.
fn narrowed_resnet(spec: &ResNetSpec, widths: &[usize]) -> sq_models::Model {
    let meta = BTreeMap::from([("input".to_string(), format!("1x{0}x{0}", spec.input_side))]);
    let mut state = spec.state_dict(2).unwrap();
    let full = from_state_dict(state.clone(), meta.clone(), None).unwrap();
    for (link, &k) in full.links().iter().zip(widths) {
        let producer = full.name(link.producer);
        let (prefix, index) = producer.rsplit_once("conv").unwrap();
        let rows = |t: &candle_core::Tensor| t.narrow(0, 0, k).unwrap();
        state.insert(format!("{producer}.weight"), rows(&state[&format!("{producer}.weight")]));
        for suffix in ["weight", "bias", "running_mean", "running_var"] {
            let key = format!("{prefix}bn{index}.{suffix}");
            state.insert(key.clone(), rows(&state[&key]));
        }
        let key = format!("{}.weight", full.name(link.consumer));
        state.insert(key.clone(), state[&key].narrow(1, 0, k).unwrap());
    }
    from_state_dict(state, meta, None).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// On ResNets the cost model is exact too: a block's first conv reads
    /// the residual stream, whatever the width of the block before it.
    #[test]
    fn cost_model_is_exact_on_resnets(
        bottleneck: bool,
        imagenet: bool,
        fractions in prop::collection::vec(0.05f64..=1.0, 12),
        ratio in 1.05f64..4.0,
        flops: bool,
    ) {
        let kind = if bottleneck { BlockKind::Bottleneck } else { BlockKind::Basic };
        let (stem, side) = if imagenet { (Stem::ImageNet, 32) } else { (Stem::Cifar, 12) };
        let spec = ResNetSpec::uniform(ResNetArch { kind, blocks: vec![2, 1] }, stem, 6, 1, side);
        let full = spec.build(2).unwrap();
        let cost = CostModel::new(&full);
        let at: Vec<usize> = full.links().iter().zip(fractions.iter().cycle())
            .map(|(l, f)| ((l.units() as f64 * f).ceil() as usize).clamp(1, l.units()))
            .collect();
        let small = narrowed_resnet(&spec, &at);
        prop_assert_eq!(cost.total(cost.widths(), Resource::Params), full.param_count());
        prop_assert_eq!(cost.total(cost.widths(), Resource::Flops), full.macs());
        prop_assert_eq!(cost.total(&at, Resource::Params), small.param_count());
        prop_assert_eq!(cost.total(&at, Resource::Flops), small.macs());

        // And the allocation meets a budget on it.
        let resource = if flops { Resource::Flops } else { Resource::Params };
        let links = full.links();
        let curves: Vec<LossCurve> = links.iter().map(|l| curve(&full.name(l.producer), l.units(), 1.0)).collect();
        let limit = (cost.total(cost.widths(), resource) as f64 / ratio) as usize;
        if let Ok(widths) = allocate(&cost, &curves, resource, limit, Multiple::ONE) {
            prop_assert!(total_cost(&narrowed_resnet(&spec, &widths), resource) <= limit);
        }
    }
}

/// With one producer nearly free to cut and the others expensive, the
/// allocation takes the cut there and leaves the others whole.
#[test]
fn allocation_cuts_where_it_costs_least() {
    let model = vgg("vgg11_bn", vec![16; 8], vec![32], 32);
    let cost = CostModel::new(&model);
    let links = model.links();
    let cheap = 5; // the sixth producer
    let curves: Vec<LossCurve> = links
        .iter()
        .enumerate()
        .map(|(l, link)| curve(&model.name(link.producer), link.units(), if l == cheap { 0.001 } else { 10.0 }))
        .collect();
    let full = cost.total(cost.widths(), Resource::Params);
    let mut at = cost.widths().to_vec();
    at[cheap] = 4;
    let limit = cost.total(&at, Resource::Params);
    assert!(limit < full);
    let widths = allocate(&cost, &curves, Resource::Params, limit, Multiple::ONE).unwrap();
    assert_eq!(widths[cheap], 4, "{widths:?}");
    for (l, (&k, link)) in widths.iter().zip(&links).enumerate() {
        if l != cheap {
            assert_eq!(k, link.units(), "producer {l} was cut: {widths:?}");
        }
    }
}

#[test]
fn budgets_parse_and_print() {
    for (text, printed) in [("params:4.9x", "params:4.9x"), ("flops:3.4", "flops:3.4x"), ("tau:0.99", "tau:0.99")] {
        let budget: ModelBudget = text.parse().unwrap();
        assert_eq!(budget.to_string(), printed);
        assert_eq!(printed.parse::<ModelBudget>().unwrap(), budget);
    }
    assert_eq!(
        "params:4.9x".parse::<ModelBudget>().unwrap(),
        ModelBudget::Ratio { resource: Resource::Params, ratio: 4.9 }
    );
    for (bad, needle) in [
        ("params:0x", "ratio must be above 1"),
        ("params:0.5x", "ratio must be above 1"),
        ("params:1x", "ratio must be above 1"),
        ("flops:abc", "not a number"),
        ("flops:infx", "ratio must be above 1"),
        ("tau:1.5", "tau"),
        ("size:2x", "expected tau:T, params:Rx or flops:Rx"),
        ("4.9x", "expected"),
    ] {
        let err = bad.parse::<ModelBudget>().unwrap_err().to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn curves_must_be_ascending_and_end_at_the_full_width() {
    assert!(LossCurve::new("a", 4, vec![(1, 1.0), (4, 0.0)]).is_ok());
    assert!(LossCurve::new("a", 4, vec![(1, 1.0), (3, 0.0)]).is_err());
    assert!(LossCurve::new("a", 4, vec![(2, 1.0), (2, 0.5), (4, 0.0)]).is_err());
    assert!(LossCurve::new("a", 4, vec![(0, 1.0), (4, 0.0)]).is_err());
    assert!(LossCurve::new("a", 4, vec![(1, f64::NAN), (4, 0.0)]).is_err());
    let c = LossCurve::new("a", 10, vec![(2, 1.0), (6, 0.2), (10, 0.0)]).unwrap();
    assert_eq!(c.loss_at(2), 1.0);
    assert!((c.loss_at(4) - 0.6).abs() < 1e-12);
    assert_eq!(c.loss_at(1), 1.0);
    assert_eq!(c.loss_at(10), 0.0);
}

#[test]
fn the_measured_profile_reports_exactly_the_work_it_was_sized_by() {
    // A VGG-11-BN 6 channels wide at 32x32 (the Fashion-MNIST padding), 20 validation images.
    let model = vgg("vgg11_bn", vec![6; 8], vec![12], 32);
    let pixels: Vec<u8> = (0..40 * 28 * 28).map(|i| ((i * 13 + i / 89) % 253) as u8).collect();
    let images =
        Dataset::new("synthetic", (3, 28, 28), [pixels.clone(), pixels.clone(), pixels].concat(), vec![0; 40], 10);
    let images = images.unwrap();
    let (calib, val) = (images.slice(0..20), images.slice(20..40));
    let pre = Preprocess::new(vec![0.5; 3], vec![0.25; 3], (28, 28), (32, 32)).unwrap();
    let settings = Settings { widths: Widths::PerLayer(BTreeMap::new()), ..Settings::default() };
    let mut reports = Vec::new();
    Profile::new(&model, &calib, &val, &pre, &settings, Allocator::Measured, |done, total| reports.push((done, total)))
        .unwrap();
    let expected = sq_pipeline::measured_macs_per_image(&model) * 20;
    // One report per grid width below the full width, increasing, ending at the estimate.
    let widths: usize = model.links().iter().map(|l| sq_pipeline::grid(l.units()).len() - 1).sum();
    assert_eq!(reports.len(), widths);
    assert!(reports.windows(2).all(|r| r[0].0 < r[1].0));
    assert_eq!(reports.last(), Some(&(expected, expected)));
    // The first producer's passes run the whole network but the prefix before it.
    let costs = model.layer_costs();
    let first = model.links()[0].producer;
    assert_eq!(reports[0].0, 20 * costs[first..].iter().map(|c| c.macs).sum::<usize>());
}

#[test]
fn the_default_validation_set_shrinks_with_the_measured_work_within_its_bounds() {
    use sq_pipeline::{default_validation, measured_macs_per_image, MAX_VALIDATION, MIN_VALIDATION, VALIDATION_MACS};
    let small = vgg("vgg11_bn", vec![8; 8], vec![16], 32);
    assert_eq!(default_validation(&small), MAX_VALIDATION);
    // VGG-11 at 224x224 with torchvision's stage widths: hundreds of G multiply-accumulates per image.
    let widths = vec![64, 128, 256, 256, 512, 512, 512, 512];
    let large = vgg("vgg11_bn", widths.clone(), vec![64], 224);
    let per_image = measured_macs_per_image(&large);
    assert!((MIN_VALIDATION..MAX_VALIDATION).contains(&(VALIDATION_MACS / per_image)), "{per_image}");
    assert_eq!(default_validation(&large), VALIDATION_MACS / per_image);
    let huge = vgg("vgg11_bn", widths, vec![64], 640);
    assert_eq!(default_validation(&huge), MIN_VALIDATION);
}
