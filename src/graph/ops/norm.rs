//! Batch normalization in inference mode (running statistics), over dim 1.

use crate::graph::{BatchNormParams, GraphError};
use ndarray::ArrayD;
use rayon::prelude::*;

/// Elements below which a parallel task is not worth its spawn.
const PARALLEL_ELEMENTS: usize = 1 << 14;

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
    let coefficients: Vec<(f32, f32)> = (0..c)
        .map(|ch| {
            let invstd = 1.0 / (p.running_var[ch] + p.eps).sqrt();
            let alpha = p.weight[ch] * invstd;
            (alpha, p.bias[ch] - p.running_mean[ch] * alpha)
        })
        .collect();
    let mut y = x.as_standard_layout().into_owned();
    let plane: usize = x.shape()[2..].iter().product();
    if plane == 0 {
        return Ok(y);
    }
    // Planes (one batch item's channel) in parallel; each element's value is the same.
    let values = y.as_slice_mut().expect("standard layout");
    let planes = values.par_chunks_mut(plane).enumerate();
    planes
        .with_min_len(PARALLEL_ELEMENTS.div_ceil(plane))
        .for_each(|(i, plane)| {
            let (alpha, beta) = coefficients[i % c];
            plane.iter_mut().for_each(|v| *v = *v * alpha + beta);
        });
    Ok(y)
}
