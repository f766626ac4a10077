//! Backward of the pointwise ops: activations, softmax, and Add / Sub / Mul / Div with numpy
//! broadcasting (gradients are summed back over the broadcast dims).

use crate::graph::ops::norm_axis;
use crate::graph::{GraphError, Op};
use ndarray::{ArrayD, Axis, IxDyn, Zip};

/// The numpy broadcast of two shapes, or `None`.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= n {
            s[i + s.len() - n]
        } else {
            1
        }
    };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Sums `grad` (of a broadcast shape) down to `shape`: over the leading extra dims and over
/// the dims where `shape` has 1.
pub(crate) fn reduce_to(grad: ArrayD<f32>, shape: &[usize]) -> ArrayD<f32> {
    let mut g = grad;
    while g.ndim() > shape.len() {
        g = g.sum_axis(Axis(0));
    }
    for (d, &s) in shape.iter().enumerate() {
        if s == 1 && g.shape()[d] != 1 {
            g = g.sum_axis(Axis(d)).insert_axis(Axis(d));
        }
    }
    g
}

/// Gradients of `a ∘ b` for ∘ in Add / Sub / Mul / Div.
pub(crate) fn binary_backward(
    node: &str,
    op: &Op,
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    dy: &ArrayD<f32>,
) -> Result<(ArrayD<f32>, ArrayD<f32>), GraphError> {
    let shape = broadcast_shape(a.shape(), b.shape())
        .filter(|s| s.as_slice() == dy.shape())
        .ok_or_else(|| GraphError::Shape {
            node: node.into(),
            detail: format!(
                "gradient {:?} does not match operands {:?} and {:?}",
                dy.shape(),
                a.shape(),
                b.shape()
            ),
        })?;
    let av = a.broadcast(IxDyn(&shape)).expect("broadcast checked");
    let bv = b.broadcast(IxDyn(&shape)).expect("broadcast checked");
    let (ga, gb) = match op {
        Op::Add => (dy.clone(), dy.clone()),
        Op::Sub => (dy.clone(), dy.mapv(|g| -g)),
        Op::Mul => (
            Zip::from(dy).and(&bv).map_collect(|&g, &q| g * q),
            Zip::from(dy).and(&av).map_collect(|&g, &p| g * p),
        ),
        _ => (
            Zip::from(dy).and(&bv).map_collect(|&g, &q| g / q),
            Zip::from(dy)
                .and(&av)
                .and(&bv)
                .map_collect(|&g, &p, &q| -g * p / (q * q)),
        ),
    };
    Ok((reduce_to(ga, a.shape()), reduce_to(gb, b.shape())))
}

/// Gradient of a unary activation from its input `x`, output `y` and output gradient `dy`.
/// Written as PyTorch's kernels write them: ReLU is `threshold_backward` (0 where x <= 0);
/// Clip is `hardtanh_backward` (ReLU6, Hardtanh: 0 where x <= min or x >= max, so the bounds
/// themselves get no gradient); sigmoid `g·(1-y)·y`; tanh `g·(1-y²)`. NaN inputs pass the
/// gradient, as there.
pub(crate) fn activation_backward(
    op: &Op,
    x: &ArrayD<f32>,
    y: &ArrayD<f32>,
    dy: &ArrayD<f32>,
) -> ArrayD<f32> {
    match op {
        Op::Relu => Zip::from(dy)
            .and(x)
            .map_collect(|&g, &v| if v <= 0.0 { 0.0 } else { g }),
        Op::Clip { min, max } => Zip::from(dy)
            .and(x)
            .map_collect(|&g, &v| if v <= *min || v >= *max { 0.0 } else { g }),
        Op::Sigmoid => Zip::from(dy).and(y).map_collect(|&g, &s| g * (1.0 - s) * s),
        _ => Zip::from(dy).and(y).map_collect(|&g, &t| g * (1.0 - t * t)),
    }
}

/// Softmax backward along `axis`: `dx = y · (dy - Σ(dy·y))`.
pub(crate) fn softmax_backward(
    node: &str,
    y: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    axis: i64,
) -> Result<ArrayD<f32>, GraphError> {
    let ax = Axis(norm_axis(node, axis, y.ndim())?);
    let mut dx = dy.clone();
    for (mut d, s) in dx.lanes_mut(ax).into_iter().zip(y.lanes(ax)) {
        let dot: f32 = d.iter().zip(s.iter()).map(|(g, p)| g * p).sum();
        Zip::from(&mut d)
            .and(&s)
            .for_each(|g, &p| *g = p * (*g - dot));
    }
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_gradients_sum_back_to_the_operand_shape() {
        assert_eq!(broadcast_shape(&[2, 3, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shape(&[2, 3], &[4]), None);
        let g =
            ArrayD::from_shape_vec(IxDyn(&[2, 3, 2]), (0..12).map(|v| v as f32).collect()).unwrap();
        let r = reduce_to(g, &[3, 1]);
        // Row j sums elements (i, j, k) over i and k: j=0 → 0+1+6+7.
        assert_eq!(r.shape(), &[3, 1]);
        assert_eq!(r.as_slice().unwrap(), &[14.0, 22.0, 30.0]);
    }
}
