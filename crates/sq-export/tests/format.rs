//! What the exported file contains (operators, names, shapes, metadata),
//! how export and the runner fail, and that files are written atomically.

use candle_core::{Device, Tensor};
use prost::Message;
use sq_data::Preprocess;
use sq_export::metadata::{ARCH, IMAGE_SIZE, PAD, PAD_VALUE};
use sq_export::tract::TractModel;
use sq_export::{save, to_onnx, Batch, Error, ExportOptions};
use sq_models::synthetic::VggSpec;
use sq_models::{conv2d, ActShape, Arch, BatchNorm2d, Layer, Linear, Model};
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;

fn odd_vgg() -> Model {
    let arch = Arch { stages: vec![1, 2], batch_norm: true };
    VggSpec { arch, widths: vec![5, 37, 1], in_channels: 3, input_side: 8, classifier: vec![7, 4] }.build(1).unwrap()
}

fn export(model: &Model, batch: Batch) -> Vec<u8> {
    to_onnx(model, &ExportOptions { batch, preprocess: None }).unwrap()
}

fn dims(info: &pb::ValueInfoProto) -> Vec<DimValue> {
    let Some(pb::type_proto::Value::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        panic!("{} is not a tensor", info.name)
    };
    t.shape.as_ref().unwrap().dim.iter().map(|d| d.value.clone().unwrap()).collect()
}

