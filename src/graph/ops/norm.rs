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
    let x = x.as_standard_layout();
    let src = x.as_slice().expect("standard layout");
    let plane: usize = x.shape()[2..].iter().product();
    // A fresh zeroed buffer is faulted in by the threads that write it, not copied first.
    let mut values = vec![0f32; src.len()];
    if plane > 0 {
        // Planes (one batch item's channel) in parallel; each element's value is the same.
        let planes = values.par_chunks_mut(plane).zip(src.par_chunks(plane));
        let planes = planes
            .enumerate()
            .with_min_len(PARALLEL_ELEMENTS.div_ceil(plane));
        planes.for_each(|(i, (y, x))| {
            let (alpha, beta) = coefficients[i % c];
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * alpha + beta;
            }
        });
    }
    Ok(ArrayD::from_shape_vec(x.raw_dim(), values).expect("same shape"))
}
