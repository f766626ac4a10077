//! The values that flow along graph edges: f32 activations and weights, and the i64 tensors
//! that exporters use for shapes and indices.

use super::GraphError;
use ndarray::ArrayD;

/// A tensor flowing between nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl Value {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::I64(a) => a.shape(),
        }
    }

    /// Bytes per element.
    pub fn elem_size(&self) -> usize {
        match self {
            Value::F32(_) => 4,
            Value::I64(_) => 8,
        }
    }

    /// The tensor's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.shape().iter().product::<usize>() as u64 * self.elem_size() as u64
    }

    /// The element type's name, for error messages.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            Value::F32(_) => "float32",
            Value::I64(_) => "int64",
        }
    }

    /// The f32 tensor, or a typed error naming the node that needed it.
    pub fn f32(&self, node: &str) -> Result<&ArrayD<f32>, GraphError> {
        match self {
            Value::F32(a) => Ok(a),
            other => Err(GraphError::WrongType {
                node: node.into(),
                expected: "float32",
                got: other.dtype_name(),
            }),
        }
    }

    /// The i64 tensor, or a typed error naming the node that needed it.
    pub fn i64(&self, node: &str) -> Result<&ArrayD<i64>, GraphError> {
        match self {
            Value::I64(a) => Ok(a),
            other => Err(GraphError::WrongType {
                node: node.into(),
                expected: "int64",
                got: other.dtype_name(),
            }),
        }
    }

    /// The elements as i64 (shape operands): f32 values must be integral.
    pub fn to_i64_vec(&self, node: &str) -> Result<Vec<i64>, GraphError> {
        match self {
            Value::I64(a) => Ok(a.iter().copied().collect()),
            Value::F32(a) => a
                .iter()
                .map(|&v| {
                    if v.fract() == 0.0 && v.is_finite() {
                        Ok(v as i64)
                    } else {
                        Err(GraphError::Invalid {
                            node: node.into(),
                            detail: format!("expected integers, found {v}"),
                        })
                    }
                })
                .collect(),
        }
    }
}
