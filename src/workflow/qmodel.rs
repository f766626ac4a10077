//! The converted model: the prepared float graph plus one quantized op per node, run with the
//! engine's numerics.
//!
//! Keeping the float graph beside the quantized ops means every node has the same name, inputs
//! and outputs in both forms, so analysis can compare them node by node (or feed a quantized op
//! the float model's input). Ops that only move elements (flatten, reshape, transpose, nearest
//! resize, ...) run the float kernel on the integers: every 8-bit integer is exact in f32, so
//! this is exact and keeps one implementation of each op's shape rules.

use super::WorkflowError;
use crate::engine::Numerics;
use crate::graph::{self, Graph, Node, Op, ReduceParams, Reduction, Unary, Value};
use crate::qnn::dynamic::{DynamicLinear, DynamicLstm};
use crate::qnn::{
    self, AdaptiveAvgPool2d, AvgPool2d, DeQuantize, Layout, MaxPool2d, QConv, QFunctional, QLinear,
    QnnError, Quantize, RunStats,
};
use crate::tensor::{QStorage, QTensor};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use std::collections::HashMap;

/// What a node computes after convert.
#[derive(Debug, Clone, PartialEq)]
pub enum QOp {
    /// The node's float op, on float values.
    Float,
    /// The node's op on a quantized input with a kernel that keeps or fixes the qparams
    /// (ReLU, clamp, pooling, mean, sigmoid, hardsigmoid, slicing and reshapes).
    Follow,
    /// Passes its input through (a fused activation its module already applied).
    Identity,
    Quantize(Quantize),
    DeQuantize,
    Conv(Box<QConv>),
    Linear(Box<QLinear>),
    Add(QFunctional),
    /// `FloatFunctional.add_relu`: one op, its observer after the ReLU.
    AddRelu(QFunctional),
    Mul(QFunctional),
    Cat(QFunctional),
    /// `nn.quantized.Hardswish` with its observed output qparams.
    Hardswish {
        scale: f64,
        zero_point: i64,
    },
    /// A dynamically quantized Linear: float in, float out.
    DynamicLinear(Box<DynamicLinear>),
    /// A dynamically quantized LSTM, in the graph's ONNX layout (`Y [T, dirs, B, H]`).
    DynamicLstm(Box<DynamicLstm>),
}

impl QOp {
    /// A short name for listings (`qconv`, `float`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            QOp::Float => "float",
            QOp::Follow => "quantized",
            QOp::Identity => "identity",
            QOp::Quantize(_) => "quantize",
            QOp::DeQuantize => "dequantize",
            QOp::Conv(c) if c.relu => "qconv_relu",
            QOp::Conv(_) => "qconv",
            QOp::Linear(l) if l.relu => "qlinear_relu",
            QOp::Linear(_) => "qlinear",
            QOp::Add(_) => "qadd",
            QOp::AddRelu(_) => "qadd_relu",
            QOp::Hardswish { .. } => "qhardswish",
            QOp::Mul(_) => "qmul",
            QOp::Cat(_) => "qcat",
            QOp::DynamicLinear(_) => "dynamic_linear",
            QOp::DynamicLstm(_) => "dynamic_lstm",
        }
    }

    /// The `FloatFunctional` method a functional op is in PyTorch (`add`, `add_relu`, `mul`,
    /// `cat`); `None` for module ops.
    pub fn functional_method(&self) -> Option<&'static str> {
        Some(match self {
            QOp::Add(_) => "add",
            QOp::AddRelu(_) => "add_relu",
            QOp::Mul(_) => "mul",
            QOp::Cat(_) => "cat",
            _ => return None,
        })
    }

    /// Whether the op is dynamically quantized (float in, float out).
    pub fn is_dynamic(&self) -> bool {
        matches!(self, QOp::DynamicLinear(_) | QOp::DynamicLstm(_))
    }
}

/// A value flowing through the quantized model.
#[derive(Debug, Clone)]
pub enum QValue {
    Float(Value),
    Quant(QTensor),
}

