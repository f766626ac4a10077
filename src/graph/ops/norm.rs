//! Batch normalization in inference mode (running statistics), over dim 1.

use crate::graph::{BatchNormParams, GraphError};
use ndarray::{ArrayD, Axis};

/// `y = x·α + β` per channel with `α = γ / sqrt(var + eps)` and `β = b - mean·α`, the form
/// PyTorch's CPU inference kernel evaluates.
pub fn batch_norm_eval(
    node: &str,
    x: &ArrayD<f32>,
    p: &BatchNormParams,
) -> Result<ArrayD<f32>, GraphError> {
    let c = p.weight.len();
    if x.ndim() < 2 || x.shape()[1] != c {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!("input {:?} does not have {c} channels in dim 1", x.shape()),
        });
    }
    let mut y = x.to_owned();
    for (ch, mut plane) in y.axis_iter_mut(Axis(1)).enumerate() {
        let invstd = 1.0 / (p.running_var[ch] + p.eps).sqrt();
        let alpha = p.weight[ch] * invstd;
        let beta = p.bias[ch] - p.running_mean[ch] * alpha;
        plane.mapv_inplace(|v| v * alpha + beta);
    }
    Ok(y)
}
