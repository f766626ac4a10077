//! Shape subgraphs folded away and the batch dimension set free, by probing.
//!
//! Exporters write the arithmetic PyTorch did on `x.size()` into the graph (channel shuffle's
//! `view(b, g, c/g, h, w)`, attention's `view(t, b·heads, d)`, `1/sqrt(head_dim)`), or bake the
//! export-time batch into constants (a `Reshape` to `[1, 2, 24, 28, 28]`). Neither should reach
//! quantization: the first clutters the compute graph with Shape/Gather/Cast nodes on activations,
//! the second refuses any batch but the one the model was exported with.
//!
//! Rather than reasoning symbolically about every op, the pass *measures*: it runs the graph on
//! two probe samples one at a time (at the export batch `B`) and together (at `2B`), records
//! every value computed from shapes alone, and then
//! - folds into constants the shape values that are the same at both batches;
//! - rewrites a `Reshape` target whose one element grows with the batch into `-1` (inferred);
//! - keeps any other batch-dependent shape value computed at run time (correct at any batch);
//! - for a graph that only runs at the export batch, tries the same `-1` rewrite on constant
//!   targets whose leading element is the export batch.
//!
//! Every candidate is accepted only if the batched run reproduces each sample's own outputs;
//! otherwise the batch stays pinned (input dim 0 = `Some(B)`, callers run data in runs of `B`)
//! and every shape value is folded for that batch.

use super::{Graph, GraphError, Node, Op, Value, run};
use ndarray::{ArrayD, Axis, IxDyn};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What [`settle_batch`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFreedom {
    /// Nothing to probe: the input's batch was already dynamic and no shape subgraph exists.
    AlreadyFree,
    /// Probed: any batch runs; `folded` shape values became constants, `rewritten` reshape
    /// targets infer their batch-sized element.
    Freed { folded: usize, rewritten: usize },
    /// Only the export batch runs (a node mixes samples or fixes the batch in a way no rewrite
    /// frees); shape values are folded for that batch.
    Pinned { batch: usize, folded: usize },
    /// The graph could not be probed (an input dim other than the batch is unknown, or a probe
    /// run failed): left as imported.
    Unprobed { reason: String },
}

/// Why a probe stopped: over the memory budget (the graph cannot run even at its export batch:
/// an error), or anything else (the graph is left as imported).
enum Stop {
    Budget(GraphError),
    Other(String),
}

impl From<String> for Stop {
    fn from(reason: String) -> Self {
        Stop::Other(reason)
    }
}

impl From<GraphError> for Stop {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::OverBudget { .. } => Stop::Budget(e),
            other => Stop::Other(other.to_string()),
        }
    }
}

/// Folds shape subgraphs and frees the batch dimension where the graph allows it. Fails only
/// when a probe run at the export batch asks for more than the memory budget.
pub fn settle_batch(graph: Graph) -> Result<(Graph, BatchFreedom), GraphError> {
    let has_shape_ops = graph.nodes.iter().any(|n| matches!(n.op, Op::Shape));
    let dynamic = graph
        .inputs
        .iter()
        .all(|i| i.shape.first().is_some_and(Option::is_none));
    if dynamic && !has_shape_ops {
        return Ok((graph, BatchFreedom::AlreadyFree));
    }
    match probe(&graph) {
        Ok(result) => Ok(result),
        Err(Stop::Budget(e)) => Err(e),
        Err(Stop::Other(reason)) => Ok((graph, BatchFreedom::Unprobed { reason })),
    }
}

