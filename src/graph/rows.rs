//! Whether a model computes each sample of a batch from that sample alone, so that a batch can
//! be cut into parts that run side by side and whose outputs, joined, are the whole batch's
//! outputs bit for bit. Per-op parallelism alone left the second of two cores idle much of an
//! int8 ShuffleNet batch (small convs, serial data movement, a thread woken for every op: in a
//! perf profile, outside the repo, it had ~40 % fewer samples than the first); running halves
//! of the batch on their own threads keeps both busy for the whole forward.
//!
//! [`check`] reads the ops and the shapes one run of the whole batch produced. A value is
//! *rows* when its leading dim is the batch and sample `i`'s part depends on sample `i` of the
//! inputs only, *fixed* when it comes from constants alone. Every op that reads rows must keep
//! them rows by one of the rules of [`node_rule`] — elementwise ops, convs and pools, broadcasts
//! whose fixed operand has no batch-sized leading dim, reshapes and concats that leave axis 0
//! alone, ... Anything else (an op that reads the batch size, an axis-0 concat or slice, a
//! reshape that regroups samples, a model's own whole-batch statistics) is named with its node,
//! and the batch runs whole.

use super::ops::norm_axis;
use super::{Graph, GraphError, Node, Op, Value};
use ndarray::{ArrayD, Axis, concatenate};
use std::collections::HashMap;
use std::fmt;

/// Why a graph is not known to treat samples independently: the node and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSampleWise {
    pub node: String,
    pub why: String,
}

impl fmt::Display for NotSampleWise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.why)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rows,
    Fixed,
}

/// Value shapes of one run, by value name.
pub type Shapes = HashMap<String, Vec<usize>>;

