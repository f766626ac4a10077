//! Shape plumbing that exporters emit: Concat, Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
//! Gather, ConstantOfShape and Slice, on f32 or i64 tensors alike.

use super::{arg, norm_axis};
use crate::graph::{GraphError, Node, Op, Value, budget};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

/// Applies a shape-generic transformation to either element type.
macro_rules! both {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            Value::F32($a) => Value::F32($body),
            Value::I64($a) => Value::I64($body),
        }
    };
}

fn shape_err(node: &str, detail: String) -> GraphError {
    GraphError::Shape {
        node: node.into(),
        detail,
    }
}

fn reshaped<T: Clone>(
    node: &str,
    a: &ArrayViewD<T>,
    shape: &[usize],
) -> Result<ArrayD<T>, GraphError> {
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| shape_err(node, format!("cannot reshape {:?} to {shape:?}", a.shape())))
}

/// ONNX Concat along `axis`.
pub fn concat(node: &Node, args: &[Option<&Value>], axis: i64) -> Result<Value, GraphError> {
    let vals: Vec<&Value> = args.iter().flatten().copied().collect();
    let first = vals
        .first()
        .ok_or_else(|| shape_err(&node.name, "Concat of nothing".into()))?;
    let ax = Axis(norm_axis(&node.name, axis, first.shape().len())?);
    // The joined length must exist before ndarray adds it up (a fuzzed model's empty tensors
    // can carry lengths whose sum overflows), and the result must fit the budget.
    let joined = vals
        .iter()
        .try_fold(0usize, |acc, v| acc.checked_add(*v.shape().get(ax.0)?))
        .ok_or_else(|| {
            shape_err(
                &node.name,
                format!(
                    "cannot concatenate shapes {:?} along axis {axis}",
                    vals.iter().map(|v| v.shape()).collect::<Vec<_>>()
                ),
            )
        })?;
    let mut out_shape = first.shape().to_vec();
    out_shape[ax.0] = joined;
    budget::check(&node.name, &out_shape, first.elem_size())?;
    let err = || {
        shape_err(
            &node.name,
            format!(
                "cannot concatenate shapes {:?}",
                vals.iter().map(|v| v.shape()).collect::<Vec<_>>()
            ),
        )
    };
    match first {
        Value::F32(_) => {
            let views = vals
                .iter()
                .map(|v| v.f32(&node.name).map(|a| a.view()))
                .collect::<Result<Vec<_>, _>>()?;
            join(ax.0, &views, &out_shape)
                .map(Value::F32)
                .ok_or_else(err)
        }
        Value::I64(_) => {
            let views = vals
                .iter()
                .map(|v| v.i64(&node.name).map(|a| a.view()))
                .collect::<Result<Vec<_>, _>>()?;
            join(ax.0, &views, &out_shape)
                .map(Value::I64)
                .ok_or_else(err)
        }
    }
}

/// `parts` joined along `axis` into a standard-layout array of `shape` (`None` when a part's
/// other dims differ). Built block by block: for every index before `axis`, each part's
/// contiguous block in turn. (ndarray's `concatenate` puts the joined axis outermost in
/// memory, so every later op would first copy the result back to standard layout.)
fn join<T: Clone>(axis: usize, parts: &[ArrayViewD<'_, T>], shape: &[usize]) -> Option<ArrayD<T>> {
    let fits = |p: &ArrayViewD<'_, T>| {
        p.ndim() == shape.len()
            && p.shape()
                .iter()
                .zip(shape)
                .enumerate()
                .all(|(d, (a, b))| d == axis || a == b)
    };
    if !parts.iter().all(fits) {
        return None;
    }
    let parts: Vec<_> = parts.iter().map(|p| p.as_standard_layout()).collect();
    let outer: usize = shape[..axis].iter().product();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for p in &parts {
            let block: usize = p.shape()[axis..].iter().product();
            let slice = p.as_slice().expect("standard layout");
            data.extend_from_slice(&slice[o * block..][..block]);
        }
    }
    ArrayD::from_shape_vec(IxDyn(shape), data).ok()
}