/// The probe inputs: sample `k` of each graph input at batch `batch`, deterministic values in
/// [-1, 1) for float inputs and small ids (0 or 1, valid for any table) for index inputs.
fn probe_inputs(graph: &Graph, batch: usize, k: u64) -> Result<Vec<Value>, Stop> {
    let indices: HashSet<&str> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Gather { .. }))
        .filter_map(|n| n.inputs.get(1).map(String::as_str))
        .collect();
    graph
        .inputs
        .iter()
        .map(|i| {
            let mut dims = Vec::with_capacity(i.shape.len());
            for (d, s) in i.shape.iter().enumerate() {
                match (d, s) {
                    (0, _) => dims.push(batch),
                    (_, Some(s)) => dims.push(*s),
                    (_, None) => {
                        return Err(format!("input '{}' has a dynamic dim {d}", i.name).into());
                    }
                }
            }
            // Sized before it exists: the stacked probe holds two of these, at 8 bytes for ids.
            super::budget::check(&i.name, &dims, 16)?;
            if dims.iter().product::<usize>() > 1 << 26 {
                return Err(format!("input '{}' is too large to probe", i.name).into());
            }
            let mut rng = super::train::Rng::new(0x9E37_79B9 ^ k);
            Ok(if indices.contains(i.name.as_str()) {
                Value::I64(ArrayD::from_shape_simple_fn(IxDyn(&dims), || {
                    rng.below(2) as i64
                }))
            } else {
                Value::F32(ArrayD::from_shape_simple_fn(IxDyn(&dims), || {
                    2.0 * rng.next_f32() - 1.0
                }))
            })
        })
        .collect()
}

/// Values computed from shapes alone: Shape outputs, and outputs of non-module nodes whose
/// run-time operands are all such values.
fn shape_values(graph: &Graph) -> HashSet<String> {
    let mut set: HashSet<String> = HashSet::new();
    for node in &graph.nodes {
        let from_shapes = match node.op {
            Op::Shape => true,
            ref op if op.owns_weights() => false,
            _ => node.inputs.iter().all(|i| {
                i.is_empty() || graph.constants.contains_key(i) || set.contains(i.as_str())
            }),
        };
        if from_shapes {
            set.extend(node.outputs.iter().cloned());
        }
    }
    set
}

/// A run that records the shape values.
struct Probe {
    outputs: Vec<Value>,
    shapes: HashMap<String, Value>,
    /// Every node output's dims.
    dims: HashMap<String, Vec<usize>>,
}

fn run_recording(
    graph: &Graph,
    inputs: Vec<Value>,
    wanted: &HashSet<String>,
) -> Result<Probe, GraphError> {
    let mut shapes = HashMap::new();
    let mut dims: HashMap<String, Vec<usize>> = graph
        .inputs
        .iter()
        .zip(&inputs)
        .map(|(i, v)| (i.name.clone(), v.shape().to_vec()))
        .collect();
    let outputs = run(graph, inputs, |node: &Node, outs: &[Value]| {
        for (name, v) in node.outputs.iter().zip(outs) {
            dims.insert(name.clone(), v.shape().to_vec());
            if wanted.contains(name) {
                shapes.insert(name.clone(), v.clone());
            }
        }
    })?;
    Ok(Probe {
        outputs,
        shapes,
        dims,
    })
}

/// Concatenates two probe batches along dim 0.
fn stack(a: &[Value], b: &[Value]) -> Result<Vec<Value>, String> {
    a.iter()
        .zip(b)
        .map(|(x, y)| match (x, y) {
            (Value::F32(x), Value::F32(y)) => ndarray::concatenate(Axis(0), &[x.view(), y.view()])
                .map(Value::F32)
                .map_err(|e| e.to_string()),
            (Value::I64(x), Value::I64(y)) => ndarray::concatenate(Axis(0), &[x.view(), y.view()])
                .map(Value::I64)
                .map_err(|e| e.to_string()),
            _ => Err("probe inputs differ in type".into()),
        })
        .collect()
}

/// Whether the batched run's outputs are the two single runs' outputs stacked (the rows of a
/// sample only depend on that sample), to a relative 1e-4 of each output's magnitude.
fn same_rows(single: [&[Value]; 2], batched: &[Value]) -> bool {
    let Ok(expected) = stack(single[0], single[1]) else {
        return false;
    };
    expected.len() == batched.len()
        && expected.iter().zip(batched).all(|(e, b)| match (e, b) {
            (Value::F32(e), Value::F32(b)) if e.shape() == b.shape() => {
                let scale = e.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
                e.iter()
                    .zip(b.iter())
                    .all(|(x, y)| (x - y).abs() <= 1e-4 * scale || (x.is_nan() && y.is_nan()))
            }
            (Value::I64(e), Value::I64(b)) => e == b,
            _ => false,
        })
}

