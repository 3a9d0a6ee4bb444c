//! Capture correctness: the moments equal a naive per-sample computation on
//! exactly the tensor each consumer reads; shards merge exactly; files round-trip.

use std::path::Path;

use candle_core::{Device, Tensor};
use proptest::prelude::*;
use sq_capture::{accumulate, capture, Frontier, Stats};
use sq_data::{Dataset, DatasetSpec, Preprocess, Split};
use sq_linalg::Moments;
use sq_models::synthetic::VggSpec;
use sq_models::Model;

/// Naive moments: loop over samples, unit vector per (image, position).
fn naive(x: &Tensor) -> (u64, Vec<f64>, Vec<f64>) {
    let (samples, n): (Vec<Vec<f64>>, usize) = match *x.dims() {
        [b, c, h, w] => {
            let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut out = Vec::new();
            for i in 0..b {
                for p in 0..h * w {
                    out.push((0..c).map(|ch| v[(i * c + ch) * h * w + p] as f64).collect());
                }
            }
            (out, c)
        }
        [b, f] => {
            let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            ((0..b).map(|i| v[i * f..(i + 1) * f].iter().map(|&a| a as f64).collect()).collect(), f)
        }
        _ => unreachable!(),
    };
    let mut sum = vec![0.0; n];
    let mut gram = vec![0.0; n * n];
    for s in &samples {
        for i in 0..n {
            sum[i] += s[i];
            for j in 0..n {
                gram[i * n + j] += s[i] * s[j];
            }
        }
    }
    (samples.len() as u64, sum, gram)
}

fn assert_moments_eq(m: &Moments, (count, sum, gram): &(u64, Vec<f64>, Vec<f64>)) {
    assert_eq!(m.count(), *count);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()));
    assert!(m.sum().iter().zip(sum).all(|(a, b)| close(*a, *b)), "sums differ");
    assert!(m.gram().as_slice().iter().zip(gram).all(|(a, b)| close(*a, *b)), "Gram matrices differ");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn accumulate_matches_naive_per_sample_loop(b in 1usize..4, c in 1usize..6, h in 1usize..5, w in 1usize..5, seed in 0u64..1000) {
        let len = b * c * h * w;
        let data: Vec<f32> = (0..len).map(|i| ((i as u64 * 7919 + seed * 104729) % 1000) as f32 / 100.0 - 5.0).collect();
        let x = Tensor::from_vec(data, (b, c, h, w), &Device::Cpu).unwrap();
        let mut m = Moments::new(c);
        accumulate(&mut m, &x).unwrap();
        assert_moments_eq(&m, &naive(&x));
        let flat = x.flatten_from(1).unwrap();
        let mut m = Moments::new(c * h * w);
        accumulate(&mut m, &flat).unwrap();
        assert_moments_eq(&m, &naive(&flat));
    }
}

/// Writes 28x28 images and their labels as an IDX test split in `dir` and loads it.
fn dataset_from(dir: &Path, pixels: &[u8], labels: &[u32]) -> Dataset {
    let n = labels.len() as u32;
    let mut images = vec![0, 0, 8, 3];
    for d in [n, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    images.extend(pixels);
    let mut label_file = vec![0, 0, 8, 1];
    label_file.extend(n.to_be_bytes());
    label_file.extend(labels.iter().map(|&l| l as u8));
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), label_file).unwrap();
    DatasetSpec::FashionMnist(dir.into()).load(Split::Test).unwrap()
}

/// `n` pseudo-random images.
fn dataset(dir: &Path, n: usize) -> Dataset {
    let pixels: Vec<u8> = (0..n * 784).map(|i| ((i * 2654435761usize) >> 7) as u8).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    dataset_from(dir, &pixels, &labels)
}

fn setup(n: usize) -> (tempfile::TempDir, Model, Dataset, Preprocess) {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), n);
    // 64x64 input keeps a 2x2 map at the flatten, so the conv -> flatten -> linear link has 4 positions.
    let model = VggSpec::uniform("vgg11_bn".parse().unwrap(), 6, 1, 64, 12).build(9).unwrap();
    let pre = Preprocess::new(vec![0.3], vec![0.35], (28, 28), (64, 64)).unwrap();
    (dir, model, data, pre)
}

