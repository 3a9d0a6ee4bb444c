//! Constructors for the few ONNX protobuf messages the exporter writes.
//!
//! The messages are the prost-generated ONNX types that `tract-onnx`
//! exposes as `tract_onnx::pb`; these helpers only fill in the fields the
//! specification requires (attribute type tags, element types), so that the
//! graph builder reads as a list of operators.

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};

/// ONNX element type of every tensor the exporter writes.
const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

/// One dimension of a graph input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dim<'a> {
    /// A size fixed in the file.
    Fixed(usize),
    /// A symbolic size (`dim_param`) chosen by the runtime, e.g. the batch.
    Named(&'a str),
}

/// An initializer holding `values` (row-major) as little-endian `f32` raw data.
pub(crate) fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_owned(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A graph input or output: an `f32` tensor of the given dimensions.
pub(crate) fn value_info(name: &str, dims: &[Dim<'_>]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match *d {
                Dim::Fixed(n) => dimension::Value::DimValue(n as i64),
                Dim::Named(s) => dimension::Value::DimParam(s.to_owned()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = pb::type_proto::Tensor { elem_type: FLOAT, shape: Some(pb::TensorShapeProto { dim }) };
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

/// An integer attribute.
pub(crate) fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub(crate) fn ints(name: &str, values: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

/// A `key = value` entry of the model's `metadata_props`.
pub(crate) fn property(key: &str, value: &str) -> pb::StringStringEntryProto {
    pb::StringStringEntryProto { key: key.to_owned(), value: value.to_owned() }
}