/// Shape values consumed only as a Reshape target: their readers.
fn reshape_readers<'g>(graph: &'g Graph, value: &str) -> Option<Vec<&'g Node>> {
    let readers: Vec<&Node> = graph
        .nodes
        .iter()
        .filter(|n| n.inputs.iter().any(|i| i == value))
        .collect();
    let only_target = !readers.is_empty()
        && readers.iter().all(|n| {
            matches!(n.op, Op::Reshape { .. })
                && n.inputs.get(1).is_some_and(|t| t == value)
                && n.inputs.first().is_none_or(|d| d != value)
        });
    (only_target && !graph.outputs.iter().any(|o| o == value)).then_some(readers)
}

/// The target with its one batch-dependent element (differing between the two batches)
/// replaced by -1 (inferred), or by 0 (copied from the input) when the target already infers
/// another element and the input's dim there is that element at both batches; `None` when
/// neither rewrite is valid for every reader.
fn inferred_target(
    small: &[i64],
    large: &[i64],
    readers: &[&Node],
    a: &Probe,
    b: &Probe,
) -> Option<Vec<i64>> {
    if small.len() != large.len() {
        return None;
    }
    let differing: Vec<usize> = (0..small.len()).filter(|&i| small[i] != large[i]).collect();
    let [i] = differing[..] else {
        return None;
    };
    let mut t = small.to_vec();
    if !small.contains(&-1) {
        t[i] = -1;
        return Some(t);
    }
    let copies = |r: &&Node| {
        let dim = |p: &Probe, want: i64| {
            r.inputs
                .first()
                .and_then(|d| p.dims.get(d))
                .and_then(|s| s.get(i))
                .is_some_and(|&d| d as i64 == want)
        };
        matches!(r.op, Op::Reshape { allowzero: false }) && dim(a, small[i]) && dim(b, large[i])
    };
    readers.iter().all(copies).then(|| {
        t[i] = 0;
        t
    })
}

fn i64_value(v: Vec<i64>) -> Value {
    let n = v.len();
    Value::I64(ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-d"))
}

/// Replaces the listed values by constants and drops the nodes nothing reads any more.
fn fold(mut graph: Graph, constants: BTreeMap<String, Value>) -> Graph {
    graph.constants.extend(constants);
    // A node whose outputs are all constants now is computed: drop it.
    graph
        .nodes
        .retain(|n| !n.outputs.iter().all(|o| graph.constants.contains_key(o)));
    prune(&mut graph);
    graph
}

/// Removes nodes (and constants) that no graph output depends on.
fn prune(graph: &mut Graph) {
    let mut live: HashSet<String> = graph.outputs.iter().cloned().collect();
    let mut keep = vec![false; graph.nodes.len()];
    for (k, node) in graph.nodes.iter().enumerate().rev() {
        if node.outputs.iter().any(|o| live.contains(o)) {
            keep[k] = true;
            live.extend(node.inputs.iter().filter(|i| !i.is_empty()).cloned());
        }
    }
    let mut k = 0;
    graph.nodes.retain(|_| {
        k += 1;
        keep[k - 1]
    });
    graph.constants.retain(|name, _| live.contains(name));
}

fn with_batch(mut graph: Graph, batch: Option<usize>) -> Graph {
    for i in &mut graph.inputs {
        if let Some(d) = i.shape.first_mut() {
            *d = batch;
        }
    }
    graph
}

/// Constant Reshape targets whose leading element is the export batch, rewritten to infer it
/// (exporters that bake the batch write it first, as `x.view(b, ...)` does).
fn relax_constant_targets(graph: &Graph, batch: usize) -> (Graph, usize) {
    let mut out = graph.clone();
    let mut rewritten = 0;
    let targets: HashSet<&str> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Reshape { .. }))
        .filter_map(|n| n.inputs.get(1).map(String::as_str))
        .collect();
    for name in targets {
        let Some(Value::I64(t)) = graph.constants.get(name) else {
            continue;
        };
        let t: Vec<i64> = t.iter().copied().collect();
        if t.first() == Some(&(batch as i64))
            && !t.contains(&-1)
            && reshape_readers(graph, name).is_some()
        {
            let mut r = t.clone();
            r[0] = -1;
            out.constants.insert(name.to_string(), i64_value(r));
            rewritten += 1;
        }
    }
    (out, rewritten)
}

