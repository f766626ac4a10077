//! Weight-mode error: each Conv / Linear weight quantized with a weight observer spec, compared
//! with the float weight. It needs no data, so it is the first answer to "which layer loses
//! precision before any activation is involved".

use super::{AnalysisError, ErrorStats};
use crate::graph::{Graph, Op};
use crate::observer::{ObserverSpec, observe_and_quantize};

/// One layer's weight quantization error.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightError {
    pub layer: String,
    pub op: &'static str,
    pub shape: Vec<usize>,
    pub stats: ErrorStats,
}

/// Quantizes every Conv / Linear weight of `graph` with `spec` (per-channel specs along the
/// output channel) and measures the error; rows in graph order.
pub fn weight_errors(
    graph: &Graph,
    spec: &ObserverSpec,
) -> Result<Vec<WeightError>, AnalysisError> {
    // Weights carry the output channel on axis 0.
    let spec = spec.clone().with_ch_axis(0);
    let mut rows = Vec::new();
    for node in &graph.nodes {
        let (w, shape): (Vec<f32>, Vec<usize>) = match &node.op {
            Op::Conv(c) => (
                c.weight.iter().copied().collect(),
                c.weight.shape().to_vec(),
            ),
            Op::Linear(l) => (
                l.weight.iter().copied().collect(),
                l.weight.shape().to_vec(),
            ),
            _ => continue,
        };
        let layer = node.name.clone();
        let obs_err = |source| AnalysisError::Observer {
            layer: layer.clone(),
            source,
        };
        let (q, qp) = observe_and_quantize(&spec, &w, &shape).map_err(obs_err)?;
        let inner = w.len() / shape[0].max(1);
        let step = |i: usize| {
            qp.scales[if qp.scales.len() == 1 {
                0
            } else {
                i / inner.max(1)
            }] as f64
        };
        let mut stats = ErrorStats::default();
        stats.add(&w, &q.dequantize(), step);
        rows.push(WeightError {
            layer,
            op: node.op.kind(),
            shape,
            stats,
        });
    }
    Ok(rows)
}
