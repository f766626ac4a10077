//! Reverse-mode differentiation over a [`Tape`]: nodes are visited in reverse order, each
//! node's output gradient (times the output hook's mask) is turned into operand and parameter
//! gradients, and operand gradients accumulate on the values they came from.

use super::batch_norm::batch_norm_backward;
use super::conv::conv_backward;
use super::linear::{linear_backward, matmul_backward};
use super::pointwise::{activation_backward, binary_backward, softmax_backward};
use super::pool::{global_avg_pool_backward, pool_backward};
use super::shape::{concat_back, gather_back, reshape_back, select_back, transpose_back};
use super::tape::{Record, Tape};
use crate::graph::{Graph, GraphError, Node, Op};
use ndarray::{Array1, ArrayD};
use std::collections::{BTreeMap, HashMap};

/// The result of a backward pass.
#[derive(Debug, Clone, Default)]
pub struct Gradients {
    /// Parameter gradients by PyTorch name (`fc1.weight`, `bn.bias`), weight masks applied.
    pub params: BTreeMap<String, ArrayD<f32>>,
    /// Gradients of float values (graph inputs and intermediate values) that received one.
    pub values: HashMap<String, ArrayD<f32>>,
}

/// Gradients of a module op: its input, its weight (BatchNorm: γ) and bias (BatchNorm: β).
pub(crate) struct ModuleGrads {
    pub dx: ArrayD<f32>,
    pub dw: ArrayD<f32>,
    pub db: Option<Array1<f32>>,
}

/// Operand and parameter gradients of one node.
struct NodeGrads {
    operands: Vec<Option<ArrayD<f32>>>,
    params: Vec<(&'static str, ArrayD<f32>)>,
}

/// Back-propagates `output_grads` (one per graph output, the gradient of the loss with respect
/// to it) through the forward recorded in `tape`, which must come from `graph` with no
/// parameter change since.
pub fn backward(
    graph: &Graph,
    tape: &Tape,
    output_grads: Vec<ArrayD<f32>>,
) -> Result<Gradients, GraphError> {
    if tape.records.len() != graph.nodes.len() || output_grads.len() != graph.outputs.len() {
        return Err(GraphError::Invalid {
            node: "<backward>".into(),
            detail: format!(
                "the tape has {} nodes and the graph {}; {} output gradient(s) for {} output(s)",
                tape.records.len(),
                graph.nodes.len(),
                output_grads.len(),
                graph.outputs.len()
            ),
        });
    }
    let shapes = value_shapes(graph, tape);
    let mut grads: HashMap<String, ArrayD<f32>> = HashMap::new();
    for (name, g) in graph.outputs.iter().zip(output_grads) {
        accumulate(&mut grads, &shapes, name, g)?;
    }
    let mut params = BTreeMap::new();
    for (node, rec) in graph.nodes.iter().zip(&tape.records).rev() {
        let Some(name) = node.outputs.first() else {
            continue;
        };
        let Some(mut dy) = grads.get(name).cloned() else {
            continue;
        };
        if let Some(Some(mask)) = rec.out_masks.first() {
            dy *= mask;
        }
        let ng = node_backward(node, rec, &dy)?;
        for (suffix, mut g) in ng.params {
            if suffix == "weight"
                && let Some(Some(mask)) = rec.weight.as_ref().map(|w| &w.mask)
            {
                g *= mask;
            }
            params.insert(format!("{}.{suffix}", node.name), g);
        }
        for (input, g) in node.inputs.iter().zip(ng.operands) {
            if let Some(g) = g
                && !input.is_empty()
                && !graph.constants.contains_key(input)
            {
                accumulate(&mut grads, &shapes, input, g)?;
            }
        }
    }
    Ok(Gradients {
        params,
        values: grads,
    })
}

/// Shapes of every value produced during the recorded forward.
fn value_shapes<'a>(graph: &'a Graph, tape: &Tape) -> HashMap<&'a str, Vec<usize>> {
    let mut shapes = HashMap::new();
    for (node, rec) in graph.nodes.iter().zip(&tape.records) {
        for (name, arg) in node.inputs.iter().zip(&rec.args) {
            if let Some(v) = arg {
                shapes.insert(name.as_str(), v.shape().to_vec());
            }
        }
        for (name, v) in node.outputs.iter().zip(&rec.outputs) {
            shapes.insert(name.as_str(), v.shape().to_vec());
        }
    }
    shapes
}

fn accumulate(
    grads: &mut HashMap<String, ArrayD<f32>>,
    shapes: &HashMap<&str, Vec<usize>>,
    name: &str,
    g: ArrayD<f32>,
) -> Result<(), GraphError> {
    if shapes.get(name).is_some_and(|s| s.as_slice() != g.shape()) {
        return Err(GraphError::Shape {
            node: name.into(),
            detail: format!(
                "gradient of shape {:?} for a value of shape {:?}",
                g.shape(),
                shapes[name]
            ),
        });
    }
    match grads.get_mut(name) {
        Some(acc) => *acc += &g,
        None => {
            grads.insert(name.into(), g);
        }
    }
    Ok(())
}