fn probe(graph: &Graph) -> Result<(Graph, BatchFreedom), Stop> {
    let batch = match graph.inputs.first().and_then(|i| i.shape.first()) {
        Some(Some(b)) => *b,
        Some(None) => 1,
        None => return Err("the model has no input with a batch dim".to_string().into()),
    };
    let wanted = shape_values(graph);
    let x1 = probe_inputs(graph, batch, 1)?;
    let x2 = probe_inputs(graph, batch, 2)?;
    let both = stack(&x1, &x2)?;
    let fixed = with_batch(graph.clone(), Some(batch));
    let a = run_recording(&fixed, x1, &wanted)?;
    let a2 = run(&fixed, x2, |_, _| {})?;
    let singles = [a.outputs.as_slice(), a2.as_slice()];

    // Every shape value as the export batch computes it: what a pinned graph folds.
    let pinned = || {
        let folded = a.shapes.len();
        let g = fold(fixed.clone(), a.shapes.clone().into_iter().collect());
        (g, BatchFreedom::Pinned { batch, folded })
    };

    let free = with_batch(graph.clone(), None);
    let b = match run_recording(&free, both.clone(), &wanted) {
        Ok(b) if same_rows(singles, &b.outputs) => b,
        _ => {
            // The export batch may be baked into constant reshape targets.
            let (relaxed, rewritten) = relax_constant_targets(&free, batch);
            if rewritten > 0
                && let Ok(b) = run_recording(&relaxed, both.clone(), &wanted)
                && same_rows(singles, &b.outputs)
            {
                return Ok(settle_free(relaxed, &a, &b, &both, singles, rewritten));
            }
            return Ok(pinned());
        }
    };
    Ok(settle_free(free, &a, &b, &both, singles, 0))
}

