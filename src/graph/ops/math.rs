//! The float and integer math that real exports carry besides convolutions: pointwise
//! functions (Hardswish, GELU, Erf, Sqrt, ...), comparisons and integer arithmetic of shape
//! subgraphs (Mod, Equal, Where), casts, and reductions (ReduceMean of squeeze-excitation and
//! mean pooling).
//!
//! Where PyTorch has the module (Hardswish, Hardsigmoid, GELU), the formula is PyTorch's, so
//! float outputs follow the network the user exported rather than ONNX's re-statement of it.

use super::norm_axis;
use crate::graph::{Binary, CastTo, GraphError, Reduction, Unary, Value};
use ndarray::{ArrayD, IxDyn, Zip};

fn invalid(node: &str, detail: String) -> GraphError {
    GraphError::Invalid {
        node: node.into(),
        detail,
    }
}

/// PyTorch's `relu6(x + 3)`, the core of Hardswish and Hardsigmoid.
fn relu6_shifted(x: f32) -> f32 {
    (x + 3.0).clamp(0.0, 6.0)
}

/// Whether a HardSigmoid's parameters are PyTorch's (exporters write 1/6 as an f32).
pub(crate) fn is_torch_hardsigmoid(alpha: f32, beta: f32) -> bool {
    alpha == 1.0 / 6.0 && beta == 0.5
}

/// One element of a float pointwise function.
pub(crate) fn unary_f32(u: Unary) -> impl Fn(f32) -> f32 + Sync + Copy {
    move |x: f32| match u {
        // NaN passes through clamp only if we let it: PyTorch propagates NaN here.
        // In PyTorch's order: `x · relu6(x + 3) / 6` multiplies before dividing.
        Unary::HardSwish => x * relu6_shifted(x) / 6.0,
        Unary::HardSigmoid { alpha, beta } if is_torch_hardsigmoid(alpha, beta) => {
            relu6_shifted(x) / 6.0
        }
        Unary::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
        Unary::Gelu { tanh: false } => {
            0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
        }
        Unary::Gelu { tanh: true } => {
            let k = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
        Unary::Erf => libm::erff(x),
        Unary::Sqrt => x.sqrt(),
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Neg => -x,
        Unary::Abs => x.abs(),
        Unary::Reciprocal => 1.0 / x,
        Unary::Floor => x.floor(),
        Unary::Ceil => x.ceil(),
        Unary::Not => (x == 0.0) as u8 as f32,
    }
}

/// A pointwise function of either element type.
pub fn unary(node: &str, u: Unary, v: &Value) -> Result<Value, GraphError> {
    match v {
        Value::F32(a) => Ok(Value::F32(a.mapv(unary_f32(u)))),
        Value::I64(a) => match u {
            Unary::Neg => Ok(Value::I64(a.mapv(i64::wrapping_neg))),
            Unary::Abs => Ok(Value::I64(a.mapv(i64::wrapping_abs))),
            Unary::Not => Ok(Value::I64(a.mapv(|x| (x == 0) as i64))),
            Unary::Floor | Unary::Ceil => Ok(v.clone()),
            // Integer Sqrt etc. appear in shape arithmetic only after a Cast to float.
            _ => Err(GraphError::WrongType {
                node: node.into(),
                expected: "float32",
                got: "int64",
            }),
        },
    }
}

fn broadcast_pair<'a, A, B>(
    node: &str,
    a: &'a ArrayD<A>,
    b: &'a ArrayD<B>,
) -> Result<(ndarray::ArrayViewD<'a, A>, ndarray::ArrayViewD<'a, B>), GraphError> {
    let shape =
        crate::tensor::broadcast_shape(a.shape(), b.shape()).ok_or_else(|| GraphError::Shape {
            node: node.into(),
            detail: format!("cannot broadcast {:?} with {:?}", a.shape(), b.shape()),
        })?;
    // The result is f32 or i64: budget for the wider.
    crate::graph::budget::check(node, &shape, 8)?;
    let err = || GraphError::Shape {
        node: node.into(),
        detail: format!("cannot broadcast {:?} with {:?}", a.shape(), b.shape()),
    };
    Ok((
        a.broadcast(IxDyn(&shape)).ok_or_else(err)?,
        b.broadcast(IxDyn(&shape)).ok_or_else(err)?,
    ))
}

