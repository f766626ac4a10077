//! Activation error per layer of a converted model against its float twin (the prepared float
//! graph, which has the same node and value names), pooled over a dataset:
//!
//! * cumulative — the quantized model runs end to end and each layer's output is compared with
//!   the float model's: the error a layer *shows*, including everything upstream;
//! * isolated — each quantized layer is fed the float model's inputs, quantized with the qparams
//!   its quantized input has (PyTorch's shadow-module comparison): the error a layer *adds*.
//!
//! A fused module (Conv+ReLU) is one row under its first module's path, compared after its last
//! member. Besides the metrics of [`ErrorStats`], each row has:
//!
//! * output clip rate — the fraction of float outputs outside the range the output qparams can
//!   represent, `[(qmin − zp)·s − s/2, (qmax − zp)·s + s/2]` (what still rounds into range);
//! * input clip rate — the fraction of the float model's values of the op's quantized operands
//!   outside the range those operands' qparams represent, `[(qmin − zp)·s, (qmax − zp)·s]`: how
//!   much the observers of the inputs chose to clip. It is taken from the float model in both
//!   modes (in cumulative mode the quantized input is in range by construction, so only the float
//!   value it stands for can tell), so it is the same in both; `None` for an op with no quantized
//!   operand (the quantize stub);
//! * saturated pairs — u8×s8 pair sums the engine saturated to int16 while computing the compared
//!   output (fbgemm's depthwise fast path on every host, all of fbgemm's GEMMs on the `avx2`
//!   profile; never on qnnpack or the `exact` profile), summed over the dataset and the fused
//!   members: in the quantized model's run in cumulative mode, in the op's isolated run in
//!   isolated mode.

use super::{AnalysisError, ClipCount, ErrorStats};
use crate::graph::{self, Value};
use crate::qnn::{DeQuantize, RunStats};
use crate::tensor::{QParams, QTensor};
use crate::workflow::{QOp, QValue, QuantizedModel};
use ndarray::ArrayD;
use std::collections::HashMap;

/// How a layer is fed (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// Float outputs outside the output qparams' range (module docs).
    pub output_clip: ClipCount,
    /// Float values of the quantized operands outside their qparams' range (module docs).
    pub input_clip: ClipCount,
    /// Pair sums the engine saturated to int16 (module docs).
    pub saturated_pairs: u64,
}

impl LayerError {
    /// Fraction of outputs the output qparams clip.
    pub fn clip_rate(&self) -> f64 {
        self.output_clip.rate().unwrap_or(0.0)
    }

    /// Fraction of the quantized operands' float values their qparams clip; `None` when the op
    /// has no quantized operand.
    pub fn input_clip_rate(&self) -> Option<f64> {
        self.input_clip.rate()
    }
}

/// What one row accumulates over the dataset.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    stats: ErrorStats,
    output_clip: ClipCount,
    input_clip: ClipCount,
    saturated_pairs: u64,
}

/// One reported layer: the node whose op it is, and the node whose output it is compared at.
struct Row {
    head: usize,
    /// Fused members after the head, applied in order in isolated mode.
    members: Vec<usize>,
}

impl Row {
    /// The head and its fused members, in order.
    fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.head).chain(self.members.iter().copied())
    }
}