/// Folds what is batch-independent, rewrites what a reshape can infer, and verifies the result
/// once more (falling back to the unfolded graph, which is already batch-free).
fn settle_free(
    free: Graph,
    a: &Probe,
    b: &Probe,
    both: &[Value],
    singles: [&[Value]; 2],
    relaxed: usize,
) -> (Graph, BatchFreedom) {
    let mut constants: BTreeMap<String, Value> = BTreeMap::new();
    let mut rewritten = relaxed;
    for (name, small) in &a.shapes {
        let Some(large) = b.shapes.get(name) else {
            continue;
        };
        if small == large {
            constants.insert(name.clone(), small.clone());
        } else if let (Value::I64(s), Value::I64(l)) = (small, large)
            && let Some(readers) = reshape_readers(&free, name)
            && let Some(t) = inferred_target(
                &s.iter().copied().collect::<Vec<_>>(),
                &l.iter().copied().collect::<Vec<_>>(),
                &readers,
                a,
                b,
            )
        {
            constants.insert(name.clone(), i64_value(t));
            rewritten += 1;
        }
    }
    let folded = constants.len();
    let candidate = fold(free.clone(), constants);
    match run(&candidate, both.to_vec(), |_, _| {}) {
        Ok(out) if same_rows(singles, &out) => {
            (candidate, BatchFreedom::Freed { folded, rewritten })
        }
        _ => (
            free,
            BatchFreedom::Freed {
                folded: 0,
                rewritten: relaxed,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphInput;
    use crate::graph::test_node as node;

    fn ints(v: &[i64]) -> Value {
        i64_value(v.to_vec())
    }

    /// `x.view(x.size(0), 2, -1).transpose(1, 2).reshape(x.size(0), -1)` as the legacy
    /// exporter writes it: Shape → Gather → Unsqueeze → Concat into each Reshape target.
    fn shuffle_graph(batch: Option<usize>) -> Graph {
        let mut constants = BTreeMap::new();
        constants.insert("zero".into(), Value::I64(ArrayD::from_elem(IxDyn(&[]), 0)));
        constants.insert("axes0".into(), ints(&[0]));
        constants.insert("rest".into(), ints(&[2, -1]));
        constants.insert("flat".into(), ints(&[-1]));
        Graph {
            inputs: vec![GraphInput {
                name: "x".into(),
                shape: vec![batch, Some(6)],
            }],
            outputs: vec!["y".into()],
            nodes: vec![
                node("shape", Op::Shape, &["x"], &["s"]),
                node("gather", Op::Gather { axis: 0 }, &["s", "zero"], &["n"]),
                node(
                    "unsq",
                    Op::Unsqueeze { axes: None },
                    &["n", "axes0"],
                    &["n1"],
                ),
                node("cat", Op::Concat { axis: 0 }, &["n1", "rest"], &["t1"]),
                node("cat2", Op::Concat { axis: 0 }, &["n1", "flat"], &["t2"]),
                node(
                    "view",
                    Op::Reshape { allowzero: false },
                    &["x", "t1"],
                    &["v"],
                ),
                node(
                    "tr",
                    Op::Transpose {
                        perm: vec![0, 2, 1],
                    },
                    &["v"],
                    &["w"],
                ),
                node(
                    "view2",
                    Op::Reshape { allowzero: false },
                    &["w", "t2"],
                    &["y"],
                ),
            ],
            constants,
            fusions: Vec::new(),
        }
    }

    #[test]
    fn shape_subgraphs_fold_and_the_batch_stays_free() {
        let (g, how) = settle_batch(shuffle_graph(None)).unwrap();
        assert!(matches!(how, BatchFreedom::Freed { .. }), "{how:?}");
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.kind()).collect();
        assert_eq!(ops, ["Reshape", "Transpose", "Reshape"], "{how:?}");
        // Channel shuffle of [0..6] per sample at batch 3.
        let x = ArrayD::from_shape_fn(IxDyn(&[3, 6]), |i| (i[0] * 10 + i[1]) as f32);
        let y = run(&g, vec![Value::F32(x)], |_, _| {}).unwrap();
        let y = y[0].f32("y").unwrap();
        assert_eq!(y.shape(), &[3, 6]);
        let row: Vec<f32> = y.index_axis(Axis(0), 2).iter().copied().collect();
        assert_eq!(row, [20.0, 23.0, 21.0, 24.0, 22.0, 25.0]);
    }

    #[test]
    fn a_baked_batch_is_inferred_when_the_rows_agree() {
        // The same network exported at batch 1 with constant targets [1, 2, 3] and [1, 6].
        let mut g = shuffle_graph(Some(1));
        g.nodes.drain(..5);
        g.nodes[0].inputs[1] = "k1".into();
        g.nodes[2].inputs[1] = "k2".into();
        g.constants.insert("k1".into(), ints(&[1, 2, 3]));
        g.constants.insert("k2".into(), ints(&[1, 6]));
        let (g, how) = settle_batch(g).unwrap();
        assert_eq!(
            how,
            BatchFreedom::Freed {
                folded: 0,
                rewritten: 2
            }
        );
        assert_eq!(g.inputs[0].shape, vec![None, Some(6)]);
        let x = ArrayD::from_shape_fn(IxDyn(&[4, 6]), |i| i[1] as f32);
        assert!(run(&g, vec![Value::F32(x)], |_, _| {}).is_ok());
    }

    #[test]
    fn a_graph_that_mixes_samples_stays_pinned() {
        // A reshape that moves the batch out of dim 0 ([1, 6] -> [6, 1]) cannot be freed.
        let mut constants = BTreeMap::new();
        constants.insert("k".into(), ints(&[6, 1]));
        let g = Graph {
            inputs: vec![GraphInput {
                name: "x".into(),
                shape: vec![Some(1), Some(6)],
            }],
            outputs: vec!["y".into()],
            nodes: vec![
                node(
                    "view",
                    Op::Reshape { allowzero: false },
                    &["x", "k"],
                    &["v"],
                ),
                node("sm", Op::Softmax { axis: 0 }, &["v"], &["y"]),
            ],
            constants,
            fusions: Vec::new(),
        };
        let (g, how) = settle_batch(g).unwrap();
        assert_eq!(
            how,
            BatchFreedom::Pinned {
                batch: 1,
                folded: 0
            }
        );
        assert_eq!(g.inputs[0].shape[0], Some(1));
    }
}
