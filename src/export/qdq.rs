//! The converted model in ONNX's QDQ form: the float graph, with a QuantizeLinear →
//! DequantizeLinear pair on every value the int8 model holds quantized (uint8 or int8 with its
//! scale and zero point), and each quantized Conv / Linear reading its int8 weight (per tensor or
//! per output channel) and int32 bias through a DequantizeLinear. ONNX Runtime fuses these
//! patterns back into integer kernels; any other ONNX runtime computes the float simulation.
//!
//! Which values are quantized, and with what, is read from one run of the model on a zero input
//! rather than re-derived: the kernels (fixed-qparams sigmoid, ops that keep their input's
//! qparams) are the one definition of what each op outputs. A fused ReLU stays a float Relu
//! between its module and the Q/DQ pair, as ORT's fusions expect.

use super::ExportError;
use super::onnx_ops::{self, FloatWeights, LinearForm, OnnxGraph, Weights};
use super::proto_build::{
    Elem, entry, f32_tensor, i32_tensor, int_attr, narrow_tensor, node, value_info,
};
use crate::graph::{Node, Op, Unary, Value};
use crate::import::onnx::proto::{GraphProto, ModelProto, OperatorSetIdProto};
use crate::qnn::PackedWeight;
use crate::tensor::{QDType, QParams};
use crate::workflow::{QOp, QValue, QuantizedModel};
use ndarray::{ArrayD, IxDyn};
use std::collections::{HashMap, HashSet};

/// What one run showed of a value.
#[derive(Debug, Clone)]
struct Seen {
    shape: Vec<usize>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float,
    Int,
    Quant {
        scale: f64,
        zero_point: i64,
        elem: Elem,
    },
}

/// Counts for the caller's summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QdqSummary {
    /// Conv / Linear layers written with int8 weights.
    pub int8_layers: usize,
    /// QuantizeLinear → DequantizeLinear pairs on activations.
    pub activation_pairs: usize,
    /// Nodes left float (their module was not quantized).
    pub float_nodes: usize,
    pub opset: i64,
}

fn elem_of(dtype: QDType) -> Result<Elem, String> {
    match dtype {
        QDType::QUInt8 => Ok(Elem::Uint8),
        QDType::QInt8 => Ok(Elem::Int8),
        QDType::QInt32 => Err("a qint32 activation has no ONNX QDQ form".into()),
    }
}

/// Zero inputs of the model's declared shapes (a dynamic batch probes as 1); inputs that
/// index a Gather are int64.
fn probe_inputs(model: &QuantizedModel) -> Result<Vec<Value>, ExportError> {
    let indices: HashSet<&str> = model
        .graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Gather { .. }))
        .filter_map(|n| n.inputs.get(1).map(String::as_str))
        .collect();
    model
        .graph
        .inputs
        .iter()
        .map(|i| {
            let mut dims = Vec::new();
            for (d, s) in i.shape.iter().enumerate() {
                match (d, s) {
                    (_, Some(s)) => dims.push(*s),
                    (0, None) => dims.push(1),
                    (_, None) => {
                        return Err(ExportError::DynamicDim {
                            input: i.name.clone(),
                            dim: d,
                        });
                    }
                }
            }
            crate::graph::budget::check(&i.name, &dims, 8)
                .map_err(|e| ExportError::Probe(e.to_string()))?;
            Ok(if indices.contains(i.name.as_str()) {
                Value::I64(ArrayD::zeros(IxDyn(&dims)))
            } else {
                Value::F32(ArrayD::zeros(IxDyn(&dims)))
            })
        })
        .collect()
}

/// Every value's shape and kind, from one run on zeros.
fn observe(
    model: &QuantizedModel,
    inputs: Vec<Value>,
) -> Result<HashMap<String, Seen>, ExportError> {
    let mut seen = HashMap::new();
    for (spec, v) in model.graph.inputs.iter().zip(&inputs) {
        let kind = if matches!(v, Value::I64(_)) {
            Kind::Int
        } else {
            Kind::Float
        };
        seen.insert(
            spec.name.clone(),
            Seen {
                shape: v.shape().to_vec(),
                kind,
            },
        );
    }
    let mut problem = None;
    model
        .run(inputs, |node, outs| {
            for (name, v) in node.outputs.iter().zip(outs) {
                let s = match v {
                    QValue::Float(Value::F32(a)) => Seen {
                        shape: a.shape().to_vec(),
                        kind: Kind::Float,
                    },
                    QValue::Float(Value::I64(a)) => Seen {
                        shape: a.shape().to_vec(),
                        kind: Kind::Int,
                    },
                    QValue::Quant(q) => {
                        let QParams::PerTensor { scale, zero_point } = q.qparams() else {
                            problem.get_or_insert_with(|| ExportError::Unsupported {
                                layer: node.name.clone(),
                                op: node.op.kind().into(),
                                why: "its output is quantized per channel".into(),
                            });
                            continue;
                        };
                        let elem = match elem_of(q.dtype()) {
                            Ok(e) => e,
                            Err(why) => {
                                problem.get_or_insert_with(|| ExportError::Unsupported {
                                    layer: node.name.clone(),
                                    op: node.op.kind().into(),
                                    why,
                                });
                                continue;
                            }
                        };
                        Seen {
                            shape: q.shape().to_vec(),
                            kind: Kind::Quant {
                                scale: *scale,
                                zero_point: *zero_point,
                                elem,
                            },
                        }
                    }
                };
                seen.insert(name.clone(), s);
            }
        })
        .map_err(|e| ExportError::Probe(e.to_string()))?;
    match problem {
        Some(p) => Err(p),
        None => Ok(seen),
    }
}