#[test]
fn capture_records_what_each_consumer_reads() {
    let (_dir, model, data, pre) = setup(10);
    let stats = capture(&model, pre.batches(&data, 4), |_| {}).unwrap();
    let links = model.links();
    assert_eq!(stats.layers().len(), links.len());
    let x = pre.batch(&data, 0..data.len()).unwrap();
    for (link, layer) in links.iter().zip(stats.layers()) {
        assert_eq!(layer.name, model.name(link.producer));
        let tapped = model.forward_range(&x, 0..link.tap).unwrap();
        assert_moments_eq(&layer.moments, &naive(&tapped));
        assert_eq!(layer.images(), 10);
    }
    // The conv feeding the classifier is tapped before the flatten: channels, 2x2 positions.
    let last_conv = &stats.layers()[links.len() - 2];
    assert_eq!((last_conv.moments.dim(), last_conv.positions_per_image), (6, 4));
}

#[test]
fn shards_merge_into_the_whole() {
    let (_dir, model, data, pre) = setup(12);
    let whole = capture(&model, pre.batches(&data, 5), |_| {}).unwrap();
    let mut first = data.clone();
    first.truncate(7);
    let dir = tempfile::tempdir().unwrap();
    let second = dataset_from(dir.path(), &data.images().unwrap()[7 * 784..], &data.labels().unwrap()[7..]);
    let mut merged = capture(&model, pre.batches(&first, 3), |_| {}).unwrap();
    merged.merge(&capture(&model, pre.batches(&second, 2), |_| {}).unwrap()).unwrap();
    for (a, b) in merged.layers().iter().zip(whole.layers()) {
        assert_eq!(a.moments.count(), b.moments.count());
        let (ga, gb) = (a.moments.gram(), b.moments.gram());
        let scale = gb.as_slice().iter().fold(1.0f64, |m, v| m.max(v.abs()));
        assert!(ga.as_slice().iter().zip(gb.as_slice()).all(|(x, y)| (x - y).abs() <= 1e-9 * scale), "{}", a.name);
    }
}

#[test]
fn statistics_files_round_trip_and_reject_garbage() {
    let (dir, model, data, pre) = setup(3);
    let stats = capture(&model, pre.batches(&data, 3), |_| {}).unwrap();
    let path = dir.path().join("stats.safetensors");
    stats.save(&path).unwrap();
    assert_eq!(Stats::load(&path).unwrap(), stats);

    std::fs::write(&path, b"garbage").unwrap();
    let err = Stats::load(&path).unwrap_err().to_string();
    assert!(err.contains("stats.safetensors"), "{err}");
    // A model checkpoint is not a statistics file.
    sq_models::checkpoint::save(&model, &path, Default::default()).unwrap();
    let err = Stats::load(&path).unwrap_err().to_string();
    assert!(err.contains("format"), "{err}");
}

#[test]
fn merging_statistics_of_different_models_is_refused() {
    let (_dir, model, data, pre) = setup(2);
    let mut a = capture(&model, pre.batches(&data, 2), |_| {}).unwrap();
    let other = VggSpec::uniform("vgg11_bn".parse().unwrap(), 5, 1, 64, 12).build(9).unwrap();
    let b = capture(&other, pre.batches(&data, 2), |_| {}).unwrap();
    assert!(a.merge(&b).is_err());
}

/// The frontier advanced to every tap gives the same moments as a capture on
/// the same model, and narrowing it keeps exactly the chosen units.
#[test]
fn frontier_follows_the_model_and_keeps_units() {
    let (_dir, model, data, pre) = setup(9);
    let stats = capture(&model, pre.batches(&data, 4), |_| {}).unwrap();
    let batches = pre.batches(&data, 4).collect::<Result<Vec<_>, _>>().unwrap();
    let mut frontier = Frontier::new(batches).unwrap();
    for (link, layer) in model.links().iter().zip(stats.layers()) {
        frontier.advance(&model, link.tap).unwrap();
        assert_eq!(frontier.at(), link.tap);
        assert_eq!(frontier.moments().unwrap(), layer.moments, "{}", layer.name);
    }
    assert!(matches!(frontier.advance(&model, 0), Err(sq_capture::Error::Backwards { .. })));

    // Keeping units 1 and 3 of the first tap keeps their block of the moments.
    let mut frontier = Frontier::new(pre.batches(&data, 4).collect::<Result<Vec<_>, _>>().unwrap()).unwrap();
    let link = &model.links()[0];
    frontier.advance(&model, link.tap).unwrap();
    let full = frontier.moments().unwrap();
    frontier.keep_units(&[1, 3]).unwrap();
    let kept = frontier.moments().unwrap();
    assert_eq!(kept.count(), full.count());
    assert_eq!(kept.sum(), [full.sum()[1], full.sum()[3]]);
    assert_eq!(kept.gram().select(&[0, 1], &[0, 1]).unwrap(), full.gram().select(&[1, 3], &[1, 3]).unwrap());

    // Joint moments with itself: both diagonal blocks equal the moments.
    let joint = frontier.joint_moments(&frontier).unwrap();
    assert_eq!(joint.dim(), 4);
    assert_eq!(joint.gram().select(&[2, 3], &[2, 3]).unwrap(), kept.gram());
    assert_eq!(joint.gram().select(&[0, 1], &[2, 3]).unwrap(), kept.gram());
    assert!(matches!(Frontier::new(Vec::new()), Err(sq_capture::Error::Empty)));
}