impl QValue {
    /// The float view: dequantized when quantized.
    pub fn to_f32(&self) -> Option<ArrayD<f32>> {
        match self {
            QValue::Float(Value::F32(a)) => Some(a.clone()),
            QValue::Float(Value::I64(_)) => None,
            QValue::Quant(q) => Some(DeQuantize.forward(q)),
        }
    }
}

/// A converted model.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedModel {
    /// The prepared float graph (fused, with boundary stubs).
    pub graph: Graph,
    /// One op per `graph.nodes` entry.
    pub ops: Vec<QOp>,
    pub numerics: Numerics,
}

fn module_err(node: &Node, source: QnnError) -> WorkflowError {
    WorkflowError::Module {
        module: node.name.clone(),
        source,
    }
}

fn quant_arg<'a>(
    node: &Node,
    args: &[Option<&'a QValue>],
    i: usize,
) -> Result<&'a QTensor, WorkflowError> {
    match args.get(i).copied().flatten() {
        Some(QValue::Quant(q)) => Ok(q),
        _ => Err(WorkflowError::Check {
            module: node.name.clone(),
            problem: format!("operand {i} of this quantized module is not a quantized tensor"),
            fix: "re-run prepare so the boundaries are placed again".into(),
        }),
    }
}

fn float_args<'a>(
    node: &Node,
    args: &[Option<&'a QValue>],
) -> Result<Vec<Option<&'a Value>>, WorkflowError> {
    args.iter()
        .map(|a| match a {
            None => Ok(None),
            Some(QValue::Float(v)) => Ok(Some(v)),
            Some(QValue::Quant(_)) => Err(WorkflowError::Check {
                module: node.name.clone(),
                problem: "a quantized tensor reaches this float module".into(),
                fix: "re-run prepare so the boundaries are placed again".into(),
            }),
        })
        .collect()
}

/// Runs a data-movement op on the integers of `x` (module docs); one tensor per op output.
/// The ops that only move elements run on the stored bytes themselves; any other op that
/// keeps the qparams (nearest resize, expand, ...) runs its float kernel on the integers.
fn move_ints(
    node: &Node,
    x: &QTensor,
    rest: &[Option<&QValue>],
) -> Result<Vec<QTensor>, WorkflowError> {
    let mut operands = vec![None];
    operands.extend(float_args(node, rest)?);
    // The stored integers in place when they are one row-major run (every tensor the kernels
    // produce), else gathered: the op copies what it moves once, not the whole input first.
    let gathered;
    let (storage, at) = if x.is_contiguous() {
        (x.storage().as_ref(), x.storage_offset())
    } else {
        gathered = x.int_repr();
        (&gathered, 0)
    };
    let n = x.numel();
    let moved = match storage {
        QStorage::U8(v) => move_stored(node, &v[at..at + n], x.shape(), &operands, QStorage::U8),
        QStorage::I8(v) => move_stored(node, &v[at..at + n], x.shape(), &operands, QStorage::I8),
        QStorage::I32(v) => move_stored(node, &v[at..at + n], x.shape(), &operands, QStorage::I32),
    };
    match moved {
        Some(outs) => outs?
            .into_iter()
            .map(|(storage, shape)| {
                QTensor::from_int_repr(storage, &shape, x.qparams().clone())
                    .map_err(|e| module_err(node, e.into()))
            })
            .collect(),
        None => move_ints_as_floats(node, x, &operands[1..]),
    }
}

/// One output of a data-movement op on stored integers: its storage and shape.
type Stored = (QStorage, Vec<usize>);