/// Python's `%` (result takes the divisor's sign) or C's `fmod` (the dividend's).
fn modulo_i64(x: i64, y: i64, fmod: bool) -> i64 {
    let r = x.wrapping_rem(y);
    if !fmod && r != 0 && ((r < 0) != (y < 0)) {
        r + y
    } else {
        r
    }
}

fn modulo_f32(x: f32, y: f32, fmod: bool) -> f32 {
    let r = x % y;
    if !fmod && r != 0.0 && ((r < 0.0) != (y < 0.0)) {
        r + y
    } else {
        r
    }
}

/// A binary op beyond the four arithmetic ones. Mixed f32 / i64 operands are an error, as
/// in ONNX (exporters Cast first).
pub fn binary(node: &str, op: Binary, a: &Value, b: &Value) -> Result<Value, GraphError> {
    let cmp = |ord: std::cmp::Ordering| -> Option<bool> {
        match op {
            Binary::Equal => Some(ord.is_eq()),
            Binary::Less => Some(ord.is_lt()),
            Binary::Greater => Some(ord.is_gt()),
            _ => None,
        }
    };
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => {
            let (x, y) = broadcast_pair(node, x, y)?;
            if matches!(op, Binary::Equal | Binary::Less | Binary::Greater) {
                return Ok(Value::I64(Zip::from(&x).and(&y).map_collect(|&p, &q| {
                    p.partial_cmp(&q).and_then(cmp).unwrap_or(false) as i64
                })));
            }
            let f = |p: f32, q: f32| match op {
                Binary::Pow => p.powf(q),
                Binary::Mod { fmod } => modulo_f32(p, q, fmod),
                Binary::Max => {
                    if p.is_nan() || q.is_nan() {
                        f32::NAN
                    } else {
                        p.max(q)
                    }
                }
                Binary::Min => {
                    if p.is_nan() || q.is_nan() {
                        f32::NAN
                    } else {
                        p.min(q)
                    }
                }
                Binary::And => ((p != 0.0) && (q != 0.0)) as u8 as f32,
                Binary::Or => ((p != 0.0) || (q != 0.0)) as u8 as f32,
                Binary::Equal | Binary::Less | Binary::Greater => unreachable!("handled above"),
            };
            Ok(Value::F32(
                Zip::from(&x).and(&y).map_collect(|&p, &q| f(p, q)),
            ))
        }
        (Value::I64(x), Value::I64(y)) => {
            let (x, y) = broadcast_pair(node, x, y)?;
            if matches!(op, Binary::Mod { .. }) && y.iter().any(|&v| v == 0) {
                return Err(invalid(node, "integer modulo by zero".into()));
            }
            if matches!(op, Binary::Pow) && y.iter().any(|&v| v < 0) {
                return Err(invalid(
                    node,
                    "integer power with a negative exponent".into(),
                ));
            }
            Ok(Value::I64(Zip::from(&x).and(&y).map_collect(
                |&p, &q| match op {
                    Binary::Pow => p.wrapping_pow(q.min(u32::MAX as i64) as u32),
                    Binary::Mod { fmod } => modulo_i64(p, q, fmod),
                    Binary::Max => p.max(q),
                    Binary::Min => p.min(q),
                    Binary::And => ((p != 0) && (q != 0)) as i64,
                    Binary::Or => ((p != 0) || (q != 0)) as i64,
                    Binary::Equal | Binary::Less | Binary::Greater => {
                        cmp(p.cmp(&q)).unwrap_or(false) as i64
                    }
                },
            )))
        }
        // Pow with an integer exponent on floats is common (x ** 2 in LayerNorm exports).
        (Value::F32(x), Value::I64(y)) if matches!(op, Binary::Pow) => {
            let y = y.mapv(|v| v as f32);
            binary(node, op, &Value::F32(x.clone()), &Value::F32(y))
        }
        _ => Err(GraphError::WrongType {
            node: node.into(),
            expected: a.dtype_name(),
            got: b.dtype_name(),
        }),
    }
}