/// The ops that only move elements (Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Gather,
/// Slice, Split) on a tensor of any element type: the float graph runs them on f32 and i64
/// values, the quantized model on its stored integers. `args` are the node's operands, the
/// data operand 0 being `x` (its slot is not read). `None` for any other op.
pub(crate) fn move_elements<T: Clone>(
    node: &Node,
    x: &ArrayViewD<T>,
    args: &[Option<&Value>],
) -> Option<Result<Vec<ArrayD<T>>, GraphError>> {
    let name = node.name.as_str();
    let one = |r: Result<ArrayD<T>, GraphError>| Some(r.map(|a| vec![a]));
    match &node.op {
        Op::Flatten { axis } => one(flatten(name, x, *axis)),
        Op::Reshape { allowzero } => {
            one(arg(node, args, 1).and_then(|t| reshape(node, x, t, *allowzero)))
        }
        Op::Transpose { perm } => one(transpose(name, x, perm)),
        Op::Squeeze { axes } => one(squeeze(node, x, args, axes.as_deref())),
        Op::Unsqueeze { axes } => one(unsqueeze(node, x, args, axes.as_deref())),
        Op::Gather { axis } => one(arg(node, args, 1).and_then(|i| gather(node, x, i, *axis))),
        Op::Slice => one(slice(node, x, args)),
        Op::Split {
            axis,
            sizes,
            outputs,
        } => Some(split(node, x, args, *axis, sizes.as_deref(), *outputs)),
        _ => None,
    }
}

/// [`move_elements`] on a graph value, whichever its element type.
pub(crate) fn move_value(node: &Node, args: &[Option<&Value>]) -> Result<Vec<Value>, GraphError> {
    let not_moving = || GraphError::Invalid {
        node: node.name.clone(),
        detail: format!("{} does not only move elements", node.op.kind()),
    };
    match arg(node, args, 0)? {
        Value::F32(x) => move_elements(node, &x.view(), args)
            .ok_or_else(not_moving)?
            .map(|o| o.into_iter().map(Value::F32).collect()),
        Value::I64(x) => move_elements(node, &x.view(), args)
            .ok_or_else(not_moving)?
            .map(|o| o.into_iter().map(Value::I64).collect()),
    }
}

/// ONNX Flatten: dims before `axis` become rows, the rest columns.
fn flatten<T: Clone>(node: &str, v: &ArrayViewD<T>, axis: i64) -> Result<ArrayD<T>, GraphError> {
    let shape = v.shape();
    let a = if axis < 0 {
        axis + shape.len() as i64
    } else {
        axis
    };
    if !(0..=shape.len() as i64).contains(&a) {
        return Err(shape_err(
            node,
            format!("flatten axis {axis} out of range for {shape:?}"),
        ));
    }
    let rows: usize = shape[..a as usize].iter().product();
    let cols: usize = shape[a as usize..].iter().product();
    reshaped(node, v, &[rows, cols])
}

/// ONNX Reshape: 0 copies the input dim (unless `allowzero`), one -1 is inferred.
fn reshape<T: Clone>(
    node: &Node,
    v: &ArrayViewD<T>,
    target: &Value,
    allowzero: bool,
) -> Result<ArrayD<T>, GraphError> {
    let name = node.name.as_str();
    let want = target.to_i64_vec(name)?;
    let total: usize = v.shape().iter().product();
    let mut shape = Vec::with_capacity(want.len());
    let mut infer = None;
    for (i, &d) in want.iter().enumerate() {
        match d {
            0 if !allowzero => shape.push(*v.shape().get(i).ok_or_else(|| {
                shape_err(name, format!("reshape 0 at dim {i} has no input dim"))
            })?),
            -1 if infer.is_none() => {
                infer = Some(i);
                shape.push(1);
            }
            d if d >= 0 => shape.push(d as usize),
            _ => return Err(shape_err(name, format!("invalid reshape target {want:?}"))),
        }
    }
    if let Some(i) = infer {
        let known: usize = shape.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(shape_err(
                name,
                format!("cannot infer -1 reshaping {:?} to {want:?}", v.shape()),
            ));
        }
        shape[i] = total / known;
    }
    reshaped(name, v, &shape)
}