/// [`graph::ops::shape::move_elements`] on stored integers: each output's storage and shape,
/// `None` when the op does more than move elements.
fn move_stored<T: Clone>(
    node: &Node,
    ints: &[T],
    shape: &[usize],
    operands: &[Option<&Value>],
    wrap: fn(Vec<T>) -> QStorage,
) -> Option<Result<Vec<Stored>, WorkflowError>> {
    let a = ArrayViewD::from_shape(IxDyn(shape), ints).expect("the integers match their shape");
    let outs = match graph::ops::shape::move_elements(node, &a, operands)? {
        Ok(outs) => outs,
        Err(e) => return Some(Err(e.into())),
    };
    Some(Ok(outs
        .into_iter()
        .map(|o| {
            let shape = o.shape().to_vec();
            let ints = if o.is_standard_layout() {
                // Contiguous from its offset: take the run, without a copy when it is all.
                let n = o.len();
                let (raw, offset) = o.into_raw_vec_and_offset();
                match offset.unwrap_or(0) {
                    0 if raw.len() == n => raw,
                    at => raw[at..at + n].to_vec(),
                }
            } else {
                o.iter().cloned().collect()
            };
            (wrap(ints), shape)
        })
        .collect()))
}

/// The float kernel of a qparams-keeping op run on the integers of `x`: every 8-bit integer
/// is exact in f32.
fn move_ints_as_floats(
    node: &Node,
    x: &QTensor,
    rest: &[Option<&Value>],
) -> Result<Vec<QTensor>, WorkflowError> {
    let ints: Vec<f32> = x.int_values().into_iter().map(|v| v as f32).collect();
    let as_float = Value::F32(ArrayD::from_shape_vec(IxDyn(x.shape()), ints).expect("shape"));
    let mut args = vec![Some(&as_float)];
    args.extend(rest.iter().copied());
    let outs = graph::ops::eval(node, &args)?;
    if outs.is_empty() {
        return Err(WorkflowError::Graph(graph::GraphError::Invalid {
            node: node.name.clone(),
            detail: "a data-movement op produced no tensor".into(),
        }));
    }
    outs.into_iter()
        .map(|out| {
            let Value::F32(y) = out else {
                return Err(WorkflowError::Graph(graph::GraphError::Invalid {
                    node: node.name.clone(),
                    detail: "a data-movement op produced integers from a quantized tensor".into(),
                }));
            };
            let storage = QStorage::from_i32(x.dtype(), y.iter().map(|&v| v as i32));
            QTensor::from_int_repr(storage, y.shape(), x.qparams().clone())
                .map_err(|e| module_err(node, e.into()))
        })
        .collect()
}

/// The normalized axes a Reduce node reduces (attribute, or constant operand 1; all dims when
/// neither names any).
fn reduce_axes(
    node: &Node,
    p: &ReduceParams,
    rest: &[Option<&QValue>],
    rank: usize,
) -> Result<Vec<usize>, WorkflowError> {
    let given: Vec<i64> = match (&p.axes, rest.first().copied().flatten()) {
        (Some(a), _) => a.clone(),
        (None, Some(QValue::Float(Value::I64(a)))) => a.iter().copied().collect(),
        _ => Vec::new(),
    };
    if given.is_empty() {
        return Ok((0..rank).collect());
    }
    given
        .iter()
        .map(|&a| {
            let d = if a < 0 { a + rank as i64 } else { a };
            usize::try_from(d)
                .ok()
                .filter(|&d| d < rank)
                .ok_or_else(|| {
                    module_err(
                        node,
                        QnnError::Shape {
                            op: "mean",
                            detail: format!("axis {a} outside a {rank}-D input"),
                        },
                    )
                })
        })
        .collect()
}

