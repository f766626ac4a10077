//! One graph node → the ONNX node(s) computing it: the reverse of the importer's
//! `import::onnx::convert`, written for one opset ([`OnnxGraph::opset`], 17 or newer) so the
//! result imports back into qlab unchanged. Module weights come from a [`Weights`] source, which
//! decides whether they are float initializers or integers behind a DequantizeLinear.

use super::ExportError;
use super::proto_build::{
    Elem, f32_tensor, float_attr, i64_tensor, int_attr, ints_attr, node, sizes_attr, string_attr,
    tensor_attr, value_tensor,
};
use crate::graph::{CastTo, Node, Op, PoolParams, ResizeMode, Unary, Value};
use crate::import::onnx::proto::{AttributeProto, NodeProto, TensorProto};
use std::collections::HashSet;

/// The nodes and initializers of the graph being written, with the names already taken.
pub struct OnnxGraph {
    pub opset: i64,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    taken: HashSet<String>,
}

/// How a Linear's weight is laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearForm {
    /// `Gemm(x, W[out, in], b, transB=1)`: 2-d inputs.
    Gemm,
    /// `MatMul(x, Wᵀ[in, out]) + b`: inputs of other ranks.
    MatMul,
}

impl LinearForm {
    /// The form a Linear takes for an input of `rank` dims.
    pub fn for_rank(rank: usize) -> LinearForm {
        if rank == 2 {
            LinearForm::Gemm
        } else {
            LinearForm::MatMul
        }
    }
}

/// Where Conv and Linear weights and biases come from.
pub trait Weights {
    /// The name of a value holding `node`'s weight (`[out, in, k...]`, or `[in, out]` for
    /// [`LinearForm::MatMul`]), adding whatever computes it to `g`.
    fn weight(
        &mut self,
        g: &mut OnnxGraph,
        node: &Node,
        form: LinearForm,
    ) -> Result<String, ExportError>;
    /// The name of a value holding `node`'s bias, if it has one.
    fn bias(&mut self, g: &mut OnnxGraph, node: &Node) -> Result<Option<String>, ExportError>;
}

impl OnnxGraph {
    pub fn new(opset: i64, taken: impl IntoIterator<Item = String>) -> OnnxGraph {
        OnnxGraph {
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
            taken: taken.into_iter().collect(),
        }
    }

    /// `base`, or `base_1`, `base_2`, ... : a value or node name not used yet.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 0;
        while self.taken.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.taken.insert(name.clone());
        name
    }

    /// Adds an initializer under a fresh name based on `base`; returns the name.
    pub fn initializer(&mut self, base: &str, make: impl FnOnce(&str) -> TensorProto) -> String {
        let name = self.fresh(base);
        self.initializers.push(make(&name));
        name
    }

    fn ints(&mut self, base: &str, v: &[i64]) -> String {
        self.initializer(base, |n| i64_tensor(n, &[v.len()], v.iter().copied()))
    }

    fn scalar(&mut self, base: &str, v: f32) -> String {
        self.initializer(base, |n| f32_tensor(n, &[], [v]))
    }

    pub fn push(&mut self, n: NodeProto) {
        self.nodes.push(n);
    }
}

fn pool_attrs(p: &PoolParams, average: bool) -> Vec<AttributeProto> {
    let mut a = vec![
        sizes_attr("kernel_shape", &p.kernel),
        sizes_attr("strides", &p.stride),
        sizes_attr("pads", &[p.pad_begin.clone(), p.pad_end.clone()].concat()),
        int_attr("ceil_mode", i64::from(p.ceil_mode)),
    ];
    if average {
        a.push(int_attr(
            "count_include_pad",
            i64::from(p.count_include_pad),
        ));
    } else {
        a.push(sizes_attr("dilations", &p.dilation));
    }
    a
}