/// Whether `op` applies the activation of the node after it (a fused ReLU), so its output is
/// read only by that activation, whose output carries the qparams.
fn fuses_next(op: &QOp) -> bool {
    match op {
        QOp::Conv(c) => c.relu,
        QOp::Linear(l) => l.relu,
        QOp::AddRelu(_) => true,
        _ => false,
    }
}

/// The int8 weight and int32 bias of a quantized Conv / Linear.
struct QdqWeights<'a> {
    weight: &'a PackedWeight,
    bias: Option<&'a Vec<f32>>,
    /// The input's scale: the bias's scale is it times each weight scale.
    input_scale: f64,
}

/// An integer initializer's contents.
struct IntTensor {
    elem: Elem,
    dims: Vec<usize>,
    values: Vec<i64>,
}

/// Adds `DequantizeLinear(values, scales, zero_points[, axis])` with the three tensors as
/// initializers named after `base`; returns the float output's name.
fn dequantized_initializer(
    g: &mut OnnxGraph,
    base: &str,
    t: IntTensor,
    scales: &[f32],
    zero_points: &[i64],
    axis: Option<usize>,
) -> String {
    let int_tensor = |name: &str, elem: Elem, dims: &[usize], values: &[i64]| match elem {
        Elem::Int32 => i32_tensor(name, dims, values.iter().map(|&v| v as i32)),
        e => narrow_tensor(name, e, dims, values.iter().copied()),
    };
    let q = g.initializer(base, |n| int_tensor(n, t.elem, &t.dims, &t.values));
    let dims: Vec<usize> = if axis.is_some() {
        vec![scales.len()]
    } else {
        vec![]
    };
    let s = g.initializer(&format!("{base}_scale"), |n| {
        f32_tensor(n, &dims, scales.iter().copied())
    });
    let z = g.initializer(&format!("{base}_zero_point"), |n| {
        int_tensor(n, t.elem, &dims, zero_points)
    });
    // Not a parameter-like name: the importer then credits the weight to `base`.
    let out = g.fresh(&format!("{base}/dequantized"));
    let attrs = axis
        .map(|a| vec![int_attr("axis", a as i64)])
        .unwrap_or_default();
    let name = format!("{base}/DequantizeLinear");
    g.push(node(
        "DequantizeLinear",
        &name,
        vec![q, s, z],
        vec![out.clone()],
        attrs,
    ));
    out
}

impl Weights for QdqWeights<'_> {
    fn weight(
        &mut self,
        g: &mut OnnxGraph,
        n: &Node,
        form: LinearForm,
    ) -> Result<String, ExportError> {
        let w = self.weight;
        let per_channel = w.scales.len() > 1;
        let (dims, values, axis) = match form {
            LinearForm::MatMul => {
                // [out, in] → [in, out]: the channel axis becomes 1.
                let mut t = Vec::with_capacity(w.data.len());
                for i in 0..w.k {
                    t.extend((0..w.out).map(|o| i64::from(w.data[o * w.k + i])));
                }
                (vec![w.k, w.out], t, 1)
            }
            LinearForm::Gemm => (
                w.shape.clone(),
                w.data.iter().map(|&v| i64::from(v)).collect(),
                0,
            ),
        };
        let scales: Vec<f32> = w.scales.iter().map(|&s| s as f32).collect();
        let zps: Vec<i64> = w.zero_points.iter().map(|&z| i64::from(z)).collect();
        let tensor = IntTensor {
            elem: Elem::Int8,
            dims,
            values,
        };
        Ok(dequantized_initializer(
            g,
            &format!("{}.weight", n.name),
            tensor,
            &scales,
            &zps,
            per_channel.then_some(axis),
        ))
    }

    fn bias(&mut self, g: &mut OnnxGraph, n: &Node) -> Result<Option<String>, ExportError> {
        let w = self.weight;
        let Some(b) = self.bias else { return Ok(None) };
        // ONNX Runtime's integer kernels take the bias as int32 at scale s_in · s_w.
        let scales: Vec<f32> = (0..b.len())
            .map(|c| (self.input_scale * w.scales[if w.scales.len() > 1 { c } else { 0 }]) as f32)
            .collect();
        let values: Vec<i64> = b
            .iter()
            .zip(&scales)
            .map(|(&v, &s)| {
                (f64::from(v) / f64::from(s))
                    .round_ties_even()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i64
            })
            .collect();
        let per_channel = w.scales.len() > 1;
        let (scales, axis) = if per_channel {
            (scales, Some(0))
        } else {
            (vec![scales[0]], None)
        };
        let zps = vec![0; scales.len()];
        let tensor = IntTensor {
            elem: Elem::Int32,
            dims: vec![b.len()],
            values,
        };
        Ok(Some(dequantized_initializer(
            g,
            &format!("{}.bias", n.name),
            tensor,
            &scales,
            &zps,
            axis,
        )))
    }
}

