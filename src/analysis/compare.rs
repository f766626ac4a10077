//! Engine comparison: the same calibrated model converted for two engines (or host profiles),
//! run on the same data, compared node by node on the integers — how many outputs differ and
//! by how many quantization steps (LSB). Both conversions share the observers, so their output
//! qparams agree and integer differences are exactly the engines' arithmetic differences.

use super::AnalysisError;
use crate::graph::Value;
use crate::tensor::QTensor;
use crate::workflow::{QValue, QuantizedModel};
use std::collections::HashMap;

/// One node's disagreement between two engines.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDiff {
    pub layer: String,
    pub op: &'static str,
    /// Quantized outputs compared.
    pub count: u64,
    /// Outputs whose integers differ.
    pub differing: u64,
    /// Largest integer difference (LSB of the first engine's output scale).
    pub max_lsb: i64,
}

fn quantized_outputs(
    model: &QuantizedModel,
    x: Value,
) -> Result<HashMap<String, QTensor>, AnalysisError> {
    let mut out = HashMap::new();
    model
        .run(vec![x], |node, values| {
            if let Some(QValue::Quant(q)) = values.first() {
                out.insert(node.name.clone(), q.clone());
            }
        })
        .map_err(|e| AnalysisError::Model {
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// Compares every quantized node output of `a` and `b` (the same prepared model converted
/// twice) over `batches`; rows in `a`'s graph order.
pub fn engine_diff(
    a: &QuantizedModel,
    b: &QuantizedModel,
    batches: impl Iterator<Item = Value>,
) -> Result<Vec<LayerDiff>, AnalysisError> {
    let mut rows: Vec<LayerDiff> = a
        .graph
        .nodes
        .iter()
        .zip(&a.ops)
        .map(|(n, op)| LayerDiff {
            layer: n.name.clone(),
            op: op.kind(),
            count: 0,
            differing: 0,
            max_lsb: 0,
        })
        .collect();
    for x in batches {
        let (qa, qb) = (quantized_outputs(a, x.clone())?, quantized_outputs(b, x)?);
        for row in &mut rows {
            let (Some(ya), Some(yb)) = (qa.get(&row.layer), qb.get(&row.layer)) else {
                continue;
            };
            let (va, vb) = (ya.int_values(), yb.int_values());
            row.count += va.len() as u64;
            for (p, q) in va.iter().zip(&vb) {
                let d = (*p as i64 - *q as i64).abs();
                if d != 0 {
                    row.differing += 1;
                    row.max_lsb = row.max_lsb.max(d);
                }
            }
        }
    }
    // Fused activations repeat their module's output: one row per module.
    rows.retain(|r| r.count > 0 && r.op != "identity");
    Ok(rows)
}