/// Emits `n` reading `inputs` and writing `outputs` (the node's own lists, possibly renamed);
/// `input_rank` is the rank of its first operand, which picks a Linear's form.
pub fn emit(
    g: &mut OnnxGraph,
    n: &Node,
    inputs: &[String],
    outputs: &[String],
    input_rank: Option<usize>,
    weights: &mut dyn Weights,
) -> Result<(), ExportError> {
    let name = n.name.as_str();
    let unsupported = |why: &str| ExportError::Unsupported {
        layer: n.name.clone(),
        op: n.op.kind().to_string(),
        why: why.to_string(),
    };
    let x = || inputs.first().cloned().unwrap_or_default();
    let outs = outputs.to_vec();
    let simple = |g: &mut OnnxGraph, op: &str, attrs: Vec<AttributeProto>| {
        g.push(node(op, name, inputs.to_vec(), outs.clone(), attrs));
    };
    match &n.op {
        Op::Conv(p) => {
            let w = weights.weight(g, n, LinearForm::Gemm)?;
            let mut ins = vec![x(), w];
            ins.extend(weights.bias(g, n)?);
            let kernel = &p.weight.shape()[2..];
            let attrs = vec![
                sizes_attr("kernel_shape", kernel),
                sizes_attr("strides", &p.stride),
                sizes_attr("pads", &[p.pad_begin.clone(), p.pad_end.clone()].concat()),
                sizes_attr("dilations", &p.dilation),
                int_attr("group", p.groups as i64),
            ];
            g.push(node("Conv", name, ins, outs, attrs));
        }
        Op::Linear(_) => {
            let rank = input_rank.ok_or_else(|| unsupported("its input's rank is unknown"))?;
            let form = LinearForm::for_rank(rank);
            let w = weights.weight(g, n, form)?;
            let b = weights.bias(g, n)?;
            match form {
                LinearForm::Gemm => {
                    let mut ins = vec![x(), w];
                    ins.extend(b);
                    g.push(node("Gemm", name, ins, outs, vec![int_attr("transB", 1)]));
                }
                LinearForm::MatMul => match b {
                    None => g.push(node("MatMul", name, vec![x(), w], outs, vec![])),
                    Some(b) => {
                        let product = g.fresh(&format!("{name}/MatMul_output"));
                        let mm = format!("{name}/MatMul");
                        g.push(node(
                            "MatMul",
                            &mm,
                            vec![x(), w],
                            vec![product.clone()],
                            vec![],
                        ));
                        g.push(node("Add", name, vec![product, b], outs, vec![]));
                    }
                },
            }
        }
        Op::BatchNorm(p) => {
            let t = |g: &mut OnnxGraph, what: &str, v: &ndarray::Array1<f32>| {
                g.initializer(&format!("{name}.{what}"), |nm| {
                    f32_tensor(nm, &[v.len()], v.iter().copied())
                })
            };
            let ins = vec![
                x(),
                t(g, "weight", &p.weight),
                t(g, "bias", &p.bias),
                t(g, "running_mean", &p.running_mean),
                t(g, "running_var", &p.running_var),
            ];
            let attrs = vec![
                float_attr("epsilon", p.eps),
                float_attr("momentum", 1.0 - p.momentum),
            ];
            g.push(node("BatchNormalization", name, ins, outs, attrs));
        }
        Op::LayerNorm(p) => {
            let mut ins = vec![x()];
            ins.push(g.initializer(&format!("{name}.weight"), |nm| {
                f32_tensor(nm, p.weight.shape(), p.weight.iter().copied())
            }));
            if let Some(b) = &p.bias {
                ins.push(g.initializer(&format!("{name}.bias"), |nm| {
                    f32_tensor(nm, b.shape(), b.iter().copied())
                }));
            }
            let attrs = vec![int_attr("axis", p.axis), float_attr("epsilon", p.eps)];
            g.push(node("LayerNormalization", name, ins, outs, attrs));
        }
        Op::Lstm(_) => return Err(unsupported("LSTM export is not implemented")),
        Op::MatMul => simple(g, "MatMul", vec![]),
        Op::Relu => simple(g, "Relu", vec![]),
        Op::Clip { min, max } => {
            let bound = |g: &mut OnnxGraph, what: &str, v: f32| {
                if v.is_finite() {
                    g.scalar(&format!("{name}.{what}"), v)
                } else {
                    String::new()
                }
            };
            let ins = vec![x(), bound(g, "min", *min), bound(g, "max", *max)];
            g.push(node("Clip", name, ins, outs, vec![]));
        }
        Op::Sigmoid => simple(g, "Sigmoid", vec![]),
        Op::Tanh => simple(g, "Tanh", vec![]),
        Op::Softmax { axis } => simple(g, "Softmax", vec![int_attr("axis", *axis)]),
        Op::MaxPool(p) => simple(g, "MaxPool", pool_attrs(p, false)),
        Op::AvgPool(p) => simple(g, "AveragePool", pool_attrs(p, true)),
        Op::GlobalAvgPool => simple(g, "GlobalAveragePool", vec![]),
        Op::Add => simple(g, "Add", vec![]),
        Op::Sub => simple(g, "Sub", vec![]),
        Op::Mul => simple(g, "Mul", vec![]),
        Op::Div => simple(g, "Div", vec![]),
        Op::Concat { axis } => simple(g, "Concat", vec![int_attr("axis", *axis)]),
        Op::Flatten { axis } => simple(g, "Flatten", vec![int_attr("axis", *axis)]),
        Op::Reshape { allowzero } => simple(
            g,
            "Reshape",
            vec![int_attr("allowzero", i64::from(*allowzero))],
        ),
        Op::Transpose { perm } => simple(g, "Transpose", vec![sizes_attr("perm", perm)]),
        Op::Squeeze { axes } | Op::Unsqueeze { axes } => {
            let op = n.op.kind();
            let mut ins = vec![x()];
            match axes {
                Some(a) => ins.push(g.ints(&format!("{name}.axes"), a)),
                None => ins.extend(inputs.get(1).cloned()),
            }
            g.push(node(op, name, ins, outs, vec![]));
        }
        Op::Gather { axis } => simple(g, "Gather", vec![int_attr("axis", *axis)]),
        Op::Shape => simple(g, "Shape", vec![]),
        Op::ConstantOfShape { value } => {
            let t = value_tensor("value", value);
            simple(g, "ConstantOfShape", vec![tensor_attr("value", t)])
        }
        Op::Slice => simple(g, "Slice", vec![]),
        Op::Identity | Op::QuantStub | Op::DeQuantStub => simple(g, "Identity", vec![]),
        Op::Resize {
            mode,
            align_corners,
        } => {
            let attrs = match (mode, align_corners) {
                (ResizeMode::Nearest, _) => vec![
                    string_attr("mode", "nearest"),
                    string_attr("coordinate_transformation_mode", "asymmetric"),
                    string_attr("nearest_mode", "floor"),
                ],
                (ResizeMode::Bilinear, false) => vec![
                    string_attr("mode", "linear"),
                    string_attr("coordinate_transformation_mode", "pytorch_half_pixel"),
                ],
                (ResizeMode::Bilinear, true) => vec![
                    string_attr("mode", "linear"),
                    string_attr("coordinate_transformation_mode", "align_corners"),
                ],
            };
            let at = |i: usize| inputs.get(i).cloned().unwrap_or_default();
            let mut ins = vec![x(), String::new(), at(1), at(2)];
            while ins.last().is_some_and(String::is_empty) {
                ins.pop();
            }
            g.push(node("Resize", name, ins, outs, attrs));
        }
        Op::Unary(u) => {
            let (op, attrs) = match u {
                Unary::HardSwish => ("HardSwish", vec![]),
                Unary::HardSigmoid { alpha, beta } => (
                    "HardSigmoid",
                    vec![float_attr("alpha", *alpha), float_attr("beta", *beta)],
                ),
                Unary::Gelu { tanh } => (
                    "Gelu",
                    vec![string_attr(
                        "approximate",
                        if *tanh { "tanh" } else { "none" },
                    )],
                ),
                _ => (n.op.kind(), vec![]),
            };
            simple(g, op, attrs)
        }
        Op::Binary(b) => {
            let attrs = match b {
                crate::graph::Binary::Mod { fmod } => vec![int_attr("fmod", i64::from(*fmod))],
                _ => vec![],
            };
            simple(g, n.op.kind(), attrs)
        }
        Op::Where => simple(g, "Where", vec![]),
        Op::Cast { to } => {
            let t = match to {
                CastTo::Float => Elem::Float as i64,
                CastTo::Int => Elem::Int64 as i64,
                CastTo::Bool => 9,
            };
            simple(g, "Cast", vec![int_attr("to", t)])
        }
        Op::Reduce(r) => {
            // ReduceSum takes its axes as an input from opset 13, the others from 18.
            let as_input = n.op.kind() == "ReduceSum" || g.opset >= 18;
            let mut ins = vec![x()];
            let mut attrs = vec![int_attr("keepdims", i64::from(r.keepdims))];
            match (&r.axes, as_input) {
                (Some(a), true) => ins.push(g.ints(&format!("{name}.axes"), a)),
                (Some(a), false) => attrs.push(ints_attr("axes", a.iter().copied())),
                (None, _) => ins.extend(inputs.get(1).cloned()),
            }
            if r.noop_with_empty_axes {
                attrs.push(int_attr("noop_with_empty_axes", 1));
            }
            g.push(node(n.op.kind(), name, ins, outs, attrs));
        }
        Op::Split { axis, sizes, .. } => {
            let mut ins = vec![x()];
            match sizes {
                Some(s) => {
                    let s: Vec<i64> = s.iter().map(|&v| v as i64).collect();
                    ins.push(g.ints(&format!("{name}.split"), &s));
                }
                None => ins.extend(inputs.get(1).cloned()),
            }
            g.push(node(
                "Split",
                name,
                ins,
                outs,
                vec![int_attr("axis", *axis)],
            ));
        }
        Op::Expand => simple(g, "Expand", vec![]),
        Op::Range => simple(g, "Range", vec![]),
        Op::Tile => simple(g, "Tile", vec![]),
        Op::QuantizeLinear { axis, .. } => {
            simple(g, "QuantizeLinear", vec![int_attr("axis", *axis)])
        }
        Op::DequantizeLinear { axis } => {
            simple(g, "DequantizeLinear", vec![int_attr("axis", *axis)])
        }
    }
    Ok(())
}