/// The quantized kernel of a `Follow` node; one tensor per output.
fn follow(
    node: &Node,
    args: &[Option<&QValue>],
    numerics: Numerics,
) -> Result<Vec<QTensor>, WorkflowError> {
    let x = quant_arg(node, args, 0)?;
    let err = |e| module_err(node, e);
    let two = |v: &[usize]| [v[0], v[1]];
    let one = match &node.op {
        Op::Relu => qnn::activation::relu(x).map_err(err),
        Op::Clip { min, max } if *min == 0.0 && *max == 6.0 => {
            qnn::activation::relu6(x).map_err(err)
        }
        Op::Clip { min, max } => {
            let finite = |v: f32| v.is_finite().then_some(v);
            qnn::activation::clamp(x, finite(*min), finite(*max)).map_err(err)
        }
        Op::Sigmoid => qnn::activation::sigmoid(x, numerics).map_err(err),
        Op::Unary(Unary::HardSigmoid { .. }) => {
            qnn::activation::hardsigmoid(x, numerics).map_err(err)
        }
        Op::Reduce(p) if p.kind == Reduction::Mean => {
            let axes = reduce_axes(node, p, &args[1..], x.ndim())?;
            if axes.is_empty() && p.noop_with_empty_axes {
                Ok(x.clone())
            } else {
                qnn::pool::mean(x, &axes, p.keepdims, numerics).map_err(err)
            }
        }
        Op::Tanh => qnn::activation::tanh(x, numerics).map_err(err),
        Op::MaxPool(p) => MaxPool2d {
            kernel: two(&p.kernel),
            stride: two(&p.stride),
            padding: two(&p.pad_begin),
            dilation: two(&p.dilation),
            ceil_mode: p.ceil_mode,
        }
        .forward(x, numerics)
        .map_err(err),
        Op::AvgPool(p) => AvgPool2d {
            kernel: two(&p.kernel),
            stride: two(&p.stride),
            padding: two(&p.pad_begin),
            ceil_mode: p.ceil_mode,
            count_include_pad: p.count_include_pad,
            divisor_override: None,
            layout: Layout::Nchw,
        }
        .forward(x, numerics)
        .map_err(err),
        Op::GlobalAvgPool => AdaptiveAvgPool2d::new([1, 1])
            .forward(x, numerics)
            .map_err(err),
        Op::Identity => Ok(x.clone()),
        _ => return move_ints(node, x, &args[1..]),
    };
    Ok(vec![one?])
}

/// A quantized model runs a batch as parts in parallel when its ops keep samples apart; its
/// dynamic ops do not (their activation ranges are the whole batch's).
impl graph::rows::Forward for QuantizedModel {
    type Error = WorkflowError;

    fn forward_shapes(
        &self,
        inputs: Vec<Value>,
        shape: &mut dyn FnMut(&str, &[usize]),
    ) -> Result<Vec<Value>, WorkflowError> {
        self.run(inputs, |node, outs| {
            for (name, v) in node.outputs.iter().zip(outs) {
                match v {
                    QValue::Float(f) => shape(name, f.shape()),
                    QValue::Quant(q) => shape(name, q.shape()),
                }
            }
        })
    }

    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn barred(&self, node: usize) -> Option<&'static str> {
        match self.ops.get(node) {
            Some(QOp::DynamicLinear(_) | QOp::DynamicLstm(_)) => {
                Some("dynamic quantization takes its activation range from the whole batch")
            }
            _ => None,
        }
    }
}

impl QuantizedModel {
    /// Runs the model on float `inputs` (one per model input) and returns float outputs.
    /// `on_node` sees every node's outputs as they are produced.
    pub fn run(
        &self,
        inputs: Vec<Value>,
        mut on_node: impl FnMut(&Node, &[QValue]),
    ) -> Result<Vec<Value>, WorkflowError> {
        self.run_with_stats(inputs, |node, outs, _| on_node(node, outs))
    }

