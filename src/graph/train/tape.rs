//! The training-mode forward: runs the graph like `graph::run`, but keeps every node's
//! operands and outputs (and the hooked weights and masks) on a [`Tape`] for the backward, uses
//! batch statistics in BatchNorm and updates its running statistics as PyTorch does.

use super::batch_norm::{RunningStatUpdate, batch_norm_train};
use super::hooks::{Masked, TrainHooks};
use crate::graph::exec::{check_inputs, node_args};
use crate::graph::ops::{self, conv_forward, linear_forward};
use crate::graph::{ConvParams, Graph, GraphError, LinearParams, Node, Op, Value};
use ndarray::{ArrayD, Ix2};
use std::collections::HashMap;

/// Whether BatchNorm normalises with batch statistics (and updates its running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `model.train()`: batch statistics, running statistics updated.
    Train,
    /// `model.eval()`: running statistics, nothing updated.
    Eval,
}

/// What the backward needs from one node's forward.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The operands as the node read them (`None` for absent optional operands).
    pub args: Vec<Option<Value>>,
    /// The outputs after the output hook.
    pub outputs: Vec<Value>,
    /// Conv / Linear: the weight actually used (after the weight hook) and its gradient mask.
    pub weight: Option<Masked>,
    /// Per output: the output hook's gradient mask (backward applies the first output's).
    pub out_masks: Vec<Option<ArrayD<f32>>>,
    /// BatchNorm: whether it normalised with batch statistics.
    pub batch_stats: bool,
}

/// The recorded forward of one batch, consumed by `backward`.
#[derive(Debug, Clone)]
pub struct Tape {
    pub(crate) mode: Mode,
    pub(crate) records: Vec<Record>,
}

impl Tape {
    /// The mode the forward ran in.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Runs `graph` on `inputs` in `mode`, calling `hooks`, and returns the graph outputs and the
/// tape. In [`Mode::Train`] BatchNorm running statistics in `graph` are updated. Graphs with
/// an LSTM are rejected: the LSTM has no backward.
pub fn forward_train(
    graph: &mut Graph,
    inputs: Vec<Value>,
    mode: Mode,
    hooks: &mut dyn TrainHooks,
) -> Result<(Vec<Value>, Tape), GraphError> {
    check_inputs(graph, &inputs)?;
    let mut env: HashMap<&str, Value> = HashMap::new();
    for (spec, value) in graph.inputs.iter().zip(inputs) {
        env.insert(spec.name.as_str(), value);
    }
    let mut records = Vec::with_capacity(graph.nodes.len());
    let mut updates = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let args: Vec<Option<Value>> = node_args(graph, node, &env)?
            .into_iter()
            .map(|a| a.cloned())
            .collect();
        let Step {
            outputs,
            weight,
            batch_stats,
        } = run_node(node, &args, mode, hooks, |u| updates.push((i, u)))?;
        let mut out_masks = Vec::with_capacity(outputs.len());
        let mut hooked = Vec::with_capacity(outputs.len());
        for out in outputs {
            match &out {
                Value::F32(v) => match hooks.output(&node.name, v) {
                    Some(m) => {
                        check_masked(&node.name, "output", v.shape(), &m)?;
                        out_masks.push(m.mask);
                        hooked.push(Value::F32(m.value));
                    }
                    None => {
                        out_masks.push(None);
                        hooked.push(out);
                    }
                },
                Value::I64(_) => {
                    out_masks.push(None);
                    hooked.push(out);
                }
            }
        }
        for (name, value) in node.outputs.iter().zip(&hooked) {
            env.insert(name.as_str(), value.clone());
        }
        records.push(Record {
            args,
            outputs: hooked,
            weight,
            out_masks,
            batch_stats,
        });
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|name| {
            env.get(name.as_str())
                .or_else(|| graph.constants.get(name))
                .cloned()
                .ok_or_else(|| GraphError::Dangling {
                    node: "<graph output>".into(),
                    value: name.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, update) in updates {
        if let Op::BatchNorm(p) = &mut graph.nodes[i].op {
            update.apply(p);
        }
    }
    Ok((outputs, Tape { mode, records }))
}

/// A hook result must keep the tensor's shape, and so must its mask.
fn check_masked(node: &str, what: &str, shape: &[usize], m: &Masked) -> Result<(), GraphError> {
    let mask_ok = m.mask.as_ref().is_none_or(|k| k.shape() == shape);
    if m.value.shape() != shape || !mask_ok {
        return Err(GraphError::Invalid {
            node: node.into(),
            detail: format!("the {what} hook changed the shape {shape:?}"),
        });
    }
    Ok(())
}

/// Passes a module's weight through the weight hook.
fn hooked_weight(
    node: &str,
    weight: &ArrayD<f32>,
    hooks: &mut dyn TrainHooks,
) -> Result<Masked, GraphError> {
    match hooks.weight(node, weight) {
        Some(m) => {
            check_masked(node, "weight", weight.shape(), &m)?;
            Ok(m)
        }
        None => Ok(Masked {
            value: weight.clone(),
            mask: None,
        }),
    }
}

/// One node's forward results.
struct Step {
    outputs: Vec<Value>,
    weight: Option<Masked>,
    batch_stats: bool,
}

impl Step {
    fn plain(outputs: Vec<Value>) -> Step {
        Step {
            outputs,
            weight: None,
            batch_stats: false,
        }
    }

    fn module(y: ArrayD<f32>, weight: Masked) -> Step {
        Step {
            outputs: vec![Value::F32(y)],
            weight: Some(weight),
            batch_stats: false,
        }
    }
}

/// One node's forward in training: hooked weights for Conv / Linear, batch statistics for
/// BatchNorm in train mode unless a hook freezes it, the inference kernels otherwise.
fn run_node(
    node: &Node,
    args: &[Option<Value>],
    mode: Mode,
    hooks: &mut dyn TrainHooks,
    mut on_update: impl FnMut(RunningStatUpdate),
) -> Result<Step, GraphError> {
    let refs: Vec<Option<&Value>> = args.iter().map(Option::as_ref).collect();
    let name = node.name.as_str();
    match &node.op {
        Op::Lstm(_) => Err(GraphError::Invalid {
            node: name.into(),
            detail: "training is not supported for LSTM (it has no backward pass)".into(),
        }),
        Op::Conv(p) => {
            let w = hooked_weight(name, &p.weight, hooks)?;
            let params = ConvParams {
                weight: w.value.clone(),
                ..p.clone()
            };
            let y = conv_forward(name, ops::f32_arg(node, &refs, 0)?, &params)?;
            Ok(Step::module(y, w))
        }
        Op::Linear(p) => {
            let w = hooked_weight(name, &p.weight.clone().into_dyn(), hooks)?;
            let params = LinearParams {
                weight: w
                    .value
                    .clone()
                    .into_dimensionality::<Ix2>()
                    .expect("hook kept the 2-d shape"),
                ..p.clone()
            };
            let y = linear_forward(name, ops::f32_arg(node, &refs, 0)?, &params)?;
            Ok(Step::module(y, w))
        }
        Op::BatchNorm(p) if mode == Mode::Train && !hooks.freeze_batch_norm(name) => {
            let (y, update) = batch_norm_train(name, ops::f32_arg(node, &refs, 0)?, p)?;
            on_update(update);
            Ok(Step {
                outputs: vec![Value::F32(y)],
                weight: None,
                batch_stats: true,
            })
        }
        _ => Ok(Step::plain(ops::eval(node, &refs)?)),
    }
}