/// ONNX Transpose (default: reverse the dims).
fn transpose<T: Clone>(
    node: &str,
    v: &ArrayViewD<T>,
    perm: &[usize],
) -> Result<ArrayD<T>, GraphError> {
    let rank = v.shape().len();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(shape_err(
            node,
            format!("perm {perm:?} is not a permutation of {rank} dims"),
        ));
    }
    Ok(standard_copy(v.view().permuted_axes(IxDyn(&perm))))
}

/// `v` copied into standard layout, run by run: each largest sub-view that is already row-major
/// (a channel split's or a channel shuffle's planes) moves as one slice, only the dims outside
/// it are walked. ndarray's own copy of a dynamic-rank strided view visits every element
/// through its strides, ~2 ns each: most of ShuffleNet's int8 forward at batch 8 went to its
/// channel splits that way.
pub(crate) fn standard_copy<T: Clone>(v: ArrayViewD<T>) -> ArrayD<T> {
    let mut data = Vec::with_capacity(v.len());
    push_runs(v.view(), &mut data);
    ArrayD::from_shape_vec(v.raw_dim(), data).expect("one element per index")
}

fn push_runs<T: Clone>(v: ArrayViewD<T>, out: &mut Vec<T>) {
    if let Some(run) = v.as_slice() {
        out.extend_from_slice(run);
    } else if v.ndim() <= 1 {
        out.extend(v.iter().cloned());
    } else {
        for sub in v.outer_iter() {
            push_runs(sub, out);
        }
    }
}

/// Axes from the attribute (old opsets) or from operand 1 (opset 13+).
fn axes_operand(
    node: &Node,
    args: &[Option<&Value>],
    attr: Option<&[i64]>,
) -> Result<Option<Vec<i64>>, GraphError> {
    match (attr, args.get(1).copied().flatten()) {
        (Some(a), _) => Ok(Some(a.to_vec())),
        (None, Some(v)) => v.to_i64_vec(&node.name).map(Some),
        (None, None) => Ok(None),
    }
}

/// ONNX Squeeze: drop the given size-1 axes (all size-1 axes when none are given).
fn squeeze<T: Clone>(
    node: &Node,
    v: &ArrayViewD<T>,
    args: &[Option<&Value>],
    attr: Option<&[i64]>,
) -> Result<ArrayD<T>, GraphError> {
    let shape = v.shape();
    let drop: Vec<usize> = match axes_operand(node, args, attr)? {
        Some(axes) => axes
            .iter()
            .map(|&a| norm_axis(&node.name, a, shape.len()))
            .collect::<Result<_, _>>()?,
        None => (0..shape.len()).filter(|&d| shape[d] == 1).collect(),
    };
    if let Some(&d) = drop.iter().find(|&&d| shape[d] != 1) {
        return Err(shape_err(
            &node.name,
            format!("cannot squeeze dim {d} of size {} in {shape:?}", shape[d]),
        ));
    }
    let new: Vec<usize> = (0..shape.len())
        .filter(|d| !drop.contains(d))
        .map(|d| shape[d])
        .collect();
    reshaped(&node.name, v, &new)
}