/// The rows of a model, in graph order: every node with a quantized output, fused groups once.
fn rows(model: &QuantizedModel) -> Vec<Row> {
    let index = crate::graph::index_by_name(&model.graph.nodes);
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

/// The float interval `[(qmin − zp)·s, (qmax − zp)·s]` a per-tensor quantized tensor represents.
fn represented(q: &QTensor) -> Option<(f64, f64, f64)> {
    let (scale, zp) = per_tensor(q)?;
    let float = |i: i64| (i - zp) as f64 * scale;
    Some((float(q.dtype().qmin()), float(q.dtype().qmax()), scale))
}

/// Accumulates one layer's comparison of float `x` with quantized `y`.
fn compare(acc: &mut Acc, x: &ArrayD<f32>, y: &QTensor) {
    let yd = DeQuantize.forward(y);
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().expect("standard layout");
    let (lo, hi, scale) =
        represented(y).unwrap_or((y.dtype().qmin() as f64, y.dtype().qmax() as f64, 1.0));
    acc.output_clip.add(xs, lo - scale / 2.0, hi + scale / 2.0);
    acc.stats
        .add(xs, yd.as_slice().expect("standard layout"), |_| scale);
}

/// Counts the float values of the quantized operands among `inputs` against their qparams'
/// range.
fn count_input_clip(
    acc: &mut Acc,
    inputs: &[String],
    float: &HashMap<String, Value>,
    quant: &HashMap<String, QValue>,
) {
    for name in inputs {
        if let (Some(QValue::Quant(q)), Some(Value::F32(x))) = (quant.get(name), float.get(name))
            && let Some((lo, hi, _)) = represented(q)
        {
            let x = x.as_standard_layout();
            acc.input_clip
                .add(x.as_slice().expect("standard layout"), lo, hi);
        }
    }
}

/// Pooled per-layer errors over `batches` (one value per batch: the model's single input).
pub fn layer_errors(
    model: &QuantizedModel,
    batches: impl Iterator<Item = Value>,
    mode: ErrorMode,
) -> Result<Vec<LayerError>, AnalysisError> {
    let rows = rows(model);
    let mut acc = vec![Acc::default(); rows.len()];
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
        let mut saturated: HashMap<String, u64> = HashMap::new();
        model
            .run_with_stats(vec![x.clone()], |node, outs, stats| {
                for (name, v) in node.outputs.iter().zip(outs) {
                    quant.insert(name.clone(), v.clone());
                }
                saturated.insert(node.name.clone(), stats.saturated_pairs);
            })
            .map_err(|e| fail(e.to_string()))?;
        if let Some(input) = model.graph.inputs.first() {
            float.insert(input.name.clone(), x);
        }
        for (row, acc) in rows.iter().zip(acc.iter_mut()) {
            let last = *row.members.last().unwrap_or(&row.head);
            let value = &model.graph.nodes[last].outputs[0];
            let Some(Value::F32(reference)) = float.get(value) else {
                continue;
            };
            let (got, pairs) = match mode {
                ErrorMode::Cumulative => (
                    quant.get(value).cloned(),
                    row.nodes()
                        .map(|i| saturated.get(&model.graph.nodes[i].name).unwrap_or(&0))
                        .sum(),
                ),
                ErrorMode::Isolated => {
                    let (y, stats) = isolated(model, row, &float, &quant).map_err(fail)?;
                    (Some(y), stats.saturated_pairs)
                }
            };
            if let Some(QValue::Quant(y)) = got {
                compare(acc, reference, &y);
                count_input_clip(acc, &model.graph.nodes[row.head].inputs, &float, &quant);
                acc.saturated_pairs += pairs;
            }
        }
    }
    Ok(rows
        .iter()
        .zip(acc)
        .map(|(row, acc)| LayerError {
            layer: model.graph.nodes[row.head].name.clone(),
            op: model.ops[row.head].kind(),
            stats: acc.stats,
            output_clip: acc.output_clip,
            input_clip: acc.input_clip,
            saturated_pairs: acc.saturated_pairs,
        })
        .collect())
}

/// The row's op (and fused members) on the float model's inputs, quantized as the quantized
/// model's inputs were, with the saturations of those runs summed.
fn isolated(
    model: &QuantizedModel,
    row: &Row,
    float: &HashMap<String, Value>,
    quant: &HashMap<String, QValue>,
) -> Result<(QValue, RunStats), String> {
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
    let (mut outs, mut stats) = model
        .eval_node(row.head, &refs)
        .map_err(|e| e.to_string())?;
    for &m in &row.members {
        let (next, s) = model
            .eval_node(m, &[Some(&outs.swap_remove(0))])
            .map_err(|e| e.to_string())?;
        outs = next;
        stats.saturated_pairs += s.saturated_pairs;
    }
    Ok((outs.swap_remove(0), stats))
}
