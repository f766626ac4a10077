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

/// Quantizes every Conv / Linear weight of `graph` with `spec` (a per-channel spec along its
/// `ch_axis`: 0, the output channel, unless the spec names another) and measures the error;
/// rows in graph order.
pub fn weight_errors(
    graph: &Graph,
    spec: &ObserverSpec,
) -> Result<Vec<WeightError>, AnalysisError> {
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
        let (q, qp) = observe_and_quantize(spec, &w, &shape).map_err(obs_err)?;
        // The channel of flat element i along the quantization axis (one scale: always 0).
        let axis = qp.axis.unwrap_or(0).min(shape.len().saturating_sub(1));
        let stride: usize = shape[axis + 1..].iter().product();
        let channels = shape[axis].max(1);
        let step = |i: usize| {
            qp.scales[if qp.scales.len() == 1 {
                0
            } else {
                i / stride.max(1) % channels
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LinearParams, Node};
    use crate::observer::ObserverKind;
    use ndarray::Array2;

    /// A Linear whose rows are all alike but whose columns differ in range: per-channel along
    /// the input axis (`ch_axis=1`) fits each column and loses less than along the output axis.
    #[test]
    fn the_spec_channel_axis_is_used() {
        let w = Array2::from_shape_fn((4, 3), |(_, c)| [0.01, 1.0, 100.0][c]);
        let graph = Graph {
            nodes: vec![Node {
                name: "fc".into(),
                op: Op::Linear(LinearParams::new(w, None)),
                inputs: vec!["x".into()],
                outputs: vec!["y".into()],
            }],
            ..Graph::default()
        };
        let spec = ObserverSpec::new(ObserverKind::PerChannelMinMax);
        let out_axis = weight_errors(&graph, &spec).unwrap()[0].stats;
        let in_axis = weight_errors(&graph, &spec.clone().with_ch_axis(1)).unwrap()[0].stats;
        assert!(
            in_axis.mse() < out_axis.mse() / 10.0,
            "{in_axis:?} vs {out_axis:?}"
        );
        let err = weight_errors(&graph, &spec.with_ch_axis(2)).unwrap_err();
        assert!(err.to_string().contains("fc"), "{err}");
    }
}