/// Checks that `graph`, on a run of `batch` samples whose value shapes are `shapes` (inputs and
/// node outputs; constants are read from the graph), computes every output row from the same
/// row of the inputs. `barred` names the nodes whose kernel reads the whole batch whatever
/// its op (dynamic quantization's ranges), by index.
pub fn check(
    graph: &Graph,
    shapes: &Shapes,
    batch: usize,
    barred: &dyn Fn(usize) -> Option<&'static str>,
) -> Result<(), NotSampleWise> {
    let fail = |node: &str, why: String| NotSampleWise {
        node: node.into(),
        why,
    };
    if batch < 2 {
        return Err(fail(
            "<inputs>",
            format!("a batch of {batch} has no rows to split"),
        ));
    }
    let ctx = Ctx { graph, shapes };
    let mut kinds: HashMap<&str, Kind> = HashMap::new();
    for name in graph.constants.keys() {
        kinds.insert(name, Kind::Fixed);
    }
    for input in &graph.inputs {
        match ctx.shape(&input.name) {
            Some(s) if s.first() == Some(&batch) => kinds.insert(&input.name, Kind::Rows),
            s => {
                return Err(fail(
                    &input.name,
                    format!("input shape {s:?} does not lead with the batch {batch}"),
                ));
            }
        };
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        let operands = node
            .inputs
            .iter()
            .map(|name| match name.as_str() {
                "" => Ok(None),
                name => kinds.get(name).map(|&k| Some(k)).ok_or_else(|| {
                    fail(
                        &node.name,
                        format!("operand {name} is not produced before it"),
                    )
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reads_rows = operands.contains(&Some(Kind::Rows));
        if reads_rows {
            if let Some(why) = barred(index) {
                return Err(fail(&node.name, why.into()));
            }
            for out in node.outputs.iter().filter(|o| !o.is_empty()) {
                match ctx.shape(out) {
                    Some(s) if s.first() == Some(&batch) => {}
                    s => {
                        return Err(fail(
                            &node.name,
                            format!("output {out} has shape {s:?}, not the batch {batch} first"),
                        ));
                    }
                }
            }
            node_rule(node, &operands, &ctx).map_err(|why| fail(&node.name, why))?;
        }
        let kind = if reads_rows { Kind::Rows } else { Kind::Fixed };
        for out in &node.outputs {
            kinds.insert(out, kind);
        }
    }
    for out in &graph.outputs {
        if kinds.get(out.as_str()) != Some(&Kind::Rows) {
            return Err(fail(
                out,
                "a graph output that does not come from the inputs' rows".into(),
            ));
        }
    }
    Ok(())
}

struct Ctx<'a> {
    graph: &'a Graph,
    shapes: &'a Shapes,
}

impl Ctx<'_> {
    fn shape(&self, name: &str) -> Option<&[usize]> {
        match self.graph.constants.get(name) {
            Some(v) => Some(v.shape()),
            None => self.shapes.get(name).map(Vec::as_slice),
        }
    }

    /// The integer entries of constant operand `i` of `node`, if it has one.
    fn ints(&self, node: &Node, i: usize) -> Option<Vec<i64>> {
        let name = node.inputs.get(i).filter(|n| !n.is_empty())?;
        self.graph.constants.get(name)?.to_i64_vec(&node.name).ok()
    }

    fn rank(&self, node: &Node, i: usize) -> usize {
        node.inputs
            .get(i)
            .and_then(|n| self.shape(n))
            .map_or(0, <[usize]>::len)
    }
}

/// The rule an op reading rows must meet to produce rows; `Err` says what it does instead.
fn node_rule(node: &Node, operands: &[Option<Kind>], ctx: &Ctx) -> Result<(), String> {
    let name = node.name.as_str();
    let rows_only_at_0 = || -> Result<(), String> {
        match operands.iter().skip(1).position(|k| *k == Some(Kind::Rows)) {
            Some(i) if operands.first() == Some(&Some(Kind::Rows)) => {
                Err(format!("operand {} also reads the batch", i + 1))
            }
            Some(_) => Err("the batch reaches it through a parameter operand".into()),
            None => Ok(()),
        }
    };
    let rank0 = ctx.rank(node, 0);
    let out_rank = node
        .outputs
        .first()
        .and_then(|o| ctx.shape(o))
        .map_or(0, <[usize]>::len);
    let not_batch_axis = |axis: i64, rank: usize, what: &str| -> Result<(), String> {
        match norm_axis(name, axis, rank) {
            Ok(0) => Err(format!("{what} axis {axis} is the batch")),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    // A broadcast operand: rows aligned with the output's, or fixed without a batch-sized
    // leading dim (one broadcast to every row).
    let broadcast = |i: usize, rows_ok: bool| -> Result<(), String> {
        let rank = ctx.rank(node, i);
        match operands[i] {
            None => Ok(()),
            Some(Kind::Rows) if rows_ok && rank == out_rank => Ok(()),
            Some(Kind::Rows) => Err(format!(
                "operand {i} of rank {rank} does not align its batch with the output's (rank {out_rank})"
            )),
            Some(Kind::Fixed) => {
                let lead = node
                    .inputs
                    .get(i)
                    .and_then(|n| ctx.shape(n))
                    .and_then(|s| s.first());
                if rank < out_rank || lead == Some(&1) {
                    Ok(())
                } else {
                    Err(format!(
                        "constant operand {i} has a leading dim of {lead:?} along the batch"
                    ))
                }
            }
        }
    };
    let axes_not_batch = |axes: Option<Vec<i64>>, rank: usize, what: &str| -> Result<(), String> {
        let axes =
            axes.ok_or_else(|| format!("{what} without constant axes may touch the batch"))?;
        axes.iter().try_for_each(|&a| not_batch_axis(a, rank, what))
    };
    match &node.op {
        Op::Relu
        | Op::Clip { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::Unary(_)
        | Op::Identity
        | Op::QuantStub
        | Op::DeQuantStub
        | Op::Cast { .. }
        | Op::Conv(_)
        | Op::BatchNorm(_)
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::GlobalAvgPool
        | Op::Resize { .. } => rows_only_at_0(),
        Op::Linear(_) if rank0 >= 2 => rows_only_at_0(),
        Op::QuantizeLinear { axis, .. } | Op::DequantizeLinear { axis } => {
            rows_only_at_0()?;
            let per_tensor = node
                .inputs
                .get(1)
                .and_then(|n| ctx.shape(n))
                .is_some_and(|s| s.iter().product::<usize>() <= 1);
            if per_tensor {
                Ok(())
            } else {
                not_batch_axis(*axis, rank0, "quantization")
            }
        }
        Op::LayerNorm(p) => {
            rows_only_at_0()?;
            not_batch_axis(p.axis, rank0, "normalized")
        }
        Op::Softmax { axis } => {
            rows_only_at_0()?;
            not_batch_axis(*axis, rank0, "softmax")
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Binary(_) | Op::Where => {
            (0..operands.len()).try_for_each(|i| broadcast(i, true))
        }
        Op::MatMul if out_rank >= 2 => {
            // `[.., M, K] @ [.., K, N]`: rows of the left operand are independent; a right
            // operand with rows needs batch dims of its own (rank ≥ 3).
            broadcast(0, true)?;
            match operands.get(1).copied().flatten() {
                Some(Kind::Rows) => broadcast(1, out_rank >= 3),
                Some(Kind::Fixed) if ctx.rank(node, 1) <= 2 => Ok(()),
                _ => broadcast(1, false),
            }
        }
        Op::Concat { axis } => {
            if operands.contains(&Some(Kind::Fixed)) {
                return Err("a constant operand joined to the batch's rows".into());
            }
            not_batch_axis(*axis, out_rank, "concat")
        }
        Op::Split { axis, .. } => {
            rows_only_at_0()?;
            not_batch_axis(*axis, rank0, "split")
        }
        Op::Gather { axis } => match (operands.first(), operands.get(1)) {
            // A table looked up by each row's indices (an embedding): rows in, rows out.
            (Some(Some(Kind::Fixed)), Some(Some(Kind::Rows))) => {
                match norm_axis(name, *axis, rank0) {
                    Ok(0) => Ok(()),
                    _ => Err(format!("indices with the batch gathered along axis {axis}")),
                }
            }
            _ => {
                rows_only_at_0()?;
                not_batch_axis(*axis, rank0, "gather")
            }
        },
        Op::Flatten { axis } => {
            rows_only_at_0()?;
            // Axis 0 gives `[1, all]`; any other axis keeps sample blocks when the output
            // still leads with the batch (checked for every output above).
            let a = if *axis < 0 {
                axis + rank0 as i64
            } else {
                *axis
            };
            match a {
                0 => Err("flatten at axis 0 merges the batch".into()),
                _ => Ok(()),
            }
        }
        Op::Transpose { perm } => match perm.first() {
            Some(0) => rows_only_at_0(),
            _ => Err(format!("perm {perm:?} moves the batch axis")),
        },
        Op::Reshape { allowzero } => {
            rows_only_at_0()?;
            // Row-major, a sample's elements stay one block when the batch stays first; the
            // target must then infer (-1) or copy (0) it, or a part's run would get the
            // whole batch's size.
            match ctx.ints(node, 1).as_deref().and_then(<[i64]>::first) {
                Some(-1) => Ok(()),
                Some(0) if !allowzero => Ok(()),
                Some(d) => Err(format!("target fixes the leading dim at {d}")),
                None => Err("target is not a constant".into()),
            }
        }
        Op::Squeeze { axes } | Op::Unsqueeze { axes } => {
            rows_only_at_0()?;
            let axes = axes.clone().or_else(|| ctx.ints(node, 1));
            let rank = if matches!(node.op, Op::Squeeze { .. }) {
                rank0
            } else {
                out_rank
            };
            axes_not_batch(axes, rank, "squeeze")
        }
        Op::Slice => {
            rows_only_at_0()?;
            axes_not_batch(ctx.ints(node, 3), rank0, "slice")
        }
        Op::Reduce(p) => {
            rows_only_at_0()?;
            let axes = p.axes.clone().or_else(|| ctx.ints(node, 1));
            match axes {
                None if p.noop_with_empty_axes => Ok(()),
                Some(a) if a.is_empty() && p.noop_with_empty_axes => Ok(()),
                Some(a) if a.is_empty() => Err("reduces every axis, the batch too".into()),
                axes => axes_not_batch(axes, rank0, "reduction"),
            }
        }
        Op::Lstm(_) => Err("an LSTM's sequence runs along axis 0, the batch along axis 1".into()),
        other => Err(format!(
            "{} reading the batch is not known to keep samples apart",
            other.kind()
        )),
    }
}

/// How many parts a batch of `batch` runs in on `threads` threads.
pub fn parts(batch: usize, threads: usize) -> usize {
    batch.min(threads).max(1)
}

/// `inputs` cut along axis 0 into `parts` runs of rows, as even as can be (the first ones one
/// row longer).
pub fn split(inputs: &[Value], parts: usize) -> Vec<Vec<Value>> {
    let batch = inputs
        .first()
        .map_or(0, |v| v.shape().first().copied().unwrap_or(0));
    let parts = parts.clamp(1, batch.max(1));
    let mut at = 0;
    (0..parts)
        .map(|p| {
            let n = batch / parts + usize::from(p < batch % parts);
            let range = at..at + n;
            at += n;
            inputs
                .iter()
                .map(|v| match v {
                    Value::F32(a) => {
                        Value::F32(a.slice_axis(Axis(0), range.clone().into()).to_owned())
                    }
                    Value::I64(a) => {
                        Value::I64(a.slice_axis(Axis(0), range.clone().into()).to_owned())
                    }
                })
                .collect()
        })
        .collect()
}

/// The outputs of parts' runs joined along axis 0, output by output.
pub fn join(parts: Vec<Vec<Value>>) -> Result<Vec<Value>, GraphError> {
    let outputs = parts.first().map_or(0, Vec::len);
    (0..outputs)
        .map(|o| {
            let pieces: Vec<&Value> = parts.iter().filter_map(|p| p.get(o)).collect();
            let joined = match pieces.first() {
                Some(Value::F32(_)) if pieces.len() == parts.len() => {
                    join_as(&pieces, |v| match v {
                        Value::F32(a) => Some(a),
                        Value::I64(_) => None,
                    })
                    .map(Value::F32)
                }
                Some(Value::I64(_)) if pieces.len() == parts.len() => {
                    join_as(&pieces, |v| match v {
                        Value::I64(a) => Some(a),
                        Value::F32(_) => None,
                    })
                    .map(Value::I64)
                }
                _ => None,
            };
            joined.ok_or_else(|| GraphError::Invalid {
                node: "<batch parts>".into(),
                detail: format!("output {o} differs in type or rank between the parts"),
            })
        })
        .collect()
}

fn join_as<T: Clone>(
    pieces: &[&Value],
    pick: impl Fn(&Value) -> Option<&ArrayD<T>>,
) -> Option<ArrayD<T>> {
    let views: Vec<_> = pieces
        .iter()
        .map(|v| pick(v).map(|a| a.view()))
        .collect::<Option<_>>()?;
    concatenate(Axis(0), &views).ok()
}

/// A model that runs a batch of inputs: the float graph, or a quantized model.
pub trait Forward: Sync {
    type Error: From<GraphError> + Send;
    /// Outputs of `inputs`, and each node's output shapes to `shape` as they are produced.
    fn forward_shapes(
        &self,
        inputs: Vec<Value>,
        shape: &mut dyn FnMut(&str, &[usize]),
    ) -> Result<Vec<Value>, Self::Error>;
    /// The graph whose ops [`check`] reads.
    fn graph(&self) -> &Graph;
    /// Nodes whose kernel reads the whole batch whatever their op (see [`check`]).
    fn barred(&self, _node: usize) -> Option<&'static str> {
        None
    }
}

/// A model found sample-wise on a batch: [`RowParallel::run`] runs a batch as
/// [`parts`] runs of rows in parallel and joins their outputs.
pub struct RowParallel<'a, M: Forward> {
    model: &'a M,
}

/// Runs `inputs` (a batch) through `model` whole, recording the shapes, and checks the model
/// sample-wise on that run: the outputs, and the parallel runner or why there is none.
#[allow(clippy::type_complexity)]
pub fn row_parallel<M: Forward>(
    model: &M,
    inputs: Vec<Value>,
) -> Result<(Vec<Value>, Result<RowParallel<'_, M>, NotSampleWise>), M::Error> {
    let batch = inputs
        .first()
        .map_or(0, |v| v.shape().first().copied().unwrap_or(0));
    let mut shapes = Shapes::new();
    for (spec, v) in model.graph().inputs.iter().zip(&inputs) {
        shapes.insert(spec.name.clone(), v.shape().to_vec());
    }
    let outputs = model.forward_shapes(inputs, &mut |name, s| {
        shapes.insert(name.into(), s.to_vec());
    })?;
    let verdict =
        check(model.graph(), &shapes, batch, &|i| model.barred(i)).map(|()| RowParallel { model });
    Ok((outputs, verdict))
}

impl<M: Forward> RowParallel<'_, M> {
    /// The outputs of `inputs`, identical to one run of the whole batch: rows cut into as
    /// many parts as there are threads (at most one per row), run in parallel, joined.
    pub fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, M::Error> {
        use rayon::prelude::*;
        let batch = inputs
            .first()
            .map_or(0, |v| v.shape().first().copied().unwrap_or(0));
        // Inputs that disagree on their rows run whole (the model says what is wrong).
        let aligned = inputs.iter().all(|v| v.shape().first() == Some(&batch));
        let parts = if aligned {
            parts(batch, rayon::current_num_threads())
        } else {
            1
        };
        if parts < 2 {
            return self.model.forward_shapes(inputs, &mut |_, _| {});
        }
        let outs = split(&inputs, parts)
            .into_par_iter()
            .map(|part| self.model.forward_shapes(part, &mut |_, _| {}))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(join(outs)?)
    }
}

impl Forward for Graph {
    type Error = GraphError;

    fn forward_shapes(
        &self,
        inputs: Vec<Value>,
        shape: &mut dyn FnMut(&str, &[usize]),
    ) -> Result<Vec<Value>, GraphError> {
        super::run(self, inputs, |node, outs| {
            for (name, v) in node.outputs.iter().zip(outs) {
                shape(name, v.shape());
            }
        })
    }

    fn graph(&self) -> &Graph {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphInput, test_node};
    use ndarray::{ArrayD, IxDyn};
    use std::collections::BTreeMap;

    fn ints(v: &[i64]) -> Value {
        Value::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).unwrap())
    }

    fn floats(shape: &[usize]) -> Value {
        let n = shape.iter().product::<usize>();
        Value::F32(
            ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| i as f32).collect()).unwrap(),
        )
    }

    /// `x [4, 6, 5]` → relu `a` → the node under test `y` (operands `a` and `k`, a constant).
    fn graph(op: Op, k: Value, y: &[usize]) -> (Graph, Shapes) {
        let mut constants = BTreeMap::new();
        constants.insert("k".to_string(), k);
        let g = Graph {
            inputs: vec![GraphInput {
                name: "x".into(),
                shape: vec![None, Some(6), Some(5)],
            }],
            outputs: vec!["y".into()],
            nodes: vec![
                test_node("relu", Op::Relu, &["x"], &["a"]),
                test_node("under_test", op, &["a", "k"], &["y"]),
            ],
            constants,
            fusions: Vec::new(),
        };
        let shapes: Shapes = [
            ("x", vec![4, 6, 5]),
            ("a", vec![4, 6, 5]),
            ("y", y.to_vec()),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        (g, shapes)
    }

    fn verdict(op: Op, k: Value, y: &[usize]) -> Result<(), NotSampleWise> {
        let (g, shapes) = graph(op, k, y);
        check(&g, &shapes, 4, &|_| None)
    }

    /// Ops that keep samples apart pass; each way of mixing or re-sizing the batch is refused
    /// and named by its node.
    #[test]
    fn sample_wise_ops_pass_and_batch_mixing_ops_are_named() {
        let reshape = Op::Reshape { allowzero: false };
        assert_eq!(verdict(reshape.clone(), ints(&[0, -1]), &[4, 30]), Ok(()));
        assert_eq!(
            verdict(reshape.clone(), ints(&[-1, 3, 10]), &[4, 3, 10]),
            Ok(())
        );
        let fixed = verdict(reshape.clone(), ints(&[4, -1]), &[4, 30]).unwrap_err();
        assert_eq!(fixed.node, "under_test");
        assert!(fixed.why.contains("leading dim at 4"), "{fixed}");
        // Regrouping rows: the output no longer leads with the batch.
        assert!(verdict(reshape, ints(&[-1, 15]), &[8, 15]).is_err());

        assert_eq!(verdict(Op::Add, floats(&[6, 5]), &[4, 6, 5]), Ok(()));
        assert_eq!(verdict(Op::Mul, floats(&[1, 6, 1]), &[4, 6, 5]), Ok(()));
        let per_row = verdict(Op::Add, floats(&[4, 6, 5]), &[4, 6, 5]).unwrap_err();
        assert!(per_row.why.contains("leading dim"), "{per_row}");

        let slice = |axes: Option<&[i64]>| {
            let (mut g, shapes) = graph(Op::Slice, ints(&[0]), &[4, 2, 5]);
            g.constants.insert("e".into(), ints(&[2]));
            let mut inputs = vec!["a", "k", "e"];
            if let Some(a) = axes {
                g.constants.insert("ax".into(), ints(a));
                inputs.push("ax");
            }
            g.nodes[1] = test_node("under_test", Op::Slice, &inputs, &["y"]);
            check(&g, &shapes, 4, &|_| None)
        };
        assert_eq!(slice(Some(&[1])), Ok(()));
        assert!(slice(Some(&[-3])).is_err());
        assert!(slice(None).is_err());

        let concat = |axis| {
            let (mut g, mut shapes) = graph(Op::Concat { axis }, ints(&[0]), &[4, 12, 5]);
            g.nodes[1] = test_node("under_test", Op::Concat { axis }, &["a", "a"], &["y"]);
            if axis == 0 {
                shapes.insert("y".into(), vec![8, 6, 5]);
            }
            check(&g, &shapes, 4, &|_| None)
        };
        assert_eq!(concat(1), Ok(()));
        assert!(concat(0).is_err());

        let transpose =
            |perm: Vec<usize>, y: &[usize]| verdict(Op::Transpose { perm }, ints(&[0]), y);
        assert_eq!(transpose(vec![0, 2, 1], &[4, 5, 6]), Ok(()));
        assert!(transpose(vec![2, 1, 0], &[5, 6, 4]).is_err());
        assert!(verdict(Op::Shape, ints(&[0]), &[3]).is_err());
        assert!(verdict(Op::Softmax { axis: 0 }, ints(&[0]), &[4, 6, 5]).is_err());
        assert_eq!(
            verdict(Op::Softmax { axis: -1 }, ints(&[0]), &[4, 6, 5]),
            Ok(())
        );

        let (g, shapes) = graph(Op::Relu, ints(&[0]), &[4, 6, 5]);
        let barred = check(&g, &shapes, 4, &|i| (i == 1).then_some("reads the batch")).unwrap_err();
        assert_eq!(
            (barred.node.as_str(), barred.why.as_str()),
            ("under_test", "reads the batch")
        );
        assert!(check(&g, &shapes, 1, &|_| None).is_err());
    }

    /// Rows cut into parts as even as can be, and joined back into the whole.
    #[test]
    fn split_then_join_is_the_whole() {
        let x = floats(&[5, 3]);
        let t = ints(&[1, 2, 3, 4, 5]);
        let parts = split(&[x.clone(), t.clone()], 2);
        let rows: Vec<usize> = parts.iter().map(|p| p[0].shape()[0]).collect();
        assert_eq!(rows, [3, 2]);
        assert_eq!(join(parts).unwrap(), vec![x.clone(), t]);
        assert_eq!(split(std::slice::from_ref(&x), 9).len(), 5);
        assert_eq!(
            (super::parts(5, 2), super::parts(1, 4), super::parts(3, 8)),
            (2, 1, 3)
        );
    }
}
