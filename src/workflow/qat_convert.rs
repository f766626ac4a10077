//! `convert_qat`: PyTorch's `convert` after QAT. Each Conv+BN group is folded with its running
//! statistics (NUMERICS §5.2, the same `fuse_conv_bn_eval` eval fusion uses), each weight is
//! quantized with qparams from its own weight fake-quant after that fake-quant has seen the
//! (folded) weight once more (PyTorch's `get_qconv` calls `weight_post_process(weight)` before
//! `calculate_qparams`), and output qparams come from the activation fake-quants'
//! `calculate_qparams`. The quantized modules are then built by the static `convert`.

use super::convert::{QParamSource, convert_with};
use super::fuse::fold_into;
use super::qat::{QatError, QatModel};
use super::qmodel::QuantizedModel;
use super::{Prepared, WorkflowError};
use crate::engine::Numerics;
use crate::fake_quant::FakeQuantError;
use crate::graph::Op;
use crate::qconfig::QConfig;
use crate::tensor::QTensor;
use std::collections::BTreeMap;

/// Qparams read off the QAT model's fake-quants.
struct FakeQuantQParams {
    activations: BTreeMap<String, (f64, i64)>,
    weights: BTreeMap<String, QTensor>,
}

impl QParamSource for FakeQuantQParams {
    fn activation(&self, module: &str) -> Result<(f64, i64), WorkflowError> {
        self.activations
            .get(module)
            .copied()
            .ok_or_else(|| WorkflowError::Check {
                module: module.into(),
                problem: "this quantized module has no activation fake-quant".into(),
                fix: "run prepare_qat again".into(),
            })
    }

    fn weight(
        &self,
        module: &str,
        _q: &QConfig,
        _data: &[f32],
        _shape: &[usize],
    ) -> Result<QTensor, WorkflowError> {
        self.weights
            .get(module)
            .cloned()
            .ok_or_else(|| WorkflowError::Check {
                module: module.into(),
                problem: "this quantized module has no weight fake-quant".into(),
                fix: "run prepare_qat again".into(),
            })
    }
}

fn fq_err(module: &str) -> impl Fn(FakeQuantError) -> QatError + '_ {
    move |source| QatError::FakeQuant {
        module: module.into(),
        source,
    }
}

/// Converts a trained QAT model for `numerics`; see the module docs. Like PyTorch's in-place
/// convert, the weight fake-quants observe the folded weights once more (their statistics
/// change when their observers are enabled).
pub fn convert_qat(model: &mut QatModel, numerics: Numerics) -> Result<QuantizedModel, QatError> {
    let mut graph = model.graph.clone();
    for cb in &model.conv_bn {
        let index = |name: &str| {
            graph
                .nodes
                .iter()
                .position(|n| n.name == name)
                .ok_or_else(|| QatError::Unsupported {
                    module: name.into(),
                    problem: "a Conv+BN member is missing from the graph".into(),
                })
        };
        let (conv, bn) = (index(&cb.conv)?, index(&cb.bn)?);
        fold_into(&mut graph, conv, bn).map_err(WorkflowError::from)?;
    }
    for f in &mut graph.fusions {
        f.qat = false;
    }
    let mut weights = BTreeMap::new();
    for node in &graph.nodes {
        let Some(fq) = model.weights.get_mut(&node.name) else {
            continue;
        };
        let w = match &node.op {
            Op::Conv(c) => c.weight.as_standard_layout().into_owned(),
            Op::Linear(l) => l.weight.as_standard_layout().into_owned().into_dyn(),
            _ => continue,
        };
        let data = w.as_slice().expect("standard");
        let err = fq_err(&node.name);
        fq.forward(data, w.shape()).map_err(&err)?;
        let qp = fq.calculate_qparams().map_err(&err)?;
        let q = QTensor::quantize(data, w.shape(), &qp.to_qparams(), qp.dtype)
            .map_err(|e| err(e.into()))?;
        weights.insert(node.name.clone(), q);
    }
    let activations = model
        .activations
        .iter()
        .map(|a| {
            let qp = a.fake_quant.calculate_qparams().map_err(fq_err(&a.owner))?;
            Ok((a.owner.clone(), (qp.scales[0] as f64, qp.zero_points[0])))
        })
        .collect::<Result<_, QatError>>()?;
    let prepared = Prepared {
        graph,
        qconfigs: model.qconfigs.clone(),
        placement: model.placement.clone(),
        observers: Vec::new(),
        batches: 0,
    };
    let source = FakeQuantQParams {
        activations,
        weights,
    };
    Ok(convert_with(&prepared, numerics, &source)?)
}
