//! Backward of the shape plumbing: reshapes (Flatten, Reshape, Squeeze, Unsqueeze) restore the
//! input shape, Transpose applies the inverse permutation, Concat splits, Gather scatter-adds,
//! and Slice scatters back through the element indices its own forward selects.

use crate::graph::ops;
use crate::graph::ops::norm_axis;
use crate::graph::{GraphError, Node, Value};
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

/// Backward of an op that only selects input elements (Slice): the forward run on the flat
/// element indices of operand 0 says where each output element came from, and `dy` is
/// scatter-added there. Reusing the forward keeps its clamping rules in one place.
pub(crate) fn select_back(
    node: &Node,
    args: &[Option<Value>],
    dy: &ArrayD<f32>,
) -> Result<ArrayD<f32>, GraphError> {
    let shape = args
        .first()
        .and_then(Option::as_ref)
        .map(|v| v.shape().to_vec())
        .ok_or_else(|| GraphError::Invalid {
            node: node.name.clone(),
            detail: "operand 0 is missing".into(),
        })?;
    let count: usize = shape.iter().product();
    let positions = Value::I64(
        ArrayD::from_shape_vec(IxDyn(&shape), (0..count as i64).collect())
            .expect("index tensor shape"),
    );
    let refs: Vec<Option<&Value>> = std::iter::once(Some(&positions))
        .chain(args.iter().skip(1).map(Option::as_ref))
        .collect();
    let picked = ops::eval(node, &refs)?;
    let picked = picked
        .first()
        .ok_or_else(|| shape_err(&node.name, "no output".into()))?
        .i64(&node.name)?;
    if picked.shape() != dy.shape() {
        return Err(shape_err(
            &node.name,
            format!(
                "gradient {:?} for an output {:?}",
                dy.shape(),
                picked.shape()
            ),
        ));
    }
    let mut dx = vec![0.0f32; count];
    for (&i, &g) in picked.iter().zip(dy.iter()) {
        dx[i as usize] += g;
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), dx).expect("dx shape"))
}
