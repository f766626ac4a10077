//! ONNX models built in code, for the tests that import them (`onnx_ops`, `import_errors`,
//! `import_external`): attributes, initializers, inputs, and one-node or multi-node models.

use prost::Message;
use qlab::import::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_shape_proto::{Dimension, dimension::Value as Dim},
    type_proto::{Tensor, Value as Ty},
};

pub fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec()),
        r#type: Some(3),
        ..Default::default()
    }
}

pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(2),
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(7),
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(7),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn input(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(Dim::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(Ty::TensorType(Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A one-node model `y = OP(x, extra inputs...)` with the given initializers.
pub fn model(
    op: &str,
    x_dims: &[i64],
    extra: &[&str],
    inits: Vec<TensorProto>,
    attrs: Vec<AttributeProto>,
) -> Vec<u8> {
    let mut inputs = vec!["x"];
    inputs.extend(extra);
    let node = node(&format!("/m/{op}"), op, &inputs, "y", attrs);
    graph(vec![node], inits, x_dims)
}

/// An ONNX node `name: output = op(inputs...)`.
pub fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

/// An opset-17 model of `nodes` reading graph input `x` of `x_dims` and writing `y`.
pub fn graph(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, x_dims: &[i64]) -> Vec<u8> {
    let graph = GraphProto {
        node: nodes,
        initializer: inits,
        input: vec![input("x", x_dims)],
        output: vec![ValueInfoProto {
            name: Some("y".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}
