//! Float forward kernels, one file per op family, and the dispatch from a node to its kernel.

mod activation;
pub(crate) mod conv;
mod conv_order;
mod elementwise;
pub(crate) mod gemm;
mod linear;
mod lstm;
mod math;
pub(crate) use math::is_torch_hardsigmoid;
mod norm;
mod pool;
mod qdq;
mod resize;
pub(crate) mod shape;
mod torch_order;

pub(crate) use activation::pointwise_in_place;
pub use conv::{conv_forward, conv_output_len};
pub use linear::linear_forward;
pub use lstm::lstm_forward;
pub use norm::batch_norm_eval;
pub use pool::max_pool;
pub(crate) use pool::visit_windows;

use super::{GraphError, Node, Op, Value};
use ndarray::ArrayD;

/// Runs one node on its operands (`None` for an absent optional operand).
pub fn eval(node: &Node, args: &[Option<&Value>]) -> Result<Vec<Value>, GraphError> {
    let name = node.name.as_str();
    let one = |v: ArrayD<f32>| Ok(vec![Value::F32(v)]);
    match &node.op {
        Op::Conv(p) => one(conv_forward(name, f32_arg(node, args, 0)?, p)?),
        Op::Linear(p) => one(linear_forward(name, f32_arg(node, args, 0)?, p)?),
        Op::BatchNorm(p) => one(batch_norm_eval(name, f32_arg(node, args, 0)?, p)?),
        Op::Lstm(p) => lstm::eval(node, args, p),
        Op::MatMul => one(linear::matmul(
            name,
            f32_arg(node, args, 0)?,
            f32_arg(node, args, 1)?,
        )?),
        Op::Relu | Op::Clip { .. } | Op::Sigmoid | Op::Tanh => {
            one(activation::pointwise(&node.op, f32_arg(node, args, 0)?))
        }
        Op::Softmax { axis } => one(activation::softmax(name, f32_arg(node, args, 0)?, *axis)?),
        Op::MaxPool(p) => one(pool::max_pool(name, f32_arg(node, args, 0)?, p)?),
        Op::AvgPool(p) => one(pool::avg_pool(name, f32_arg(node, args, 0)?, p)?),
        Op::GlobalAvgPool => one(pool::global_avg_pool(name, f32_arg(node, args, 0)?)?),
        Op::Add | Op::Sub | Op::Mul | Op::Div => Ok(vec![elementwise::binary(
            node,
            arg(node, args, 0)?,
            arg(node, args, 1)?,
        )?]),
        Op::Concat { axis } => Ok(vec![shape::concat(node, args, *axis)?]),
        Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Gather { .. }
        | Op::Slice
        | Op::Split { .. } => shape::move_value(node, args),
        Op::Shape => {
            let dims: Vec<i64> = arg(node, args, 0)?
                .shape()
                .iter()
                .map(|&d| d as i64)
                .collect();
            Ok(vec![Value::I64(
                ArrayD::from_shape_vec(vec![dims.len()], dims).expect("1-d shape"),
            )])
        }
        Op::ConstantOfShape { value } => Ok(vec![shape::constant_of_shape(
            node,
            arg(node, args, 0)?,
            value,
        )?]),
        Op::Identity | Op::QuantStub | Op::DeQuantStub => Ok(vec![arg(node, args, 0)?.clone()]),
        Op::LayerNorm(p) => one(math::layer_norm(name, f32_arg(node, args, 0)?, p)?),
        Op::Unary(u) => Ok(vec![math::unary(name, *u, arg(node, args, 0)?)?]),
        Op::Binary(b) => Ok(vec![math::binary(
            name,
            *b,
            arg(node, args, 0)?,
            arg(node, args, 1)?,
        )?]),
        Op::Where => Ok(vec![math::where_(
            name,
            arg(node, args, 0)?,
            arg(node, args, 1)?,
            arg(node, args, 2)?,
        )?]),
        Op::Cast { to } => Ok(vec![math::cast(name, *to, arg(node, args, 0)?)?]),
        Op::Reduce(r) => {
            let axes = match (&r.axes, args.get(1).copied().flatten()) {
                (Some(a), _) => Some(a.clone()),
                (None, Some(v)) => Some(v.to_i64_vec(name)?),
                (None, None) => None,
            };
            Ok(vec![math::reduce(
                name,
                r.kind,
                arg(node, args, 0)?,
                axes.as_deref(),
                r.keepdims,
                r.noop_with_empty_axes,
            )?])
        }
        Op::Expand => Ok(vec![shape::expand(
            node,
            arg(node, args, 0)?,
            arg(node, args, 1)?,
        )?]),
        Op::Range => Ok(vec![shape::range(node, args)?]),
        Op::Tile => Ok(vec![shape::tile(
            node,
            arg(node, args, 0)?,
            arg(node, args, 1)?,
        )?]),
        Op::Resize {
            mode,
            align_corners,
        } => one(resize_node(node, args, *mode, *align_corners)?),
        Op::QuantizeLinear { axis, qmin, qmax } => {
            Ok(vec![qdq::quantize_linear(node, args, *axis, *qmin, *qmax)?])
        }
        Op::DequantizeLinear { axis } => Ok(vec![qdq::dequantize_linear(node, args, *axis)?]),
    }
}

