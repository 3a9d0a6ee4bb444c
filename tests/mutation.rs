//! Random byte mutations of small valid files — a checkpoint, an IDX split
//! (raw and gzipped) and a statistics file — fed to their loaders: each
//! must return a clean error or a correct load, never panic, and what loads
//! must be usable (the model runs, the statistics analyse).

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use sq_capture::{LayerStats, Stats};
use sq_data::{DatasetSpec, Split};
use sq_models::checkpoint::{load_bytes, to_bytes, StorageDtype};
use sq_models::synthetic::VggSpec;
use sq_select::Tau;

/// How a valid file is damaged: bytes overwritten, then optionally cut short.
#[derive(Debug, Clone)]
struct Mutation {
    writes: Vec<(Index, u8)>,
    cut: Option<Index>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (prop::collection::vec((any::<Index>(), any::<u8>()), 1..6), prop::option::weighted(0.2, any::<Index>()))
        .prop_map(|(writes, cut)| Mutation { writes, cut })
}

impl Mutation {
    /// Applies the mutation; writes land in the first `focus` bytes half of
    /// the time (headers are where parsers go wrong).
    fn apply(&self, original: &[u8], focus: usize) -> Vec<u8> {
        let mut bytes = original.to_vec();
        for (i, (at, value)) in self.writes.iter().enumerate() {
            let span = if i % 2 == 0 { focus.min(bytes.len()) } else { bytes.len() };
            if span > 0 {
                bytes[at.index(span)] = *value;
            }
        }
        if let Some(cut) = &self.cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes
    }
}

fn checkpoint() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut model = VggSpec::uniform("vgg11_bn".parse().unwrap(), 4, 1, 32, 8).build(1).unwrap();
        model.metadata_mut().insert("normalize_mean".into(), "0.5".into());
        to_bytes(&model, StorageDtype::F16, Path::new("m.safetensors")).unwrap()
    })
}

fn statistics() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let layers = [("features.0", 3, 4), ("classifier.0", 5, 1)]
            .into_iter()
            .map(|(name, n, positions)| {
                let mut layer = LayerStats::new(name.into(), n, positions);
                let rows = 8 * positions;
                let data: Vec<f32> = (0..rows * n).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
                layer.moments.update_f32(&data, rows).unwrap();
                layer
            })
            .collect();
        Stats::new(layers).to_bytes(Path::new("s.safetensors")).unwrap()
    })
}

/// An IDX test split of 3 images of 5x4 pixels: (images, labels).
fn idx() -> (Vec<u8>, Vec<u8>) {
    let mut images = 0x803u32.to_be_bytes().to_vec();
    [3u32, 5, 4].iter().for_each(|d| images.extend(d.to_be_bytes()));
    images.extend((0..60).map(|i| (i * 17) as u8));
    let mut labels = 0x801u32.to_be_bytes().to_vec();
    labels.extend(3u32.to_be_bytes());
    labels.extend([1, 7, 9]);
    (images, labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_checkpoint_loads_correctly_or_fails_cleanly(m in mutation()) {
        let original = checkpoint();
        let bytes = m.apply(original, 600);
        let path = Path::new("mutated.safetensors");
        match load_bytes(&bytes, path, None) {
            Err(err) => prop_assert!(err.to_string().contains("mutated.safetensors"), "{err}"),
            Ok(model) => {
                let sq_models::ActShape::Map { c, h, w } = model.input_shape() else { panic!("not an image model") };
                prop_assume!(c * h * w <= 1 << 16);
                let x = candle_core::Tensor::zeros((1, c, h, w), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
                let logits = model.forward(&x);
                if bytes == original {
                    prop_assert!(logits.is_ok());
                }
                if let Ok(logits) = logits {
                    prop_assert_eq!(logits.dims(), &[1, model.output_shape().units()]);
                }
            }
        }
    }

    #[test]
    fn mutated_statistics_load_correctly_or_fail_cleanly(m in mutation()) {
        let bytes = m.apply(statistics(), 400);
        match Stats::from_bytes(&bytes, Path::new("mutated-stats.safetensors")) {
            Err(err) => prop_assert!(err.to_string().contains("mutated-stats.safetensors"), "{err}"),
            Ok(stats) => {
                for layer in stats.layers() {
                    prop_assert!(layer.moments.count() > 0 && layer.positions_per_image > 0);
                    prop_assert!(layer.moments.sum().iter().all(|v| v.is_finite()));
                }
                // Whatever loaded analyses, or fails with an error.
                let _ = sq_pipeline::analyze(&stats, &[Tau::new(0.9).unwrap()]);
            }
        }
    }

    #[test]
    fn a_mutated_idx_split_loads_correctly_or_fails_cleanly(m in mutation(), which in 0..2usize, gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = idx();
        let mut files = [images, labels];
        files[which] = m.apply(&files[which], 16);
        let names = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
        for (name, bytes) in names.iter().zip(&files) {
            if gz {
                std::fs::write(dir.path().join(format!("{name}.gz")), gzip(bytes)).unwrap();
            } else {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
        }
        match DatasetSpec::FashionMnist(dir.path().into()).load(Split::Test) {
            Err(err) => prop_assert!(err.to_string().contains("idx"), "{err}"),
            Ok(data) => {
                let (c, h, w) = data.image_shape().unwrap();
                prop_assert!(!data.is_empty() && c * h * w > 0);
                prop_assert_eq!(data.images().unwrap().len(), data.len() * c * h * w);
                prop_assert!(data.labels().unwrap().iter().all(|&l| l < 10));
            }
        }
    }

    #[test]
    fn a_gzip_file_mutated_after_compression_fails_cleanly(m in mutation()) {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = idx();
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), m.apply(&gzip(&images), 32)).unwrap();
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), labels).unwrap();
        if let Err(err) = DatasetSpec::FashionMnist(dir.path().into()).load(Split::Test) {
            prop_assert!(err.to_string().contains("t10k-images-idx3-ubyte"), "{err}");
        }
    }
}
