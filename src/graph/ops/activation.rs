//! Pointwise activations and softmax.
//!
//! The pointwise ones run over plain slices in fixed parallel chunks, in the operand's own
//! buffer when the executor hands it over: a batch's activation is tens of MB, and a fresh
//! output buffer costs more page faults and memory traffic than the arithmetic.

use super::norm_axis;
use crate::graph::{GraphError, Op};
use ndarray::{ArrayD, Axis};
use rayon::prelude::*;

/// Elements per parallel work item: large enough to amortise a task, small enough to split a
/// small activation across both cores. Elements are independent, so the split never shows.
const CHUNK: usize = 1 << 15;

/// Applies `op` to every element of `x` in place when it is a pointwise activation (ReLU, Clip,
/// Sigmoid, Tanh); returns false, leaving `x` untouched, for any other op.
pub(crate) fn pointwise_in_place(op: &Op, x: &mut [f32]) -> bool {
    match *op {
        Op::Relu => map_in_place(x, |v| v.max(0.0)),
        // NaN stays NaN as in PyTorch.
        Op::Clip { min, max } => {
            map_in_place(x, |v| if v.is_nan() { v } else { v.clamp(min, max) })
        }
        Op::Sigmoid => map_in_place(x, sigmoid),
        Op::Tanh => map_in_place(x, f32::tanh),
        Op::Unary(u) if u != crate::graph::Unary::Not => map_in_place(x, super::math::unary_f32(u)),
        _ => return false,
    }
    true
}

fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    x.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
}

/// A pointwise activation of `x` into a new array (the operand is still read by others).
pub(crate) fn pointwise(op: &Op, x: &ArrayD<f32>) -> ArrayD<f32> {
    let mut y = x.as_standard_layout().into_owned();
    let done = pointwise_in_place(op, y.as_slice_mut().expect("standard layout"));
    debug_assert!(done, "{op:?} is not pointwise");
    y
}

/// The logistic function.
pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Softmax along `axis`, shifted by the max for stability.
pub fn softmax(node: &str, x: &ArrayD<f32>, axis: i64) -> Result<ArrayD<f32>, GraphError> {
    let ax = Axis(norm_axis(node, axis, x.ndim())?);
    let mut out = x.clone();
    for mut lane in out.lanes_mut(ax) {
        let m = lane.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        lane.mapv_inplace(|v| (v - m).exp());
        let s: f32 = lane.sum();
        lane.mapv_inplace(|v| v / s);
    }
    Ok(out)
}
