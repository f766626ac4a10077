//! Activation error per layer of a converted model against its float twin (the prepared float
//! graph, which has the same node and value names), pooled over a dataset:
//!
//! * cumulative — the quantized model runs end to end and each layer's output is compared with
//!   the float model's: the error a layer *shows*, including everything upstream;
//! * isolated — each quantized layer is fed the float model's inputs, quantized with the qparams
//!   its quantized input has (PyTorch's shadow-module comparison): the error a layer *adds*.
//!
//! A fused module (Conv+ReLU) is one row under its first module's path, compared after its last
//! member. Besides the metrics of [`ErrorStats`], each row counts the float outputs that fall
//! outside the range the output qparams can represent (`[dq(0) − s/2, dq(255) + s/2]` for
//! quint8): the output clip rate.

use super::{AnalysisError, ErrorStats};
use crate::graph::{self, Value};
use crate::qnn::DeQuantize;
use crate::tensor::{QParams, QTensor};
use crate::workflow::{QOp, QValue, QuantizedModel};
use ndarray::ArrayD;
use std::collections::HashMap;

/// How a layer is fed (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Cumulative,
    Isolated,
}

impl ErrorMode {
    pub fn name(self) -> &'static str {
        match self {
            ErrorMode::Cumulative => "cumulative",
            ErrorMode::Isolated => "isolated",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorMode> {
        [ErrorMode::Cumulative, ErrorMode::Isolated]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// One layer's pooled activation error.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerError {
    pub layer: String,
    /// The quantized op (`qconv_relu`, `qadd`, ...).
    pub op: &'static str,
    pub stats: ErrorStats,
    /// Float outputs outside the representable range.
    pub clipped: u64,
}

impl LayerError {
    /// Fraction of outputs the output qparams clip.
    pub fn clip_rate(&self) -> f64 {
        self.clipped as f64 / self.stats.count.max(1) as f64
    }
}

/// One reported layer: the node whose op it is, and the node whose output it is compared at.
struct Row {
    head: usize,
    /// Fused members after the head, applied in order in isolated mode.
    members: Vec<usize>,
}

/// The rows of a model, in graph order: every node with a quantized output, fused groups once.
fn rows(model: &QuantizedModel) -> Vec<Row> {
    let index: HashMap<&str, usize> = model
        .graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut member_of: HashMap<usize, usize> = HashMap::new();
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for f in model.graph.fusions.iter().filter(|f| !f.qat) {
        let idx: Vec<usize> = f
            .modules
            .iter()
            .filter_map(|m| index.get(m.as_str()).copied())
            .collect();
        if let Some((&head, rest)) = idx.split_first() {
            for &m in rest {
                member_of.insert(m, head);
            }
            groups.insert(head, rest.to_vec());
        }
    }
    model
        .ops
        .iter()
        .enumerate()
        .filter(|(i, op)| {
            !member_of.contains_key(i)
                && !matches!(
                    op,
                    QOp::Float
                        | QOp::Identity
                        | QOp::DeQuantize
                        | QOp::DynamicLinear(_)
                        | QOp::DynamicLstm(_)
                )
        })
        .map(|(head, _)| Row {
            head,
            members: groups.get(&head).cloned().unwrap_or_default(),
        })
        .collect()
}

fn per_tensor(q: &QTensor) -> Option<(f64, i64)> {
    match q.qparams() {
        QParams::PerTensor { scale, zero_point } => Some((*scale, *zero_point)),
        QParams::PerChannel { .. } => None,
    }
}

/// Accumulates one layer's comparison of float `x` with quantized `y`.
fn compare(stats: &mut ErrorStats, clipped: &mut u64, x: &ArrayD<f32>, y: &QTensor) {
    let yd = DeQuantize.forward(y);
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().expect("standard layout");
    let (scale, zp) = per_tensor(y).unwrap_or((1.0, 0));
    let (lo, hi) = (y.dtype().qmin(), y.dtype().qmax());
    let low = (lo - zp) as f64 * scale - scale / 2.0;
    let high = (hi - zp) as f64 * scale + scale / 2.0;
    *clipped += xs
        .iter()
        .filter(|&&v| (v as f64) < low || (v as f64) > high)
        .count() as u64;
    stats.add(xs, yd.as_slice().expect("standard layout"), |_| scale);
}

/// Pooled per-layer errors over `batches` (one value per batch: the model's single input).
pub fn layer_errors(
    model: &QuantizedModel,
    batches: impl Iterator<Item = Value>,
    mode: ErrorMode,
) -> Result<Vec<LayerError>, AnalysisError> {
    let rows = rows(model);
    let mut acc: Vec<(ErrorStats, u64)> = vec![(ErrorStats::default(), 0); rows.len()];
    let fail = |e: String| AnalysisError::Model { detail: e };
    for x in batches {
        let mut float: HashMap<String, Value> = HashMap::new();
        graph::run(&model.graph, vec![x.clone()], |node, outs| {
            for (name, v) in node.outputs.iter().zip(outs) {
                float.insert(name.clone(), v.clone());
            }
        })
        .map_err(|e| fail(e.to_string()))?;
        let mut quant: HashMap<String, QValue> = HashMap::new();
        model
            .run(vec![x.clone()], |node, outs| {
                for (name, v) in node.outputs.iter().zip(outs) {
                    quant.insert(name.clone(), v.clone());
                }
            })
            .map_err(|e| fail(e.to_string()))?;
        if let Some(input) = model.graph.inputs.first() {
            float.insert(input.name.clone(), x);
        }
        for (row, (stats, clipped)) in rows.iter().zip(acc.iter_mut()) {
            let last = *row.members.last().unwrap_or(&row.head);
            let value = &model.graph.nodes[last].outputs[0];
            let Some(Value::F32(reference)) = float.get(value) else {
                continue;
            };
            let got = match mode {
                ErrorMode::Cumulative => quant.get(value).cloned(),
                ErrorMode::Isolated => Some(isolated(model, row, &float, &quant).map_err(fail)?),
            };
            if let Some(QValue::Quant(y)) = got {
                compare(stats, clipped, reference, &y);
            }
        }
    }
    Ok(rows
        .iter()
        .zip(acc)
        .map(|(row, (stats, clipped))| LayerError {
            layer: model.graph.nodes[row.head].name.clone(),
            op: model.ops[row.head].kind(),
            stats,
            clipped,
        })
        .collect())
}

/// The row's op (and fused members) on the float model's inputs, quantized as the quantized
/// model's inputs were.
fn isolated(
    model: &QuantizedModel,
    row: &Row,
    float: &HashMap<String, Value>,
    quant: &HashMap<String, QValue>,
) -> Result<QValue, String> {
    let node = &model.graph.nodes[row.head];
    let args: Vec<Option<QValue>> = node
        .inputs
        .iter()
        .map(|name| {
            if name.is_empty() {
                return Ok(None);
            }
            let f = float
                .get(name)
                .or_else(|| model.graph.constants.get(name))
                .ok_or_else(|| format!("no float value '{name}'"))?;
            Ok(Some(match (quant.get(name), f) {
                (Some(QValue::Quant(q)), Value::F32(a)) => {
                    let a = a.as_standard_layout();
                    QValue::Quant(
                        QTensor::quantize(
                            a.as_slice().expect("standard"),
                            a.shape(),
                            q.qparams(),
                            q.dtype(),
                        )
                        .map_err(|e| e.to_string())?,
                    )
                }
                _ => QValue::Float(f.clone()),
            }))
        })
        .collect::<Result<_, String>>()?;
    let refs: Vec<Option<&QValue>> = args.iter().map(Option::as_ref).collect();
    let mut out = model
        .eval_node(row.head, &refs)
        .map_err(|e| e.to_string())?
        .swap_remove(0);
    for &m in &row.members {
        out = model
            .eval_node(m, &[Some(&out)])
            .map_err(|e| e.to_string())?
            .swap_remove(0);
    }
    Ok(out)
}
