//! Backward of the shape plumbing: reshapes (Flatten, Reshape, Squeeze, Unsqueeze) restore the
//! input shape, Transpose applies the inverse permutation, Concat splits, Gather scatter-adds.

use crate::graph::ops::norm_axis;
use crate::graph::{GraphError, Value};
use ndarray::{ArrayD, Axis, IxDyn, Slice};

fn shape_err(node: &str, detail: String) -> GraphError {
    GraphError::Shape {
        node: node.into(),
        detail,
    }
}

/// The gradient of any pure reshape: `dy` laid out in the input's shape.
pub(crate) fn reshape_back(
    node: &str,
    dy: &ArrayD<f32>,
    shape: &[usize],
) -> Result<ArrayD<f32>, GraphError> {
    dy.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| {
            shape_err(
                node,
                format!("cannot reshape {:?} to {shape:?}", dy.shape()),
            )
        })
}

/// Transpose backward: permute by the inverse of `perm` (empty = reversed dims).
pub(crate) fn transpose_back(dy: &ArrayD<f32>, perm: &[usize]) -> ArrayD<f32> {
    let rank = dy.ndim();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut inverse = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    dy.view()
        .permuted_axes(IxDyn(&inverse))
        .as_standard_layout()
        .into_owned()
}

/// Concat backward: consecutive slices of `dy` along `axis`, one per operand of `shapes`.
pub(crate) fn concat_back(
    node: &str,
    dy: &ArrayD<f32>,
    shapes: &[&[usize]],
    axis: i64,
) -> Result<Vec<ArrayD<f32>>, GraphError> {
    let ax = norm_axis(node, axis, dy.ndim())?;
    let mut start = 0;
    shapes
        .iter()
        .map(|s| {
            let len = s.get(ax).copied().unwrap_or(0);
            let part = dy
                .slice_axis(
                    Axis(ax),
                    Slice::from(start as isize..(start + len) as isize),
                )
                .to_owned();
            start += len;
            Ok(part)
        })
        .collect()
}

/// Gather backward: zeros of the data shape with `dy` scatter-added at the gathered indices.
pub(crate) fn gather_back(
    node: &str,
    data_shape: &[usize],
    indices: &Value,
    dy: &ArrayD<f32>,
    axis: i64,
) -> Result<ArrayD<f32>, GraphError> {
    let ax = norm_axis(node, axis, data_shape.len())?;
    let len = data_shape[ax] as i64;
    let idx = indices.to_i64_vec(node)?;
    let pre: usize = data_shape[..ax].iter().product();
    let post: usize = data_shape[ax + 1..].iter().product();
    let dy3 = reshape_back(node, dy, &[pre, idx.len(), post])?;
    let mut dx = ArrayD::<f32>::zeros(IxDyn(&[pre, data_shape[ax], post]));
    for (j, &i) in idx.iter().enumerate() {
        let i = if i < 0 { i + len } else { i };
        if !(0..len).contains(&i) {
            return Err(shape_err(node, format!("gather index {i} out of range")));
        }
        let mut dst = dx.index_axis_mut(Axis(1), i as usize);
        dst += &dy3.index_axis(Axis(1), j);
    }
    reshape_back(node, &dx, data_shape)
}
