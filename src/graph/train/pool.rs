//! Pooling backward: max pooling routes each gradient to its window's first maximum (PyTorch's
//! tie rule; a NaN, the last one, wins as in PyTorch's kernel), average pooling spreads it over the window with the
//! forward's divisor, global average pooling spreads it evenly.

use crate::graph::ops::visit_windows;
use crate::graph::{GraphError, PoolParams};
use ndarray::{ArrayD, IxDyn};

/// Gradient of max (`max == true`) or average pooling with respect to the input `x`.
pub(crate) fn pool_backward(
    node: &str,
    x: &ArrayD<f32>,
    p: &PoolParams,
    max: bool,
    dy: &ArrayD<f32>,
) -> Result<ArrayD<f32>, GraphError> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard");
    let dy = dy.as_standard_layout();
    let dys = dy.as_slice().expect("standard");
    let vol: usize = x.shape().iter().skip(2).product();
    let mut dx = vec![0.0f32; xs.len()];
    let mut k = 0;
    let mut overflow = false;
    let shape = visit_windows(node, x.shape(), p, |plane, idx, padded| {
        let Some(&g) = dys.get(k) else {
            overflow = true;
            return;
        };
        k += 1;
        let (xp, dp) = (&xs[plane * vol..][..vol], &mut dx[plane * vol..][..vol]);
        if max {
            let best = idx
                .iter()
                .copied()
                .fold(None, |b: Option<usize>, i| match b {
                    Some(j) if !(xp[i] > xp[j] || xp[i].is_nan()) => Some(j),
                    _ => Some(i),
                });
            if let Some(i) = best {
                dp[i] += g;
            }
        } else {
            let div = if p.count_include_pad {
                padded
            } else {
                idx.len()
            };
            if div > 0 {
                idx.iter().for_each(|&i| dp[i] += g / div as f32);
            }
        }
    })?;
    if overflow || shape.as_slice() != dy.shape() {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!(
                "pool gradient {:?} does not match the output {shape:?}",
                dy.shape()
            ),
        });
    }
    Ok(ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("dx shape"))
}

/// Gradient of global average pooling: each plane receives `dy / spatial` everywhere.
pub(crate) fn global_avg_pool_backward(x_shape: &[usize], dy: &ArrayD<f32>) -> ArrayD<f32> {
    let spatial: usize = x_shape[2..].iter().product();
    let planes: usize = x_shape[..2].iter().product();
    let dy = dy.as_standard_layout();
    let g = dy.as_slice().expect("standard");
    let dx: Vec<f32> = (0..planes)
        .flat_map(|i| std::iter::repeat_n(g[i] / spatial as f32, spatial))
        .collect();
    ArrayD::from_shape_vec(IxDyn(x_shape), dx).expect("dx shape")
}