/// Python-literal quoting for the scope metadata the importer reads back.
fn py_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The converted model as a QDQ ONNX model; module paths are the node names (and in the
/// `pkg.torch.onnx.name_scopes` metadata, so qlab's importer names them the same way back).
pub fn qdq_model(model: &QuantizedModel) -> Result<(ModelProto, QdqSummary), ExportError> {
    let graph = &model.graph;
    for (n, op) in graph.nodes.iter().zip(&model.ops) {
        if matches!(op, QOp::DynamicLinear(_) | QOp::DynamicLstm(_)) {
            return Err(ExportError::Unsupported {
                layer: n.name.clone(),
                op: op.kind().into(),
                why: "dynamic quantization has no static QDQ form (ONNX Runtime's quantize_dynamic makes its own)".into(),
            });
        }
    }
    let seen = observe(model, probe_inputs(model)?)?;
    let gelu = graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Unary(Unary::Gelu { .. })));
    let opset = if gelu { 20 } else { 17 };
    let taken = graph
        .nodes
        .iter()
        .flat_map(|n| {
            n.outputs
                .iter()
                .chain(n.inputs.iter())
                .chain(std::iter::once(&n.name))
        })
        .chain(graph.constants.keys())
        .chain(graph.inputs.iter().map(|i| &i.name))
        .cloned();
    let mut g = OnnxGraph::new(opset, taken);
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for input in &n.inputs {
            readers.entry(input.as_str()).or_default().push(i);
        }
    }
    let mut summary = QdqSummary {
        opset,
        ..Default::default()
    };
    let quant = |v: &str| match seen.get(v).map(|s| s.kind) {
        Some(Kind::Quant {
            scale,
            zero_point,
            elem,
        }) => Some((scale, zero_point, elem)),
        _ => None,
    };

    for (n, op) in graph.nodes.iter().zip(&model.ops) {
        // Values this node writes that get a Q/DQ pair: all quantized ones, except a fused
        // module's output that only its activation reads.
        let paired: Vec<bool> = n
            .outputs
            .iter()
            .map(|o| {
                let only_activation = fuses_next(op)
                    && !graph.outputs.contains(o)
                    && readers
                        .get(o.as_str())
                        .is_some_and(|r| r.iter().all(|&j| model.ops[j] == QOp::Identity));
                quant(o).is_some() && !only_activation
            })
            .collect();
        let mut outputs = n.outputs.clone();
        for (o, &p) in outputs.iter_mut().zip(&paired) {
            if p {
                *o = g.fresh(&format!("{o}/float"));
            }
        }
        let start = g.nodes.len();
        let int8 = match op {
            QOp::Conv(c) => Some((&c.weight, c.bias.as_ref())),
            QOp::Linear(l) => Some((&l.weight, l.bias.as_ref())),
            _ => None,
        };
        match (op, int8) {
            // The stub's Q/DQ pair reads its input directly.
            (QOp::Quantize(_), _) => outputs = n.inputs.iter().take(1).cloned().collect(),
            (_, Some((weight, bias))) => {
                let input = n.inputs.first().map(String::as_str).unwrap_or("");
                let (input_scale, ..) = quant(input).ok_or_else(|| ExportError::Unsupported {
                    layer: n.name.clone(),
                    op: n.op.kind().into(),
                    why: "its input is not quantized".into(),
                })?;
                let rank = seen.get(input).map(|s| s.shape.len());
                onnx_ops::emit(
                    &mut g,
                    n,
                    &n.inputs,
                    &outputs,
                    rank,
                    &mut QdqWeights {
                        weight,
                        bias,
                        input_scale,
                    },
                )?;
                summary.int8_layers += 1;
            }
            (_, None) => {
                let rank = n
                    .inputs
                    .first()
                    .and_then(|i| seen.get(i))
                    .map(|s| s.shape.len());
                onnx_ops::emit(&mut g, n, &n.inputs, &outputs, rank, &mut FloatWeights)?;
                if *op == QOp::Float {
                    summary.float_nodes += 1;
                }
            }
        }
        let scopes = format!(
            "['', {}, {}]",
            py_str(&n.name),
            py_str(&n.op.kind().to_ascii_lowercase())
        );
        for emitted in &mut g.nodes[start..] {
            emitted
                .metadata_props
                .push(entry("pkg.torch.onnx.name_scopes", &scopes));
        }
        for ((orig, written), p) in n.outputs.iter().zip(&outputs).zip(paired) {
            if !p {
                continue;
            }
            let (scale, zero_point, elem) = quant(orig).expect("paired values are quantized");
            let s = g.initializer(&format!("{orig}/scale"), |nm| {
                f32_tensor(nm, &[], [scale as f32])
            });
            let z = g.initializer(&format!("{orig}/zero_point"), |nm| {
                narrow_tensor(nm, elem, &[], [zero_point])
            });
            let q = g.fresh(&format!("{orig}/quantized"));
            g.push(node(
                "QuantizeLinear",
                &format!("{orig}/QuantizeLinear"),
                vec![written.clone(), s.clone(), z.clone()],
                vec![q.clone()],
                vec![],
            ));
            g.push(node(
                "DequantizeLinear",
                &format!("{orig}/DequantizeLinear"),
                vec![q, s, z],
                vec![orig.clone()],
                vec![],
            ));
            summary.activation_pairs += 1;
        }
    }

    // Constants the nodes read; QuantizeLinear / DequantizeLinear zero points keep their type.
    // A zero point's type is that of the integers it goes with: a QuantizeLinear's range, and
    // for a DequantizeLinear the type of the QuantizeLinear feeding it (the sign of its zero
    // points only when nothing quantized its input here: int8 with zero point 0 is common).
    let mut narrow: HashMap<&str, Elem> = HashMap::new();
    let mut quantized: HashMap<&str, Elem> = HashMap::new();
    for n in &graph.nodes {
        if let Op::QuantizeLinear { qmin, .. } = n.op {
            let elem = if qmin < 0 { Elem::Int8 } else { Elem::Uint8 };
            quantized.extend(n.outputs.iter().map(|o| (o.as_str(), elem)));
            if let Some(z) = n.inputs.get(2) {
                narrow.insert(z.as_str(), elem);
            }
        }
    }
    for n in graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::DequantizeLinear { .. }))
    {
        let Some(z) = n.inputs.get(2) else { continue };
        let fed = n
            .inputs
            .first()
            .and_then(|x| quantized.get(x.as_str()).copied());
        let elem = fed.unwrap_or(match graph.constants.get(z.as_str()) {
            Some(Value::I64(v)) if v.iter().any(|&v| v < 0) => Elem::Int8,
            _ => Elem::Uint8,
        });
        narrow.entry(z.as_str()).or_insert(elem);
    }
    let used: HashSet<&str> = graph
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .collect();
    let mut initializers: Vec<_> = graph
        .constants
        .iter()
        .filter(|(k, _)| used.contains(k.as_str()))
        .map(|(k, v)| onnx_ops::constant(k, v, narrow.get(k.as_str()).copied()))
        .collect();
    initializers.append(&mut g.initializers);

    let dynamic_batch = graph.inputs.iter().any(|i| i.shape.first() == Some(&None));
    let typed = |name: &str, declared: Option<&[Option<usize>]>| {
        let s = seen.get(name);
        let elem = match s.map(|s| s.kind) {
            Some(Kind::Int) => Elem::Int64,
            _ => Elem::Float,
        };
        let shape: Vec<Option<usize>> = match declared {
            Some(d) => d.to_vec(),
            None => s
                .map(|s| {
                    s.shape
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| (i > 0 || !dynamic_batch).then_some(d))
                        .collect()
                })
                .unwrap_or_default(),
        };
        value_info(name, elem, &shape)
    };
    let proto = GraphProto {
        name: Some("qlab_qdq".into()),
        node: g.nodes,
        initializer: initializers,
        input: graph
            .inputs
            .iter()
            .map(|i| typed(&i.name, Some(&i.shape)))
            .collect(),
        output: graph.outputs.iter().map(|o| typed(o, None)).collect(),
        ..Default::default()
    };
    let model_proto = ModelProto {
        ir_version: Some(if opset >= 20 { 9 } else { 8 }),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("qlab".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(proto),
        metadata_props: vec![
            entry("qlab.engine", &model.numerics.engine.to_string()),
            entry("qlab.profile", &model.numerics.profile.to_string()),
        ],
        ..Default::default()
    };
    super::check_model(&model_proto).map_err(ExportError::Invalid)?;
    Ok((model_proto, summary))
}