/// ONNX Where: `cond` (0/1) picks from `a` or `b`, all three broadcast together.
pub fn where_(node: &str, cond: &Value, a: &Value, b: &Value) -> Result<Value, GraphError> {
    let c = cond.i64(node)?;
    let shape = crate::tensor::broadcast_shape(c.shape(), a.shape())
        .and_then(|s| crate::tensor::broadcast_shape(&s, b.shape()))
        .ok_or_else(|| GraphError::Shape {
            node: node.into(),
            detail: format!(
                "cannot broadcast {:?}, {:?} and {:?}",
                c.shape(),
                a.shape(),
                b.shape()
            ),
        })?;
    crate::graph::budget::check(node, &shape, 8)?;
    let s = IxDyn(&shape);
    let bad = || GraphError::Shape {
        node: node.into(),
        detail: format!("cannot broadcast Where operands to {shape:?}"),
    };
    let c = c.broadcast(s.clone()).ok_or_else(bad)?;
    fn pick<T: Copy>(
        c: &ndarray::ArrayViewD<i64>,
        x: &ArrayD<T>,
        y: &ArrayD<T>,
        s: &IxDyn,
    ) -> Option<ArrayD<T>> {
        let (x, y) = (x.broadcast(s.clone())?, y.broadcast(s.clone())?);
        Some(
            Zip::from(c)
                .and(&x)
                .and(&y)
                .map_collect(|&k, &p, &q| if k != 0 { p } else { q }),
        )
    }
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => Ok(Value::F32(pick(&c, x, y, &s).ok_or_else(bad)?)),
        (Value::I64(x), Value::I64(y)) => Ok(Value::I64(pick(&c, x, y, &s).ok_or_else(bad)?)),
        _ => Err(GraphError::WrongType {
            node: node.into(),
            expected: a.dtype_name(),
            got: b.dtype_name(),
        }),
    }
}

/// ONNX Cast into qlab's two element types (float → int truncates toward zero, as C does;
/// a non-finite float has no integer and is an error).
pub fn cast(node: &str, to: CastTo, v: &Value) -> Result<Value, GraphError> {
    Ok(match (to, v) {
        (CastTo::Float, Value::F32(_)) | (CastTo::Int, Value::I64(_)) => v.clone(),
        (CastTo::Float, Value::I64(a)) => Value::F32(a.mapv(|x| x as f32)),
        (CastTo::Int, Value::F32(a)) => {
            if let Some(bad) = a.iter().find(|x| !x.is_finite()) {
                return Err(invalid(node, format!("cannot cast {bad} to an integer")));
            }
            Value::I64(a.mapv(|x| x as i64))
        }
        (CastTo::Bool, Value::F32(a)) => Value::I64(a.mapv(|x| (x != 0.0) as i64)),
        (CastTo::Bool, Value::I64(a)) => Value::I64(a.mapv(|x| (x != 0) as i64)),
    })
}

/// A reduction over `axes` (`None`: every dim, unless `noop` asks for identity).
pub fn reduce(
    node: &str,
    kind: Reduction,
    v: &Value,
    axes: Option<&[i64]>,
    keepdims: bool,
    noop: bool,
) -> Result<Value, GraphError> {
    let rank = v.shape().len();
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&x| norm_axis(node, x, rank))
            .collect::<Result<_, _>>()?,
        _ if noop => return Ok(v.clone()),
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    match v {
        Value::F32(a) => Ok(Value::F32(reduce_f32(a, kind, &axes, keepdims))),
        Value::I64(a) => {
            let f = a.mapv(|x| x as f64);
            let r = reduce_generic(&f, &axes, keepdims, |lane| match kind {
                Reduction::Sum => lane.iter().sum(),
                Reduction::Mean => lane.iter().sum::<f64>() / lane.len().max(1) as f64,
                Reduction::Max => lane.iter().copied().fold(f64::MIN, f64::max),
                Reduction::Min => lane.iter().copied().fold(f64::MAX, f64::min),
            });
            Ok(Value::I64(r.mapv(|x| x as i64)))
        }
    }
}