/// A frontier that spills some or all of its batches to its temporary file
/// computes exactly what one held in memory computes.
#[test]
fn a_spilled_frontier_computes_what_one_in_memory_computes() {
    let (_dir, model, data, pre) = setup(9);
    let make = |memory| Frontier::with_memory(pre.batches(&data, 4), memory).unwrap();
    let (mut memory, mut half, mut disk) = (make(usize::MAX), make(4 * 784 * 4 + 1), make(0));
    assert!(!memory.is_spilled() && half.is_spilled() && disk.is_spilled());
    assert_eq!((memory.len(), half.len(), disk.len()), (3, 3, 3));
    let reference = disk.clone();
    for link in model.links() {
        for frontier in [&mut memory, &mut half, &mut disk] {
            frontier.advance(&model, link.tap).unwrap();
        }
        let moments = memory.moments().unwrap();
        assert_eq!(half.moments().unwrap(), moments);
        assert_eq!(disk.moments().unwrap(), moments);
    }
    let kept: Vec<usize> = (0..memory.units()).step_by(2).collect();
    for frontier in [&mut memory, &mut half, &mut disk] {
        frontier.keep_units(&kept).unwrap();
    }
    assert_eq!(half.moments().unwrap(), memory.moments().unwrap());
    assert_eq!(disk.moments().unwrap(), memory.moments().unwrap());
    // A clone keeps reading the file it shared after the original moved on.
    let mut again = make(0);
    again.advance(&model, model.links()[0].tap).unwrap();
    let mut from_clone = reference.clone();
    from_clone.advance(&model, model.links()[0].tap).unwrap();
    assert_eq!(from_clone.moments().unwrap(), again.moments().unwrap());
    assert_eq!(from_clone.joint_moments(&again).unwrap(), again.joint_moments(&from_clone).unwrap());
}

#[test]
fn merging_a_shard_twice_or_shards_of_other_weights_is_refused() {
    let (_dir, model, data, pre) = setup(4);
    let stats = capture(&model, pre.batches(&data, 2), |_| {}).unwrap();
    assert_eq!(stats.model(), Some(sq_capture::model_fingerprint(&model).unwrap().as_str()));
    // The same images again: the same shard, counted twice.
    let again = capture(&model, pre.batches(&data, 4), |_| {}).unwrap();
    let mut merged = stats.clone();
    let err = merged.merge(&again).unwrap_err().to_string();
    assert!(err.contains("same images"), "{err}");
    assert_eq!(merged, stats, "a refused merge changes nothing");
    // Same layers, other weights.
    let other = VggSpec::uniform("vgg11_bn".parse().unwrap(), 6, 1, 64, 12).build(10).unwrap();
    let err = merged.merge(&capture(&other, pre.batches(&data, 2), |_| {}).unwrap()).unwrap_err().to_string();
    assert!(err.contains("different models"), "{err}");
    assert!(stats.check_model(&model).is_ok());
    assert!(stats.check_model(&other).unwrap_err().to_string().contains("another model"));
}

#[test]
fn statistics_files_with_non_finite_or_impossible_numbers_are_refused() {
    let (dir, model, data, pre) = setup(3);
    let layers = capture(&model, pre.batches(&data, 3), |_| {}).unwrap().into_layers();
    let path = dir.path().join("bad.safetensors");
    let corrupt = |edit: &dyn Fn(&mut sq_capture::LayerStats)| {
        let mut layers = layers.clone();
        edit(&mut layers[1]);
        Stats::new(layers).save(&path).unwrap();
        Stats::load(&path).unwrap_err().to_string()
    };
    let err = corrupt(&|l| {
        let mut sum = l.moments.sum().to_vec();
        sum[0] = f64::INFINITY;
        l.moments = Moments::from_parts(l.moments.count(), sum, l.moments.gram()).unwrap();
    });
    assert!(
        err.contains("bad.safetensors") && err.contains("features.4.sum") && err.contains("NaN or infinite"),
        "{err}"
    );
    let err = corrupt(&|l| l.positions_per_image = 0);
    assert!(err.contains("features.4") && err.contains("whole number of images"), "{err}");
}
