//! Pointwise activations and softmax.

use super::norm_axis;
use crate::graph::GraphError;
use ndarray::{ArrayD, Axis};

/// Clamp to `[min, max]` (ReLU6, Hardtanh, Clip); NaN stays NaN as in PyTorch.
pub fn clip(x: &ArrayD<f32>, min: f32, max: f32) -> ArrayD<f32> {
    x.mapv(|v| if v.is_nan() { v } else { v.clamp(min, max) })
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