/// Float reductions. A sum (and a mean: the sum divided by the count in f32, as PyTorch's CPU
/// `mean` computes it) over the trailing dims — the contiguous run, as in a CNN's spatial mean —
/// adds in `torch.sum`'s cascade order, so a calibration observing the result sees PyTorch's
/// bits; over other dims the lane is summed in order (PyTorch's strided order is not modelled).
fn reduce_f32(a: &ArrayD<f32>, kind: Reduction, axes: &[usize], keepdims: bool) -> ArrayD<f32> {
    let rank = a.ndim();
    let trailing = axes.iter().all(|&d| d + axes.len() >= rank);
    let sum = |lane: &[f32]| -> f32 {
        if trailing {
            crate::observer::torch_sum::torch_sum(lane)
        } else {
            lane.iter().sum()
        }
    };
    reduce_generic(a, axes, keepdims, |lane| match kind {
        Reduction::Sum => sum(lane),
        Reduction::Mean => sum(lane) / lane.len().max(1) as f32,
        Reduction::Max => lane.iter().copied().fold(f32::NEG_INFINITY, |m, x| {
            if x.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(x)
            }
        }),
        Reduction::Min => lane.iter().copied().fold(f32::INFINITY, |m, x| {
            if x.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.min(x)
            }
        }),
    })
}

/// Moves the reduced axes last, makes each output element's inputs one contiguous lane, and
/// applies `f` to it.
fn reduce_generic<T: Copy + Default>(
    a: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
    f: impl Fn(&[T]) -> T,
) -> ArrayD<T> {
    let rank = a.ndim();
    let kept: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    let order: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let moved = a.view().permuted_axes(IxDyn(&order));
    let lane: usize = axes.iter().map(|&d| a.shape()[d]).product();
    let outer: usize = kept.iter().map(|&d| a.shape()[d]).product();
    let data = moved.as_standard_layout().into_owned();
    let flat = data.as_slice().expect("standard layout");
    let values: Vec<T> = if lane == 0 {
        vec![f(&[]); outer]
    } else {
        flat.chunks_exact(lane).map(&f).collect()
    };
    let shape: Vec<usize> = if keepdims {
        (0..rank)
            .map(|d| if axes.contains(&d) { 1 } else { a.shape()[d] })
            .collect()
    } else {
        kept.iter().map(|&d| a.shape()[d]).collect()
    };
    ArrayD::from_shape_vec(IxDyn(&shape), values).expect("one value per kept position")
}

