//! Building ONNX protobuf messages: tensors of each element type the exports write, node
//! attributes and typed graph inputs / outputs. Only constructors live here; what to build is
//! the callers' business.

use crate::graph::Value;
use crate::import::onnx::proto::{
    AttributeProto, NodeProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};

/// ONNX element types (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Float = 1,
    Uint8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
}

/// A tensor of `dims` from little-endian `raw` bytes.
fn raw_tensor(name: &str, elem: Elem, dims: &[usize], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(elem as i32),
        dims: dims.iter().map(|&d| d as i64).collect(),
        raw_data: Some(raw),
        ..Default::default()
    }
}

pub fn f32_tensor(
    name: &str,
    dims: &[usize],
    values: impl IntoIterator<Item = f32>,
) -> TensorProto {
    let raw = values.into_iter().flat_map(f32::to_le_bytes).collect();
    raw_tensor(name, Elem::Float, dims, raw)
}

pub fn i64_tensor(
    name: &str,
    dims: &[usize],
    values: impl IntoIterator<Item = i64>,
) -> TensorProto {
    let raw = values.into_iter().flat_map(i64::to_le_bytes).collect();
    raw_tensor(name, Elem::Int64, dims, raw)
}

pub fn i32_tensor(
    name: &str,
    dims: &[usize],
    values: impl IntoIterator<Item = i32>,
) -> TensorProto {
    let raw = values.into_iter().flat_map(i32::to_le_bytes).collect();
    raw_tensor(name, Elem::Int32, dims, raw)
}

/// An 8-bit tensor: `Int8` or `Uint8` (values already in that type's range).
pub fn narrow_tensor(
    name: &str,
    elem: Elem,
    dims: &[usize],
    values: impl IntoIterator<Item = i64>,
) -> TensorProto {
    let raw = values.into_iter().map(|v| v as u8).collect();
    raw_tensor(name, elem, dims, raw)
}

/// A graph value as an initializer: f32 stays float, i64 stays int64.
pub fn value_tensor(name: &str, value: &Value) -> TensorProto {
    match value {
        Value::F32(a) => f32_tensor(name, a.shape(), a.iter().copied()),
        Value::I64(a) => i64_tensor(name, a.shape(), a.iter().copied()),
    }
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

pub fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attr(name, AttributeType::Int)
    }
}

pub fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attr(name, AttributeType::Float)
    }
}

pub fn ints_attr(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        ints: v.into_iter().collect(),
        ..attr(name, AttributeType::Ints)
    }
}

pub fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Some(v.as_bytes().to_vec()),
        ..attr(name, AttributeType::String)
    }
}

pub fn tensor_attr(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attr(name, AttributeType::Tensor)
    }
}

/// `usize` lists (kernel sizes, strides, permutations) as an ints attribute.
pub fn sizes_attr(name: &str, v: &[usize]) -> AttributeProto {
    ints_attr(name, v.iter().map(|&x| x as i64))
}

pub fn node(
    op_type: &str,
    name: &str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op_type.into()),
        name: Some(name.into()),
        input: inputs,
        output: outputs,
        attribute,
        ..Default::default()
    }
}

pub fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

/// A typed graph input or output; `None` dims are symbolic (`N` for the batch, `d2`, ...).
pub fn value_info(name: &str, elem: Elem, shape: &[Option<usize>]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value as Dim};
    let dim = shape
        .iter()
        .enumerate()
        .map(|(i, d)| Dimension {
            value: Some(match d {
                Some(v) => Dim::DimValue(*v as i64),
                None if i == 0 => Dim::DimParam("N".into()),
                None => Dim::DimParam(format!("d{i}")),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