/// Operand `i` of a recorded node as f32.
fn operand<'a>(node: &Node, rec: &'a Record, i: usize) -> Result<&'a ArrayD<f32>, GraphError> {
    rec.args
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| GraphError::Invalid {
            node: node.name.clone(),
            detail: format!("operand {i} is missing"),
        })?
        .f32(&node.name)
}

fn output<'a>(node: &Node, rec: &'a Record) -> Result<&'a ArrayD<f32>, GraphError> {
    rec.outputs
        .first()
        .ok_or_else(|| GraphError::Invalid {
            node: node.name.clone(),
            detail: "no output recorded".into(),
        })?
        .f32(&node.name)
}

/// The weight the forward used (after the weight hook).
fn used_weight<'a>(node: &Node, rec: &'a Record) -> Result<&'a ArrayD<f32>, GraphError> {
    rec.weight
        .as_ref()
        .map(|w| &w.value)
        .ok_or_else(|| GraphError::Invalid {
            node: node.name.clone(),
            detail: "the tape holds no weight for this node".into(),
        })
}

fn only(g: ArrayD<f32>) -> NodeGrads {
    NodeGrads {
        operands: vec![Some(g)],
        params: Vec::new(),
    }
}

fn module(ModuleGrads { dx, dw, db }: ModuleGrads) -> NodeGrads {
    let mut params = vec![("weight", dw)];
    params.extend(db.map(|b| ("bias", b.into_dyn())));
    NodeGrads {
        operands: vec![Some(dx)],
        params,
    }
}

fn node_backward(node: &Node, rec: &Record, dy: &ArrayD<f32>) -> Result<NodeGrads, GraphError> {
    let name = node.name.as_str();
    let x = || operand(node, rec, 0);
    let input_shape = |i: usize| {
        rec.args
            .get(i)
            .and_then(Option::as_ref)
            .map(|v| v.shape().to_vec())
            .unwrap_or_default()
    };
    Ok(match &node.op {
        Op::Conv(p) => module(conv_backward(name, x()?, used_weight(node, rec)?, p, dy)?),
        Op::Linear(p) => {
            let w = used_weight(node, rec)?;
            module(linear_backward(name, x()?, w, p.bias.is_some(), dy)?)
        }
        Op::BatchNorm(p) => module(batch_norm_backward(name, x()?, dy, p, rec.batch_stats)?),
        Op::MatMul => {
            let (da, db) = matmul_backward(name, x()?, operand(node, rec, 1)?, dy)?;
            NodeGrads {
                operands: vec![Some(da), Some(db)],
                params: Vec::new(),
            }
        }
        op @ (Op::Relu | Op::Clip { .. } | Op::Sigmoid | Op::Tanh) => {
            only(activation_backward(op, x()?, output(node, rec)?, dy))
        }
        Op::Softmax { axis } => only(softmax_backward(name, output(node, rec)?, dy, *axis)?),
        Op::MaxPool(p) => only(pool_backward(name, x()?, p, true, dy)?),
        Op::AvgPool(p) => only(pool_backward(name, x()?, p, false, dy)?),
        Op::GlobalAvgPool => only(global_avg_pool_backward(x()?.shape(), dy)),
        op @ (Op::Add | Op::Sub | Op::Mul | Op::Div) => {
            let (da, db) = binary_backward(name, op, x()?, operand(node, rec, 1)?, dy)?;
            NodeGrads {
                operands: vec![Some(da), Some(db)],
                params: Vec::new(),
            }
        }
        Op::Concat { axis } => {
            let shapes: Vec<Vec<usize>> = (0..rec.args.len()).map(input_shape).collect();
            let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
            NodeGrads {
                operands: concat_back(name, dy, &refs, *axis)?
                    .into_iter()
                    .map(Some)
                    .collect(),
                params: Vec::new(),
            }
        }
        Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Identity
        | Op::QuantStub
        | Op::DeQuantStub => only(reshape_back(name, dy, &input_shape(0))?),
        Op::Transpose { perm } => only(transpose_back(dy, perm)),
        Op::Gather { axis } => {
            let idx =
                rec.args
                    .get(1)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| GraphError::Invalid {
                        node: name.into(),
                        detail: "operand 1 is missing".into(),
                    })?;
            only(gather_back(name, &input_shape(0), idx, dy, *axis)?)
        }
        Op::Slice => only(select_back(node, &rec.args, dy)?),
        // Their operands are shapes: nothing to differentiate.
        Op::Shape | Op::ConstantOfShape { .. } => NodeGrads {
            operands: Vec::new(),
            params: Vec::new(),
        },
        Op::Lstm(_)
        | Op::Resize { .. }
        | Op::LayerNorm(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Reduce(_)
        | Op::Split { .. }
        | Op::Expand
        | Op::Range
        | Op::Tile
        | Op::QuantizeLinear { .. }
        | Op::DequantizeLinear { .. } => {
            return Err(GraphError::Invalid {
                node: name.into(),
                detail: format!("{} has no backward pass", node.op.kind()),
            });
        }
    })
}

/// The row-major values of `a`: borrowed when it is already in standard layout, gathered in
/// logical order otherwise.
pub(super) fn row_major(a: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}