    /// [`QuantizedModel::run`], also handing `on_node` what each node's kernel observed (the
    /// int16 pair saturations of quantized conv and linear; zero elsewhere).
    pub fn run_with_stats(
        &self,
        inputs: Vec<Value>,
        mut on_node: impl FnMut(&Node, &[QValue], RunStats),
    ) -> Result<Vec<Value>, WorkflowError> {
        graph::check_inputs(&self.graph, &inputs)?;
        let mut env: HashMap<&str, QValue> = HashMap::new();
        for (spec, value) in self.graph.inputs.iter().zip(inputs) {
            env.insert(spec.name.as_str(), QValue::Float(value));
        }
        let constants: HashMap<&str, QValue> = self
            .graph
            .constants
            .iter()
            .map(|(k, v)| (k.as_str(), QValue::Float(v.clone())))
            .collect();
        let last_use = graph::last_uses(&self.graph);
        for (i, (node, op)) in self.graph.nodes.iter().zip(&self.ops).enumerate() {
            if crate::cancel::is_requested() {
                return Err(graph::GraphError::Cancelled.into());
            }
            let args: Vec<Option<&QValue>> = node
                .inputs
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        return Ok(None);
                    }
                    env.get(name.as_str())
                        .or_else(|| constants.get(name.as_str()))
                        .map(Some)
                        .ok_or_else(|| graph::GraphError::Dangling {
                            node: node.name.clone(),
                            value: name.clone(),
                        })
                })
                .collect::<Result<_, _>>()?;
            let (outs, stats) = self.eval(node, op, &args)?;
            on_node(node, &outs, stats);
            for name in &node.inputs {
                if last_use.get(name.as_str()) == Some(&i) && !self.graph.outputs.contains(name) {
                    env.remove(name.as_str());
                }
            }
            for (name, value) in node.outputs.iter().zip(outs) {
                env.insert(name.as_str(), value);
            }
        }
        self.graph
            .outputs
            .iter()
            .map(|name| match env.remove(name.as_str()) {
                Some(QValue::Float(v)) => Ok(v),
                Some(QValue::Quant(q)) => Ok(Value::F32(DeQuantize.forward(&q))),
                None => Err(WorkflowError::Graph(graph::GraphError::Dangling {
                    node: "<graph output>".into(),
                    value: name.clone(),
                })),
            })
            .collect()
    }

    /// Runs node `index` alone on `args` (its operands, in order): what analysis uses to feed
    /// a quantized op the float model's inputs. Returns the outputs and what the kernel observed.
    pub fn eval_node(
        &self,
        index: usize,
        args: &[Option<&QValue>],
    ) -> Result<(Vec<QValue>, RunStats), WorkflowError> {
        self.eval(&self.graph.nodes[index], &self.ops[index], args)
    }

    /// One node's outputs and its kernel's statistics.
    fn eval(
        &self,
        node: &Node,
        op: &QOp,
        args: &[Option<&QValue>],
    ) -> Result<(Vec<QValue>, RunStats), WorkflowError> {
        let n = self.numerics;
        let err = |e| module_err(node, e);
        let q = |t: QTensor| Ok(vec![QValue::Quant(t)]);
        // Only conv and linear report statistics; every other kernel leaves the default.
        let mut stats = RunStats::default();
        let outs: Result<Vec<QValue>, WorkflowError> = match op {
            QOp::Float => Ok(graph::ops::eval(node, &float_args(node, args)?)?
                .into_iter()
                .map(QValue::Float)
                .collect()),
            QOp::Follow => Ok(follow(node, args, n)?
                .into_iter()
                .map(QValue::Quant)
                .collect()),
            QOp::Hardswish { scale, zero_point } => {
                q(
                    qnn::activation::hardswish(quant_arg(node, args, 0)?, *scale, *zero_point, n)
                        .map_err(err)?,
                )
            }
            // `first`: a loaded model may put an identity on a node without operands.
            QOp::Identity => Ok(vec![args.first().copied().flatten().cloned().ok_or_else(
                || {
                    module_err(
                        node,
                        QnnError::Shape {
                            op: "identity",
                            detail: "no input".into(),
                        },
                    )
                },
            )?]),
            QOp::Quantize(m) => {
                let x = float_args(node, args)?;
                let x = x[0].ok_or_else(|| {
                    module_err(
                        node,
                        QnnError::Shape {
                            op: "quantize",
                            detail: "no input".into(),
                        },
                    )
                })?;
                q(m.forward(x.f32(&node.name)?).map_err(err)?)
            }
            QOp::DeQuantize => Ok(vec![QValue::Float(Value::F32(
                DeQuantize.forward(quant_arg(node, args, 0)?),
            ))]),
            QOp::Conv(c) => {
                let (y, s) = c.forward(quant_arg(node, args, 0)?, n).map_err(err)?;
                stats = s;
                q(y)
            }
            QOp::Linear(l) => {
                let (y, s) = l.forward(quant_arg(node, args, 0)?, n).map_err(err)?;
                stats = s;
                q(y)
            }
            QOp::Add(f) => {
                let (a, b) = (quant_arg(node, args, 0)?, quant_arg(node, args, 1)?);
                q(f.add(a, b, n).map_err(err)?)
            }
            QOp::AddRelu(f) => {
                let (a, b) = (quant_arg(node, args, 0)?, quant_arg(node, args, 1)?);
                q(f.add_relu(a, b, n).map_err(err)?)
            }
            QOp::Mul(f) => {
                let (a, b) = (quant_arg(node, args, 0)?, quant_arg(node, args, 1)?);
                q(f.mul(a, b).map_err(err)?)
            }
            QOp::Cat(f) => {
                let Op::Concat { axis } = node.op else {
                    return Err(WorkflowError::Check {
                        module: node.name.clone(),
                        problem: format!("a quantized cat on a {} node", node.op.kind()),
                        fix: "re-run convert".into(),
                    });
                };
                let xs = (0..args.len())
                    .map(|i| quant_arg(node, args, i))
                    .collect::<Result<Vec<_>, _>>()?;
                q(f.cat(&xs, axis).map_err(err)?)
            }
            QOp::DynamicLstm(m) => {
                let x = float_args(node, args)?;
                let f32_at = |i: usize| -> Result<Option<&ArrayD<f32>>, WorkflowError> {
                    x.get(i)
                        .copied()
                        .flatten()
                        .map(|v| v.f32(&node.name))
                        .transpose()
                        .map_err(Into::into)
                };
                let input = f32_at(0)?.ok_or_else(|| {
                    module_err(
                        node,
                        QnnError::Shape {
                            op: "lstm_dynamic",
                            detail: "no input".into(),
                        },
                    )
                })?;
                let out = m
                    .forward(input, f32_at(5)?, f32_at(6)?, n.engine)
                    .map_err(err)?;
                // [T, B, dirs·H] → ONNX's [T, dirs, B, H].
                let (t, b) = (out.output.shape()[0], out.output.shape()[1]);
                let dirs = m.config.directions();
                let y = out
                    .output
                    .into_shape_with_order(IxDyn(&[t, b, dirs, m.config.hidden_size]))
                    .expect("LSTM output shape")
                    .permuted_axes(IxDyn(&[0, 2, 1, 3]))
                    .as_standard_layout()
                    .into_owned();
                Ok([y, out.h_n, out.c_n]
                    .into_iter()
                    .map(|a| QValue::Float(Value::F32(a)))
                    .collect())
            }
            QOp::DynamicLinear(m) => {
                let x = float_args(node, args)?;
                let x = x[0].ok_or_else(|| {
                    module_err(
                        node,
                        QnnError::Shape {
                            op: "linear_dynamic",
                            detail: "no input".into(),
                        },
                    )
                })?;
                Ok(vec![QValue::Float(Value::F32(
                    m.forward(x.f32(&node.name)?, n.engine).map_err(err)?,
                ))])
            }
        };
        Ok((outs?, stats))
    }

    /// The output qparams of every quantized node (per-tensor scale, zero point), by node name.
    pub fn output_qparams(&self) -> Vec<(String, f64, i64)> {
        self.graph
            .nodes
            .iter()
            .zip(&self.ops)
            .filter_map(|(node, op)| {
                let (s, z) = match op {
                    QOp::Quantize(m) => (m.scale, m.zero_point),
                    QOp::Conv(c) => (c.out_scale, c.out_zero_point),
                    QOp::Linear(l) => (l.out_scale, l.out_zero_point),
                    QOp::Add(f) | QOp::AddRelu(f) | QOp::Mul(f) | QOp::Cat(f) => {
                        (f.scale, f.zero_point)
                    }
                    QOp::Hardswish { scale, zero_point } => (*scale, *zero_point),
                    _ => return None,
                };
                Some((node.name.clone(), s, z))
            })
            .collect()
    }
}
