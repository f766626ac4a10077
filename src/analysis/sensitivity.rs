//! Sensitivity ranking: which layer's quantization costs the most. For every quantized module
//! the model is quantized twice more — with only that module quantized, and with everything but
//! that module quantized — each freshly prepared, calibrated and converted, and scored with the
//! caller's metric (accuracy where labels exist, output SQNR otherwise). The layer whose
//! exclusion recovers the most is the one to fix first.

use super::AnalysisError;
use crate::engine::Numerics;
use crate::graph::{Graph, Op, Value};
use crate::workflow::{self, QConfigKey, QConfigMap, QuantizedModel};

/// One module's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    pub layer: String,
    /// The metric with only this module quantized.
    pub only_this: f64,
    /// The metric with every module but this one quantized.
    pub all_but_this: f64,
}

fn model_err(e: impl ToString) -> AnalysisError {
    AnalysisError::Model {
        detail: e.to_string(),
    }
}

/// Prepare, calibrate on `calib`, convert.
fn quantize(
    graph: &Graph,
    map: &QConfigMap,
    calib: &[Value],
    numerics: Numerics,
) -> Result<QuantizedModel, AnalysisError> {
    let mut prepared = workflow::prepare(graph, map).map_err(model_err)?;
    for batch in calib {
        prepared
            .calibrate_batch(vec![batch.clone()])
            .map_err(model_err)?;
    }
    workflow::convert(&prepared, numerics).map_err(model_err)
}

/// The modules a ranking scores, with their qconfigs, in graph order: every quantized Conv,
/// Linear, add, mul and concat (the ops with their own output observer).
pub fn ranked_layers(
    graph: &Graph,
    map: &QConfigMap,
) -> Result<Vec<(String, crate::qconfig::QConfig)>, AnalysisError> {
    let base = workflow::prepare(graph, map).map_err(model_err)?;
    Ok(graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.op,
                Op::Conv(_) | Op::Linear(_) | Op::Add | Op::Mul | Op::Concat { .. }
            ) && base.placement.get(&n.name) == Some(&workflow::Placement::Quantized)
        })
        .filter_map(|n| Some((n.name.clone(), base.qconfigs.get(&n.name)?.clone()?)))
        .collect())
}

/// The metric with every module but one quantized, for each ranked module in graph order
/// (the `all_but_this` column of [`sensitivity`] alone: what `search` orders its candidates by).
pub fn leave_one_out(
    graph: &Graph,
    map: &QConfigMap,
    calib: &[Value],
    numerics: Numerics,
    metric: impl Fn(&QuantizedModel) -> Result<f64, AnalysisError>,
) -> Result<Vec<(String, f64)>, AnalysisError> {
    let mut rows = Vec::new();
    for (layer, _) in ranked_layers(graph, map)? {
        let mut all_but = map.clone();
        all_but.set(QConfigKey::Path(layer.clone()), None);
        rows.push((layer, metric(&quantize(graph, &all_but, calib, numerics)?)?));
    }
    Ok(rows)
}

/// The metric of the fully quantized model and every module's two scores, in graph order.
/// `graph` should be fused; `map` is the full qconfig map (with its global entry).
pub fn sensitivity(
    graph: &Graph,
    map: &QConfigMap,
    calib: &[Value],
    numerics: Numerics,
    metric: impl Fn(&QuantizedModel) -> Result<f64, AnalysisError>,
) -> Result<(f64, Vec<Sensitivity>), AnalysisError> {
    let layers = ranked_layers(graph, map)?;
    let all = metric(&quantize(graph, map, calib, numerics)?)?;
    let mut rows = Vec::with_capacity(layers.len());
    for (layer, qconfig) in layers {
        let mut only = map.clone();
        only.set(QConfigKey::Global, None);
        only.entries.retain(|(k, _)| *k == QConfigKey::Global);
        only.set(QConfigKey::Path(layer.clone()), Some(qconfig));
        let mut all_but = map.clone();
        all_but.set(QConfigKey::Path(layer.clone()), None);
        rows.push(Sensitivity {
            only_this: metric(&quantize(graph, &only, calib, numerics)?)?,
            all_but_this: metric(&quantize(graph, &all_but, calib, numerics)?)?,
            layer,
        });
    }
    Ok((all, rows))
}
