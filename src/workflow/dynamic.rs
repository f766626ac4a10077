//! `quantize_dynamic`: Linear and LSTM modules swapped for their dynamically quantized forms
//! (NUMERICS §7) — weights converted once, activations quantized per call from their own range,
//! float in and float out — everything else left in float. No calibration is needed.
//!
//! Which modules convert is a [`QConfigMap`] as for static quantization; the weight observer of
//! a module's qconfig chooses qint8 per-tensor, qint8 per-channel or float16.

use super::modules::kind_of;
use super::qmodel::{QOp, QuantizedModel};
use super::{QConfigKey, QConfigMap, WorkflowError};
use crate::engine::Numerics;
use crate::graph::{Graph, LstmParams, Op};
use crate::qconfig::QConfig;
use crate::qconfig::presets::{default_dynamic_qconfig, float16_dynamic_qconfig};
use crate::qnn::dynamic::{
    DynamicLinear, DynamicLstm, DynamicWeightDtype, LstmConfig, LstmFloatParams,
};
use crate::tensor::DType;

/// `quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype)` (float16 or qint8) for the types
/// `graph` contains (a type entry naming nothing would be refused). As in PyTorch, a Linear
/// another module calls functionally (attention's projections) is not an `nn.Linear` and stays
/// float; an explicit path entry can still quantize it — a qlab what-if that PyTorch, having no
/// module to swap, cannot do.
pub fn dynamic_qconfig_map(graph: &Graph, float16: bool) -> QConfigMap {
    let q = if float16 {
        float16_dynamic_qconfig()
    } else {
        default_dynamic_qconfig()
    };
    let mut map = QConfigMap::default();
    for t in ["Linear", "LSTM"] {
        if graph.nodes.iter().any(|n| kind_of(n) == t) {
            map.set(QConfigKey::Type(t.into()), Some(q.clone()));
        }
    }
    map
}

fn weight_dtype(module: &str, q: &QConfig) -> Result<DynamicWeightDtype, WorkflowError> {
    let w = q.weight.observer();
    match w.dtype {
        DType::Float16 => Ok(DynamicWeightDtype::Float16),
        DType::QInt8 if w.qscheme.is_per_channel() => Ok(DynamicWeightDtype::QInt8PerChannel),
        DType::QInt8 => Ok(DynamicWeightDtype::QInt8PerTensor),
        other => Err(WorkflowError::Check {
            module: module.into(),
            problem: format!("dynamic quantization takes qint8 or float16 weights, not {other}"),
            fix: "use default_dynamic_qconfig or float16_dynamic_qconfig".into(),
        }),
    }
}

fn dynamic_lstm(
    p: &LstmParams,
    dtype: DynamicWeightDtype,
) -> Result<DynamicLstm, crate::qnn::QnnError> {
    let input_size = p.directions.first().map_or(0, |d| d.w_ih.ncols());
    let config = LstmConfig {
        input_size,
        hidden_size: p.hidden_size,
        num_layers: 1,
        bidirectional: p.directions.len() == 2,
        batch_first: false,
    };
    let params: Vec<LstmFloatParams> = p
        .directions
        .iter()
        .map(|d| LstmFloatParams {
            w_ih: d.w_ih.clone().into_dyn(),
            w_hh: d.w_hh.clone().into_dyn(),
            b_ih: Some(d.b_ih.to_vec()),
            b_hh: Some(d.b_hh.to_vec()),
        })
        .collect();
    DynamicLstm::new(config, &params, dtype)
}

/// Converts every Linear / LSTM whose qconfig (from `map`) is dynamic; the rest stays float.
pub fn quantize_dynamic(
    graph: &Graph,
    map: &QConfigMap,
    numerics: Numerics,
) -> Result<QuantizedModel, WorkflowError> {
    let resolved = map.resolve(graph)?;
    let ops = graph
        .nodes
        .iter()
        .map(|node| {
            let Some(Some(q)) = resolved.get(&node.name) else {
                return Ok(QOp::Float);
            };
            let module_err = |source| WorkflowError::Module {
                module: node.name.clone(),
                source,
            };
            Ok(match &node.op {
                Op::Linear(l) => {
                    let dtype = weight_dtype(&node.name, q)?;
                    let bias = l.bias.as_ref().map(|b| b.to_vec());
                    let w = l.weight.clone().into_dyn();
                    QOp::DynamicLinear(Box::new(
                        DynamicLinear::new(&w, bias, dtype, false).map_err(module_err)?,
                    ))
                }
                Op::Lstm(p) => {
                    let dtype = weight_dtype(&node.name, q)?;
                    QOp::DynamicLstm(Box::new(dynamic_lstm(p, dtype).map_err(module_err)?))
                }
                _ => QOp::Float,
            })
        })
        .collect::<Result<Vec<_>, WorkflowError>>()?;
    Ok(QuantizedModel {
        graph: graph.clone(),
        ops,
        numerics,
    })
}
