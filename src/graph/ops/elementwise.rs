//! Binary elementwise ops with numpy broadcasting, on f32 or i64 operands.

use crate::graph::{GraphError, Node, Op, Value};
use ndarray::{ArrayD, IxDyn};

/// The broadcast shape of two shapes, or an error naming the node.
fn broadcast_shape(node: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>, GraphError> {
    crate::tensor::broadcast_shape(a, b).ok_or_else(|| GraphError::Shape {
        node: node.into(),
        detail: format!("cannot broadcast {a:?} with {b:?}"),
    })
}

fn apply<T: Copy + 'static>(
    node: &str,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    f: impl Fn(T, T) -> T,
) -> Result<ArrayD<T>, GraphError> {
    let shape = broadcast_shape(node, a.shape(), b.shape())?;
    crate::graph::budget::check(node, &shape, std::mem::size_of::<T>())?;
    let bad = |_| GraphError::Shape {
        node: node.into(),
        detail: format!("cannot broadcast {:?} with {:?}", a.shape(), b.shape()),
    };
    let av = a.broadcast(IxDyn(&shape)).ok_or(()).map_err(bad)?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or(()).map_err(bad)?;
    Ok(ndarray::Zip::from(&av)
        .and(&bv)
        .map_collect(|&x, &y| f(x, y)))
}

/// Add / Sub / Mul / Div of two tensors of the same element type.
pub fn binary(node: &Node, a: &Value, b: &Value) -> Result<Value, GraphError> {
    let name = node.name.as_str();
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => {
            let f: fn(f32, f32) -> f32 = match node.op {
                Op::Add => |p, q| p + q,
                Op::Sub => |p, q| p - q,
                Op::Mul => |p, q| p * q,
                _ => |p, q| p / q,
            };
            Ok(Value::F32(apply(name, x, y, f)?))
        }
        (Value::I64(x), Value::I64(y)) => {
            if matches!(node.op, Op::Div) && y.iter().any(|&v| v == 0) {
                return Err(GraphError::Invalid {
                    node: name.into(),
                    detail: "integer division by zero".into(),
                });
            }
            let f: fn(i64, i64) -> i64 = match node.op {
                Op::Add => i64::wrapping_add,
                Op::Sub => i64::wrapping_sub,
                Op::Mul => i64::wrapping_mul,
                _ => i64::wrapping_div,
            };
            Ok(Value::I64(apply(name, x, y, f)?))
        }
        _ => Err(GraphError::WrongType {
            node: name.into(),
            expected: a.dtype_name(),
            got: b.dtype_name(),
        }),
    }
}