/// Layer normalization over the dims from `axis` on, with PyTorch's two-pass statistics
/// (mean, then the biased variance of the centred values) in f32.
pub fn layer_norm(
    node: &str,
    x: &ArrayD<f32>,
    p: &crate::graph::LayerNormParams,
) -> Result<ArrayD<f32>, GraphError> {
    let ax = norm_axis(node, p.axis, x.ndim())?;
    let inner: usize = x.shape()[ax..].iter().product();
    if p.weight.len() != inner || p.bias.as_ref().is_some_and(|b| b.len() != inner) {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!(
                "LayerNorm over {:?} needs {inner} scale values, has {}",
                &x.shape()[ax..],
                p.weight.len()
            ),
        });
    }
    let w: Vec<f32> = p.weight.iter().copied().collect();
    let b: Option<Vec<f32>> = p.bias.as_ref().map(|b| b.iter().copied().collect());
    let mut y = x.as_standard_layout().into_owned();
    if inner == 0 {
        return Ok(y);
    }
    for row in y
        .as_slice_mut()
        .expect("standard layout")
        .chunks_exact_mut(inner)
    {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
        let var = row
            .iter()
            .map(|&v| {
                let d = v as f64 - mean;
                d * d
            })
            .sum::<f64>()
            / inner as f64;
        let rstd = 1.0 / (var + p.eps as f64).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            let n = ((*v as f64 - mean) * rstd) as f32;
            *v = n * w[i] + b.as_ref().map_or(0.0, |b| b[i]);
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::LayerNormParams;

    fn f(v: &[f32]) -> Value {
        Value::F32(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).unwrap())
    }

    fn i(v: &[i64]) -> Value {
        Value::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).unwrap())
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.f32("t").unwrap().iter().copied().collect()
    }

    #[test]
    fn pointwise_functions_follow_pytorch_formulas() {
        let x = f(&[-4.0, -1.5, 0.0, 1.5, 4.0]);
        // hardswish(x) = x·relu6(x+3)/6: -4 → 0, -1.5 → -1.5·1.5/6, 4 → 4.
        assert_eq!(
            floats(&unary("t", Unary::HardSwish, &x).unwrap()),
            [0.0, -0.375, 0.0, 1.125, 4.0]
        );
        let hs = Unary::HardSigmoid {
            alpha: 1.0 / 6.0,
            beta: 0.5,
        };
        assert_eq!(
            floats(&unary("t", hs, &x).unwrap()),
            [0.0, 0.25, 0.5, 0.75, 1.0]
        );
        // GELU(1) = 0.5·(1 + erf(1/√2)) = 0.8413447460685429 (Φ(1)).
        let g = floats(&unary("t", Unary::Gelu { tanh: false }, &f(&[1.0])).unwrap())[0];
        assert!((g - 0.841_344_7).abs() < 1e-6, "{g}");
        let e = floats(&unary("t", Unary::Erf, &f(&[0.5])).unwrap())[0];
        assert!((e - 0.520_499_9).abs() < 1e-6, "{e}"); // erf(0.5)
        assert_eq!(
            unary("t", Unary::Not, &i(&[0, 1, 5])).unwrap(),
            i(&[1, 0, 0])
        );
        assert!(unary("t", Unary::Sqrt, &i(&[4])).is_err());
    }

    #[test]
    fn integer_modulo_takes_the_divisor_sign_unless_fmod() {
        let (a, b) = (i(&[7, -7, 7, -7]), i(&[3, 3, -3, -3]));
        assert_eq!(
            binary("t", Binary::Mod { fmod: false }, &a, &b).unwrap(),
            i(&[1, 2, -2, -1])
        );
        assert_eq!(
            binary("t", Binary::Mod { fmod: true }, &a, &b).unwrap(),
            i(&[1, -1, 1, -1])
        );
        assert!(binary("t", Binary::Mod { fmod: false }, &a, &i(&[0])).is_err());
        assert_eq!(
            binary("t", Binary::Equal, &i(&[1, 2, 3]), &i(&[2])).unwrap(),
            i(&[0, 1, 0])
        );
        assert_eq!(
            floats(&binary("t", Binary::Pow, &f(&[2.0, 3.0]), &i(&[2])).unwrap()),
            [4.0, 9.0]
        );
        assert!(binary("t", Binary::Max, &f(&[1.0]), &i(&[1])).is_err());
    }

    #[test]
    fn where_cast_and_reductions() {
        let w = where_("t", &i(&[1, 0, 1]), &f(&[1.0, 2.0, 3.0]), &f(&[-1.0])).unwrap();
        assert_eq!(floats(&w), [1.0, -1.0, 3.0]);
        assert_eq!(
            cast("t", CastTo::Int, &f(&[2.7, -2.7])).unwrap(),
            i(&[2, -2])
        );
        assert!(cast("t", CastTo::Int, &f(&[f32::NAN])).is_err());
        assert_eq!(cast("t", CastTo::Bool, &i(&[0, 3])).unwrap(), i(&[0, 1]));
        let x = Value::F32(
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
        );
        let m = reduce("t", Reduction::Mean, &x, Some(&[-1]), true, false).unwrap();
        assert_eq!(m.shape(), &[2, 1]);
        assert_eq!(floats(&m), [2.0, 5.0]);
        let s = reduce("t", Reduction::Sum, &x, Some(&[0]), false, false).unwrap();
        assert_eq!(floats(&s), [5.0, 7.0, 9.0]);
        let all = reduce("t", Reduction::Max, &x, None, false, false).unwrap();
        assert_eq!(all.shape(), &[] as &[usize]);
        assert_eq!(floats(&all), [6.0]);
        assert_eq!(
            reduce("t", Reduction::Sum, &x, None, false, true).unwrap(),
            x
        );
    }

    #[test]
    fn layer_norm_by_hand() {
        // Row [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 4]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let p = LayerNormParams {
            weight: ArrayD::from_elem(IxDyn(&[4]), 2.0),
            bias: Some(ArrayD::from_elem(IxDyn(&[4]), 1.0)),
            axis: -1,
            eps: 0.0,
        };
        let y = layer_norm("t", &x, &p).unwrap();
        let s = 1.25f64.sqrt();
        for (got, v) in y.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            let want = ((v - 2.5) / s * 2.0 + 1.0) as f32;
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let wrong = LayerNormParams {
            weight: ArrayD::from_elem(IxDyn(&[3]), 1.0),
            ..p
        };
        assert!(layer_norm("t", &x, &wrong).is_err());
    }
}
