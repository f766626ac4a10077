//! ONNX QuantizeLinear / DequantizeLinear on a float graph: what a QDQ model (qlab's own
//! `export model`, or ONNX Runtime's quantizer) computes, so such a file imports and runs as the
//! float simulation ONNX defines. The integers travel as i64 values; the range they saturate to
//! is the zero point's type, fixed at import ([`Op::QuantizeLinear`]'s `qmin` / `qmax`).
//!
//! The formulas are the operator definitions', not PyTorch's: ONNX divides by the scale
//! (PyTorch multiplies by its reciprocal) and rounds half to even.

use super::{Node, Value, arg, norm_axis};
use crate::graph::GraphError;
use ndarray::{ArrayD, Axis};

/// Scale and zero point per slice along the quantization axis (one entry when per tensor).
struct Params {
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    /// The axis the entries run along, when there is more than one.
    axis: Option<usize>,
}

fn params(
    node: &Node,
    args: &[Option<&Value>],
    axis: i64,
    x_shape: &[usize],
) -> Result<Params, GraphError> {
    let bad = |detail: String| GraphError::Invalid {
        node: node.name.clone(),
        detail,
    };
    let scale = arg(node, args, 1)?.f32(&node.name)?;
    let scales: Vec<f32> = scale.iter().copied().collect();
    if scales.is_empty() || scale.ndim() > 1 {
        return Err(bad(format!(
            "the scale must be a scalar or a 1-d tensor, found shape {:?}",
            scale.shape()
        )));
    }
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(bad(format!("scale {s} is not a positive finite number")));
    }
    let zero_points: Vec<i64> = match args.get(2).copied().flatten() {
        Some(Value::I64(z)) => z.iter().copied().collect(),
        Some(Value::F32(z)) => z.iter().map(|&v| v as i64).collect(),
        None => vec![0; scales.len()],
    };
    if zero_points.len() != scales.len() {
        return Err(bad(format!(
            "{} zero points for {} scales",
            zero_points.len(),
            scales.len()
        )));
    }
    let axis = if scale.ndim() == 1 && !(scales.len() == 1 && x_shape.len() < 2) {
        let a = norm_axis(&node.name, axis, x_shape.len())?;
        if x_shape[a] != scales.len() {
            return Err(bad(format!(
                "{} scales along axis {a} of a tensor of shape {x_shape:?}",
                scales.len()
            )));
        }
        Some(a)
    } else {
        None
    };
    Ok(Params {
        scales,
        zero_points,
        axis,
    })
}

/// Applies `f(value, scale, zero_point)` to every element, per tensor or per slice.
fn map_params<T: Copy, U>(x: &ArrayD<T>, p: &Params, f: impl Fn(T, f32, i64) -> U) -> ArrayD<U> {
    match p.axis {
        None => x.mapv(|v| f(v, p.scales[0], p.zero_points[0])),
        Some(axis) => {
            let mut out = x.mapv(|v| f(v, p.scales[0], p.zero_points[0]));
            for (c, (mut o, i)) in out
                .axis_iter_mut(Axis(axis))
                .zip(x.axis_iter(Axis(axis)))
                .enumerate()
            {
                let (s, z) = (p.scales[c], p.zero_points[c]);
                o.zip_mut_with(&i, |o, &v| *o = f(v, s, z));
            }
            out
        }
    }
}

/// `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`.
pub fn quantize_linear(
    node: &Node,
    args: &[Option<&Value>],
    axis: i64,
    qmin: i64,
    qmax: i64,
) -> Result<Value, GraphError> {
    let x = arg(node, args, 0)?.f32(&node.name)?;
    let p = params(node, args, axis, x.shape())?;
    if let Some(z) = p.zero_points.iter().find(|z| !(qmin..=qmax).contains(*z)) {
        return Err(GraphError::Invalid {
            node: node.name.clone(),
            detail: format!("zero point {z} is outside the integer range [{qmin}, {qmax}]"),
        });
    }
    Ok(Value::I64(map_params(x, &p, |v, s, z| {
        // `as` saturates out-of-range values and maps NaN to 0.
        (((v / s).round_ties_even()) as i64)
            .saturating_add(z)
            .clamp(qmin, qmax)
    })))
}

/// `(x - zero_point) · scale`.
pub fn dequantize_linear(
    node: &Node,
    args: &[Option<&Value>],
    axis: i64,
) -> Result<Value, GraphError> {
    let x = arg(node, args, 0)?;
    let p = params(node, args, axis, x.shape())?;
    Ok(Value::F32(match x {
        Value::I64(q) => map_params(q, &p, |v, s, z| v.saturating_sub(z) as f32 * s),
        Value::F32(q) => map_params(q, &p, |v, s, z| (v - z as f32) * s),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Op, test_node};
    use ndarray::arr1;

    fn run(op: Op, args: &[Option<&Value>]) -> Result<Value, GraphError> {
        let node = test_node("q", op, &["x", "s", "z"], &["y"]);
        super::super::eval(&node, args).map(|mut v| v.remove(0))
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let x = Value::F32(arr1(&[0.25f32, 0.75, -1.0, 1000.0, -100.0]).into_dyn());
        let s = Value::F32(arr1(&[0.5f32]).into_dyn());
        let z = Value::I64(arr1(&[3i64]).into_dyn());
        let op = Op::QuantizeLinear {
            axis: 1,
            qmin: 0,
            qmax: 255,
        };
        let y = run(op, &[Some(&x), Some(&s), Some(&z)]).unwrap();
        // 0.5 → 0 (even), 1.5 → 2 (even), -2, then saturation at both ends.
        assert_eq!(y.i64("y").unwrap().as_slice().unwrap(), &[3, 5, 1, 255, 0]);
        let back = run(
            Op::DequantizeLinear { axis: 1 },
            &[Some(&y), Some(&s), Some(&z)],
        )
        .unwrap();
        assert_eq!(
            back.f32("y").unwrap().as_slice().unwrap(),
            &[0.0, 1.0, -1.0, 126.0, -1.5]
        );
    }

    #[test]
    fn per_axis_scales_apply_per_slice_and_mismatches_are_refused() {
        let w = Value::I64(ndarray::arr2(&[[1i64, -2], [3, 4]]).into_dyn());
        let s = Value::F32(arr1(&[0.5f32, 0.25]).into_dyn());
        let y = run(
            Op::DequantizeLinear { axis: 0 },
            &[Some(&w), Some(&s), None],
        )
        .unwrap();
        assert_eq!(
            y.f32("y").unwrap().as_slice().unwrap(),
            &[0.5, -1.0, 0.75, 1.0]
        );
        let three = Value::F32(arr1(&[0.5f32, 0.25, 1.0]).into_dyn());
        let e = run(
            Op::DequantizeLinear { axis: 0 },
            &[Some(&w), Some(&three), None],
        );
        assert!(e.unwrap_err().to_string().contains("3 scales along axis 0"));
        let zero = Value::F32(arr1(&[0.0f32]).into_dyn());
        let e = run(
            Op::DequantizeLinear { axis: 0 },
            &[Some(&w), Some(&zero), None],
        );
        assert!(e.unwrap_err().to_string().contains("not a positive finite"));
    }
}