/// ONNX Unsqueeze: insert size-1 axes at the given output positions.
fn unsqueeze<T: Clone>(
    node: &Node,
    v: &ArrayViewD<T>,
    args: &[Option<&Value>],
    attr: Option<&[i64]>,
) -> Result<ArrayD<T>, GraphError> {
    let axes = axes_operand(node, args, attr)?
        .ok_or_else(|| shape_err(&node.name, "Unsqueeze needs axes".into()))?;
    let rank = v.shape().len() + axes.len();
    let mut ins: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(&node.name, a, rank))
        .collect::<Result<_, _>>()?;
    ins.sort_unstable();
    let mut new = v.shape().to_vec();
    for &a in &ins {
        new.insert(a, 1);
    }
    reshaped(&node.name, v, &new)
}

/// ONNX Gather along `axis` with i64 indices (negative indices count from the end).
fn gather<T: Clone>(
    node: &Node,
    v: &ArrayViewD<T>,
    indices: &Value,
    axis: i64,
) -> Result<ArrayD<T>, GraphError> {
    let name = node.name.as_str();
    let ax = norm_axis(name, axis, v.shape().len())?;
    let len = v.shape()[ax] as i64;
    let idx = indices.to_i64_vec(name)?;
    let idx: Vec<usize> = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + len } else { i };
            (0..len).contains(&j).then_some(j as usize).ok_or_else(|| {
                shape_err(
                    name,
                    format!("gather index {i} out of range for size {len}"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let mut shape = v.shape()[..ax].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&v.shape()[ax + 1..]);
    budget::check(name, &shape, std::mem::size_of::<T>())?;
    reshaped(name, &v.select(Axis(ax), &idx).view(), &shape)
}

/// ONNX ConstantOfShape: a tensor of the given shape filled with the one-element `value`.
pub fn constant_of_shape(node: &Node, shape: &Value, value: &Value) -> Result<Value, GraphError> {
    let dims = dims_operand(&node.name, shape)?;
    budget::check(&node.name, &dims, value.elem_size())?;
    Ok(match value {
        Value::F32(v) => Value::F32(ArrayD::from_elem(
            IxDyn(&dims),
            v.iter().next().copied().unwrap_or(0.0),
        )),
        Value::I64(v) => Value::I64(ArrayD::from_elem(
            IxDyn(&dims),
            v.iter().next().copied().unwrap_or(0),
        )),
    })
}

/// ONNX Slice (opset 10+): starts, ends, axes, steps as operands 1..=4, clamped like numpy.
fn slice<T: Clone>(
    node: &Node,
    v: &ArrayViewD<T>,
    args: &[Option<&Value>],
) -> Result<ArrayD<T>, GraphError> {
    let name = node.name.as_str();
    let starts = arg(node, args, 1)?.to_i64_vec(name)?;
    let ends = arg(node, args, 2)?.to_i64_vec(name)?;
    let rank = v.shape().len();
    let axes = match args.get(3).copied().flatten() {
        Some(a) => a.to_i64_vec(name)?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match args.get(4).copied().flatten() {
        Some(s) => s.to_i64_vec(name)?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(shape_err(name, "Slice operands differ in length".into()));
    }
    let mut out = v.view();
    for i in 0..starts.len() {
        let ax = norm_axis(name, axes[i], rank)?;
        let step = steps[i];
        if step <= 0 {
            return Err(GraphError::Invalid {
                node: name.into(),
                detail: format!("slice step {step} is not supported (only positive steps)"),
            });
        }
        let len = out.shape()[ax] as i64;
        let clampi = |x: i64| if x < 0 { (x + len).max(0) } else { x.min(len) };
        let (s, e) = (clampi(starts[i]), clampi(ends[i]).max(clampi(starts[i])));
        let sl = Slice::new(s as isize, Some(e as isize), step as isize);
        out.slice_axis_inplace(Axis(ax), sl);
    }
    Ok(standard_copy(out))
}

/// ONNX Split along `axis` into `sizes` (attribute or operand 1), or `outputs` equal parts
/// (the last one smaller when the dim does not divide, as opset 18 defines).
fn split<T: Clone>(
    node: &Node,
    v: &ArrayViewD<T>,
    args: &[Option<&Value>],
    axis: i64,
    sizes: Option<&[usize]>,
    outputs: usize,
) -> Result<Vec<ArrayD<T>>, GraphError> {
    let name = node.name.as_str();
    let ax = norm_axis(name, axis, v.shape().len())?;
    let len = v.shape()[ax];
    let sizes: Vec<usize> = match (sizes, args.get(1).copied().flatten()) {
        (Some(s), _) => s.to_vec(),
        (None, Some(s)) => s
            .to_i64_vec(name)?
            .into_iter()
            .map(|d| usize::try_from(d).map_err(|_| shape_err(name, format!("negative split {d}"))))
            .collect::<Result<_, _>>()?,
        (None, None) => {
            let n = outputs.max(1);
            let part = len.div_ceil(n);
            (0..n)
                .map(|k| part.min(len.saturating_sub(k * part)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != len || sizes.len() != outputs {
        return Err(shape_err(
            name,
            format!(
                "split sizes {sizes:?} do not cover dim {ax} of {:?} in {outputs} parts",
                v.shape()
            ),
        ));
    }
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&s| {
            let sl = Slice::from(start..start + s);
            start += s;
            standard_copy(v.slice_axis(Axis(ax), sl))
        })
        .collect())
}

/// A shape operand as sizes (no negative dims).
fn dims_operand(name: &str, v: &Value) -> Result<Vec<usize>, GraphError> {
    v.to_i64_vec(name)?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| shape_err(name, format!("negative dim {d}"))))
        .collect()
}

/// ONNX Expand: numpy broadcasting of the input against the shape operand.
pub fn expand(node: &Node, v: &Value, shape: &Value) -> Result<Value, GraphError> {
    let name = node.name.as_str();
    let want = dims_operand(name, shape)?;
    let out = crate::tensor::broadcast_shape(v.shape(), &want)
        .ok_or_else(|| shape_err(name, format!("cannot expand {:?} to {want:?}", v.shape())))?;
    budget::check(name, &out, v.elem_size())?;
    let bad = || shape_err(name, format!("cannot expand {:?} to {out:?}", v.shape()));
    Ok(match v {
        Value::F32(x) => Value::F32(x.broadcast(IxDyn(&out)).ok_or_else(bad)?.to_owned()),
        Value::I64(x) => Value::I64(x.broadcast(IxDyn(&out)).ok_or_else(bad)?.to_owned()),
    })
}

/// ONNX Range: `start, start + delta, ...` up to (not including) `limit`.
pub fn range(node: &Node, args: &[Option<&Value>]) -> Result<Value, GraphError> {
    let name = node.name.as_str();
    let scalar = |i: usize| -> Result<&Value, GraphError> {
        let v = arg(node, args, i)?;
        if v.shape().iter().product::<usize>() != 1 {
            return Err(shape_err(
                name,
                format!("Range operand {i} is not a scalar"),
            ));
        }
        Ok(v)
    };
    match (scalar(0)?, scalar(1)?, scalar(2)?) {
        (Value::I64(s), Value::I64(l), Value::I64(d)) => {
            let (s, l, d) = (
                s.iter().next().copied(),
                l.iter().next().copied(),
                d.iter().next().copied(),
            );
            let (Some(s), Some(l), Some(d)) = (s, l, d) else {
                unreachable!("scalars checked")
            };
            if d == 0 {
                return Err(shape_err(name, "Range with delta 0".into()));
            }
            let n = ((l as i128 - s as i128 + d as i128 - d.signum() as i128) / d as i128).max(0);
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            budget::check(name, &[n], 8)?;
            Ok(Value::I64(ArrayD::from_shape_fn(IxDyn(&[n]), |i| {
                s + d * i[0] as i64
            })))
        }
        (Value::F32(s), Value::F32(l), Value::F32(d)) => {
            let (s, l, d) = (
                s.iter().next().copied().unwrap_or(0.0),
                l.iter().next().copied().unwrap_or(0.0),
                d.iter().next().copied().unwrap_or(0.0),
            );
            let n = ((l - s) / d).ceil();
            if !n.is_finite() || d == 0.0 {
                return Err(shape_err(
                    name,
                    format!("Range({s}, {l}, {d}) has no length"),
                ));
            }
            let n = n.max(0.0) as usize;
            budget::check(name, &[n], 4)?;
            Ok(Value::F32(ArrayD::from_shape_fn(IxDyn(&[n]), |i| {
                s + d * i[0] as f32
            })))
        }
        _ => Err(shape_err(name, "Range operands differ in type".into())),
    }
}

/// ONNX Tile: the input repeated `repeats[d]` times along each dim.
pub fn tile(node: &Node, v: &Value, repeats: &Value) -> Result<Value, GraphError> {
    let name = node.name.as_str();
    let reps = dims_operand(name, repeats)?;
    if reps.len() != v.shape().len() {
        return Err(shape_err(
            name,
            format!("{} repeats for rank {}", reps.len(), v.shape().len()),
        ));
    }
    let out: Vec<usize> = v
        .shape()
        .iter()
        .zip(&reps)
        .map(|(d, r)| d.checked_mul(*r))
        .collect::<Option<_>>()
        .ok_or_else(|| shape_err(name, format!("{:?} tiled by {reps:?} overflows", v.shape())))?;
    budget::check(name, &out, v.elem_size())?;
    let src = v.shape().to_vec();
    Ok(both!(v, x => ArrayD::from_shape_fn(IxDyn(&out), |i| {
        let j: Vec<usize> = (0..src.len()).map(|d| i[d] % src[d]).collect();
        x[IxDyn(&j)]
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Op;

    fn node(op: Op) -> Node {
        Node {
            name: "n".into(),
            op,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn ints(v: &[i64]) -> Value {
        Value::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).unwrap())
    }

    /// `standard_copy` equals ndarray's element-by-element copy for views of every kind:
    /// contiguous, split on any axis, stepped, reversed, transposed, empty, scalar.
    #[test]
    fn standard_copy_matches_ndarray_copy() {
        use ndarray::s;
        let x = ArrayD::from_shape_fn(IxDyn(&[3, 4, 5, 6]), |i| {
            (i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as i64
        });
        let views = [
            x.view(),
            x.slice(s![.., 1..3, .., ..]).into_dyn(),
            x.slice(s![1.., .., 2..4, ..]).into_dyn(),
            x.slice(s![.., ..;2, .., 1..;3]).into_dyn(),
            x.slice(s![..;-1, .., .., ..;-1]).into_dyn(),
            x.view().permuted_axes(IxDyn(&[1, 0, 3, 2])),
            x.slice(s![.., 2..2, .., ..]).into_dyn(),
            x.slice(s![1, 2, 3, 4]).into_dyn(),
        ];
        for (k, v) in views.into_iter().enumerate() {
            let got = standard_copy(v.view());
            assert!(got.is_standard_layout(), "view {k}");
            assert_eq!(got, v.to_owned(), "view {k}");
        }
    }

    /// The run-copying transpose equals the element-by-element permutation, runs or not.
    #[test]
    fn transpose_by_runs_matches_elementwise() {
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4, 5, 2]), |i| {
            (i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as i64 * 3 + i[4] as i64
        });
        for perm in [
            vec![0, 2, 1, 3, 4],
            vec![2, 1, 0, 3, 4],
            vec![1, 0, 2, 3, 4],
            vec![4, 3, 2, 1, 0],
            vec![0, 1, 2, 4, 3],
            vec![0, 1, 2, 3, 4],
        ] {
            let got = transpose("t", &x.view(), &perm).unwrap();
            let want = x.view().permuted_axes(IxDyn(&perm)).to_owned();
            assert_eq!(got, want, "{perm:?}");
            assert!(got.is_standard_layout());
        }
        assert!(transpose("t", &x.view(), &[0, 0, 1, 2, 3]).is_err());
    }

    /// `join` equals ndarray's `concatenate` along every axis, in standard layout, from parts
    /// in any layout; parts whose other dims differ are refused.
    #[test]
    fn join_matches_concatenate_in_standard_layout() {
        let a = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |d| {
            (d[0] * 100 + d[1] * 10 + d[2]) as f32
        });
        let transposed =
            ArrayD::from_shape_fn(IxDyn(&[4, 3, 2]), |d| (d[0] + d[1] * 7 + d[2] * 50) as f32);
        let b = transposed.view().reversed_axes();
        for axis in 0..3 {
            let mut shape = vec![2, 3, 4];
            shape[axis] *= 2;
            let parts = [a.view(), b.view()];
            let got = join(axis, &parts, &shape).unwrap();
            let want = ndarray::concatenate(Axis(axis), &parts).unwrap();
            assert!(got.is_standard_layout(), "axis {axis}");
            assert_eq!(got, want, "axis {axis}");
        }
        let c = ArrayD::<f32>::zeros(IxDyn(&[2, 5, 4]));
        assert!(join(0, &[a.view(), c.view()], &[4, 3, 4]).is_none());
    }

    /// Lengths along the axis whose sum overflows (empty tensors can carry them) are a shape
    /// error, not a panic inside ndarray.
    #[test]
    fn concat_refuses_an_overflowing_length() {
        let wide =
            Value::I64(ArrayD::from_shape_vec(IxDyn(&[0, isize::MAX as usize]), vec![]).unwrap());
        let n = node(Op::Concat { axis: 1 });
        let e = concat(&n, &[Some(&wide), Some(&wide), Some(&wide)], 1).unwrap_err();
        assert!(e.to_string().contains("cannot concatenate"), "{e}");
        let ok = concat(&n, &[Some(&ints(&[1])), Some(&ints(&[2, 3]))], 0).unwrap();
        assert_eq!(ok, ints(&[1, 2, 3]));
    }

    #[test]
    fn split_expand_range_tile() {
        let x = ints(&[0, 1, 2, 3, 4]);
        let n = node(Op::Identity);
        let xa = &x.i64("x").unwrap().view();
        let parts = split(&n, xa, &[Some(&x)], 0, None, 2).unwrap();
        let arr = |v: &Value| v.i64("v").unwrap().clone();
        assert_eq!(parts, vec![arr(&ints(&[0, 1, 2])), arr(&ints(&[3, 4]))]);
        let parts = split(&n, xa, &[Some(&x), Some(&ints(&[1, 4]))], 0, None, 2).unwrap();
        assert_eq!(parts, vec![arr(&ints(&[0])), arr(&ints(&[1, 2, 3, 4]))]);
        assert!(split(&n, xa, &[Some(&x), Some(&ints(&[1, 1]))], 0, None, 2).is_err());

        let e = expand(&n, &ints(&[7]), &ints(&[2, 3])).unwrap();
        assert_eq!(e.shape(), &[2, 3]);
        assert!(expand(&n, &ints(&[7]), &ints(&[1 << 40, 1 << 40])).is_err());

        let zero = |v: i64| Value::I64(ArrayD::from_elem(IxDyn(&[]), v));
        let r = range(&n, &[Some(&zero(5)), Some(&zero(-1)), Some(&zero(-2))]).unwrap();
        assert_eq!(r, ints(&[5, 3, 1]));
        assert!(range(&n, &[Some(&zero(0)), Some(&zero(1)), Some(&zero(0))]).is_err());

        let t = tile(&n, &ints(&[1, 2]), &ints(&[3])).unwrap();
        assert_eq!(t, ints(&[1, 2, 1, 2, 1, 2]));
    }
}