#[test]
fn graph_is_opset_13_with_batchnorm_folded_and_torchvision_names() {
    let proto = pb::ModelProto::decode(export(&odd_vgg(), Batch::Dynamic).as_slice()).unwrap();
    assert_eq!(proto.ir_version, 7);
    assert_eq!(proto.opset_import, [pb::OperatorSetIdProto { domain: String::new(), version: sq_export::OPSET }]);
    assert_eq!(sq_export::OPSET, 13);
    let graph = proto.graph.unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    // conv bn relu pool | conv bn relu conv bn relu pool | flatten | linear relu dropout linear
    let expected =
        ["Conv", "Relu", "MaxPool", "Conv", "Relu", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"];
    assert_eq!(ops, expected);

    let weights: Vec<(&str, &[i64])> = graph.initializer.iter().map(|t| (t.name.as_str(), t.dims.as_slice())).collect();
    let expected_weights: [(&str, &[i64]); 10] = [
        ("features.0.weight", &[5, 3, 3, 3]),
        ("features.0.bias", &[5]),
        ("features.3.weight", &[37, 5, 3, 3]),
        ("features.3.bias", &[37]),
        ("features.5.weight", &[1, 37, 3, 3]),
        ("features.5.bias", &[1]),
        ("classifier.0.weight", &[7, 4]),
        ("classifier.0.bias", &[7]),
        ("classifier.3.weight", &[4, 7]),
        ("classifier.3.bias", &[4]),
    ];
    assert_eq!(weights, expected_weights);
    for t in &graph.initializer {
        let numel: i64 = t.dims.iter().product();
        assert_eq!(t.raw_data.len() as i64, 4 * numel, "{}", t.name);
    }

    let [input] = graph.input.as_slice() else { panic!("one input") };
    let [output] = graph.output.as_slice() else { panic!("one output") };
    assert_eq!((input.name.as_str(), output.name.as_str()), ("input", "logits"));
    let n = DimValue::DimParam("N".into());
    assert_eq!(dims(input), [n.clone(), DimValue::DimValue(3), DimValue::DimValue(8), DimValue::DimValue(8)]);
    assert_eq!(dims(output), [n, DimValue::DimValue(4)]);
    assert_eq!(graph.node.last().unwrap().output, ["logits"]);
}

#[test]
fn fixed_batch_is_written_into_input_and_output() {
    let graph = pb::ModelProto::decode(export(&odd_vgg(), Batch::Fixed(5)).as_slice()).unwrap().graph.unwrap();
    assert_eq!(dims(&graph.input[0])[0], DimValue::DimValue(5));
    assert_eq!(dims(&graph.output[0])[0], DimValue::DimValue(5));
}

#[test]
fn metadata_records_preprocessing_and_keeps_the_checkpoint_entries() {
    let mut model = odd_vgg();
    model.metadata_mut().insert("dataset".into(), "cifar10".into());
    model.metadata_mut().insert("normalize_mean".into(), "0.5".into()); // replaced by the preprocessing's
    let (mean, std) = (vec![0.4914, 0.4822, 0.4465], vec![0.247, 0.2435, 0.2616]);
    let pre = Preprocess::new(mean.clone(), std.clone(), (4, 4), (8, 8)).unwrap();
    let onnx = to_onnx(&model, &ExportOptions { batch: Batch::Dynamic, preprocess: Some(pre) }).unwrap();
    let meta = TractModel::from_bytes(&onnx, 1).unwrap().metadata().clone();

    assert_eq!(meta[ARCH], "vgg-custom_bn"); // the architecture before folding
    assert_eq!(meta["dataset"], "cifar10");
    assert_eq!((meta[PAD].as_str(), meta[IMAGE_SIZE].as_str()), ("2", "4x4"));
    let (read_mean, read_std) = Preprocess::from_metadata(&meta.clone().into_iter().collect()).unwrap().unwrap();
    assert_eq!((read_mean, read_std), (mean.clone(), std.clone()));
    let black: Vec<f32> = meta[PAD_VALUE].split(',').map(|v| v.parse().unwrap()).collect();
    // A normalised black pixel, (0 - mean) / std, per channel.
    let expected: Vec<f32> = mean.iter().zip(&std).map(|(m, s)| (0.0 - m) / s).collect();
    assert_eq!(black, expected);
}

#[test]
fn preprocessing_that_does_not_fit_the_input_is_refused() {
    let model = odd_vgg(); // 3 x 8 x 8
    let cases = [
        (Preprocess::with_pad(vec![0.1, 0.2], vec![0.3, 0.3], 0).unwrap(), "2 means for 3 channels"),
        (Preprocess::with_pad(vec![0.1], vec![0.3], 4).unwrap(), "leaves no image"),
    ];
    for (pre, needle) in cases {
        let err = to_onnx(&model, &ExportOptions { batch: Batch::Dynamic, preprocess: Some(pre) }).unwrap_err();
        assert!(matches!(err, Error::Preprocess { .. }) && err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn models_outside_the_conventions_are_typed_errors() {
    let device = Device::Cpu;
    let linear = || Layer::Linear(Linear::new(Tensor::ones((2, 6), candle_core::DType::F32, &device).unwrap(), None));
    let conv = || {
        Layer::Conv2d(conv2d(Tensor::ones((3, 3, 3, 3), candle_core::DType::F32, &device).unwrap(), None, 1).unwrap())
    };
    let map = ActShape::Map { c: 3, h: 4, w: 4 };

    let vector_input = Model::new(ActShape::Vector(6), vec![linear()], Default::default()).unwrap();
    let err = to_onnx(&vector_input, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedModel { .. }) && err.to_string().contains("vector"), "{err}");

    let no_logits = Model::new(map, vec![conv(), Layer::Relu], Default::default()).unwrap();
    let err = to_onnx(&no_logits, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedModel { .. }) && err.to_string().contains("feature map"), "{err}");

    // A BatchNorm after a ReLU cannot be folded into a convolution.
    let ones = || Tensor::ones(3, candle_core::DType::F32, &device).unwrap();
    let bn = BatchNorm2d::new(ones(), ones(), ones(), ones(), 1e-5).unwrap();
    let layers = vec![
        conv(),
        Layer::Relu,
        Layer::BatchNorm2d(bn),
        Layer::Flatten,
        Layer::Linear(Linear::new(Tensor::ones((2, 48), candle_core::DType::F32, &device).unwrap(), None)),
    ];
    let stray_bn = Model::new(map, layers, Default::default()).unwrap();
    let err = to_onnx(&stray_bn, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedLayer { layer, kind: "batchnorm2d", .. } if layer == "features.2"),
        "{err}"
    );

    let err = to_onnx(&odd_vgg(), &ExportOptions { batch: Batch::Fixed(0), preprocess: None }).unwrap_err();
    assert!(matches!(err, Error::ZeroBatch), "{err}");
}

#[test]
fn runner_refuses_what_the_file_does_not_declare() {
    let fixed = export(&odd_vgg(), Batch::Fixed(3));
    let err = TractModel::from_bytes(&fixed, 2).err().unwrap();
    assert!(matches!(err, Error::Onnx { .. }) && err.to_string().contains("fixed batch of 3"), "{err}");
    assert!(matches!(TractModel::from_bytes(&fixed, 0).err().unwrap(), Error::ZeroBatch));
    let err = TractModel::from_bytes(b"not a model", 1).err().unwrap();
    assert!(matches!(err, Error::Onnx { .. }) && err.to_string().contains("<bytes>"), "{err}");

    let runner = TractModel::from_bytes(&fixed, 3).unwrap();
    let wrong = Tensor::zeros((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = runner.run(&wrong).unwrap_err();
    assert!(matches!(err, Error::Input { .. }), "{err}");
}

#[test]
fn save_is_atomic_deterministic_and_names_the_file_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let model = odd_vgg();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, b"previous").unwrap();
    save(&model, &ExportOptions::default(), &path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), export(&model, Batch::Dynamic)); // replaced, byte for byte
    assert_eq!(TractModel::load(&path, 2).unwrap().input_shape(), [2, 3, 8, 8]);

    let missing = dir.path().join("no-such-dir").join("model.onnx");
    let err = save(&model, &ExportOptions::default(), &missing).unwrap_err();
    assert!(matches!(err, Error::Write { .. }) && err.to_string().contains("no-such-dir/model.onnx"), "{err}");
    let err = TractModel::load(&missing, 1).err().unwrap();
    assert!(matches!(err, Error::Read { .. }) && err.to_string().contains("no-such-dir/model.onnx"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["model.onnx"]);
}

#[test]
fn batch_parses_the_command_line_forms() {
    assert_eq!("dynamic".parse::<Batch>().unwrap(), Batch::Dynamic);
    assert_eq!("64".parse::<Batch>().unwrap(), Batch::Fixed(64));
    for bad in ["0", "-1", "many", ""] {
        assert!(bad.parse::<Batch>().is_err(), "{bad}");
    }
    assert_eq!(Batch::Fixed(7).to_string().parse::<Batch>().unwrap(), Batch::Fixed(7));
    assert_eq!(Batch::Dynamic.to_string(), "dynamic");
}