/// Operand `i`, required.
pub(crate) fn arg<'a>(
    node: &Node,
    args: &[Option<&'a Value>],
    i: usize,
) -> Result<&'a Value, GraphError> {
    args.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| GraphError::Invalid {
            node: node.name.clone(),
            detail: format!("operand {i} is missing"),
        })
}

/// Operand `i`, required and f32.
pub(crate) fn f32_arg<'a>(
    node: &Node,
    args: &[Option<&'a Value>],
    i: usize,
) -> Result<&'a ArrayD<f32>, GraphError> {
    arg(node, args, i)?.f32(&node.name)
}

/// Resolves a possibly negative axis against a rank.
pub(crate) fn norm_axis(node: &str, axis: i64, rank: usize) -> Result<usize, GraphError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if (0..rank as i64).contains(&a) {
        Ok(a as usize)
    } else {
        Err(GraphError::Invalid {
            node: node.into(),
            detail: format!("axis {axis} is out of range for rank {rank}"),
        })
    }
}

/// Resize with its target taken from the scales (input 1) or sizes (input 2) operand.
fn resize_node(
    node: &Node,
    args: &[Option<&Value>],
    mode: crate::graph::ResizeMode,
    align_corners: bool,
) -> Result<ArrayD<f32>, GraphError> {
    let x = f32_arg(node, args, 0)?;
    let bad = |detail: String| GraphError::Invalid {
        node: node.name.clone(),
        detail,
    };
    if x.ndim() != 4 {
        return Err(bad(format!(
            "Resize supports NCHW inputs, got {:?}",
            x.shape()
        )));
    }
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let (out, factors) = match (
        args.get(2).copied().flatten(),
        args.get(1).copied().flatten(),
    ) {
        (Some(sizes), _) => {
            let s = sizes.to_i64_vec(&node.name)?;
            let [.., oh, ow] = s[..] else {
                return Err(bad(format!("sizes {s:?} need 4 entries")));
            };
            let size = |v: i64| {
                usize::try_from(v)
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or_else(|| bad(format!("sizes {s:?}: each must be positive")))
            };
            ([size(oh)?, size(ow)?], None)
        }
        (None, Some(Value::F32(scales))) => {
            let s: Vec<f32> = scales.iter().copied().collect();
            let [.., fh, fw] = s[..] else {
                return Err(bad(format!("scales {s:?} need 4 entries")));
            };
            // In f64 so a huge factor saturates instead of wrapping; the budget bounds it.
            let scaled = |len: usize, f: f32| -> Result<usize, GraphError> {
                let n = (len as f64 * f as f64).floor();
                if !(f.is_finite() && f > 0.0 && n >= 1.0) {
                    return Err(bad(format!(
                        "scales {s:?}: each must be finite, positive and give a non-empty output"
                    )));
                }
                Ok(if n >= usize::MAX as f64 {
                    usize::MAX
                } else {
                    n as usize
                })
            };
            ([scaled(h, fh)?, scaled(w, fw)?], Some([fh, fw]))
        }
        _ => return Err(bad("Resize needs scales or sizes".into())),
    };
    let shape = [x.shape()[0], x.shape()[1], out[0], out[1]];
    super::budget::check(&node.name, &shape, 4)?;
    resize::resize(&node.name, x, out, factors, mode, align_corners)
}