/// A graph constant as an initializer; QuantizeLinear / DequantizeLinear zero points keep
/// their 8-bit type (`narrow` gives it), everything else its f32 / i64 form.
pub fn constant(name: &str, value: &Value, narrow: Option<Elem>) -> TensorProto {
    match (value, narrow) {
        (Value::I64(a), Some(e)) => {
            super::proto_build::narrow_tensor(name, e, a.shape(), a.iter().copied())
        }
        _ => value_tensor(name, value),
    }
}

/// Float weights: each module's own tensors as f32 initializers named by their parameters.
pub struct FloatWeights;

impl Weights for FloatWeights {
    fn weight(
        &mut self,
        g: &mut OnnxGraph,
        n: &Node,
        form: LinearForm,
    ) -> Result<String, ExportError> {
        let base = format!("{}.weight", n.name);
        Ok(match &n.op {
            Op::Conv(p) => g.initializer(&base, |nm| {
                f32_tensor(nm, p.weight.shape(), p.weight.iter().copied())
            }),
            Op::Linear(p) if form == LinearForm::MatMul => {
                let t = p.weight.t();
                g.initializer(&base, |nm| f32_tensor(nm, t.shape(), t.iter().copied()))
            }
            Op::Linear(p) => g.initializer(&base, |nm| {
                f32_tensor(nm, p.weight.shape(), p.weight.iter().copied())
            }),
            _ => {
                return Err(ExportError::Unsupported {
                    layer: n.name.clone(),
                    op: n.op.kind().into(),
                    why: "only Conv and Linear have exported weights".into(),
                });
            }
        })
    }

    fn bias(&mut self, g: &mut OnnxGraph, n: &Node) -> Result<Option<String>, ExportError> {
        let b = match &n.op {
            Op::Conv(p) => p.bias.as_ref(),
            Op::Linear(p) => p.bias.as_ref(),
            _ => None,
        };
        Ok(b.map(|b| {
            g.initializer(&format!("{}.bias", n.name), |nm| {
                f32_tensor(nm, &[b.len()], b.iter().copied())
            })
        }))
    }
}
