//! `convert`: the pre-convert check, then every quantized node swapped for its quantized module
//! (PyTorch's `convert` / `swap_module`): weights quantized with the qconfig's weight observer,
//! output qparams from the activation observers collected during calibration.

use super::fuse::detect;
use super::qmodel::{QOp, QuantizedModel};
use super::{ActivationObserver, Placement, Prepared, WorkflowError};
use crate::engine::{Engine, Numerics};
use crate::graph::{Node, Op, Unary};
use crate::observer::observe_and_quantize;
use crate::qconfig::QConfig;
use crate::qnn::{ConvParams, QConv, QFunctional, QLinear, QnnError, Quantize};
use crate::tensor::{DType, QDType};
use std::fmt;

/// How serious a finding of the pre-convert check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Convert would give a quality or speed problem, but works.
    Warning,
    /// Convert cannot work.
    Error,
}

/// One problem the pre-convert check found, with the module and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub module: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{level}: {}: {} (fix: {})",
            self.module, self.problem, self.fix
        )
    }
}

fn finding(severity: Severity, module: &str, problem: String, fix: &str) -> Finding {
    Finding {
        severity,
        module: module.into(),
        problem,
        fix: fix.into(),
    }
}

/// The observers' problems: no data, non-finite data.
fn observer_findings(obs: &ActivationObserver) -> Option<Finding> {
    if obs.nonfinite > 0 {
        return Some(finding(
            Severity::Error,
            &obs.owner,
            format!("its observer saw {} NaN / infinite values", obs.nonfinite),
            "clean the calibration data, or find the layer that overflows with `errors`",
        ));
    }
    (obs.batches == 0).then(|| {
        finding(
            Severity::Error,
            &obs.owner,
            "its observer saw no data".into(),
            "calibrate with a dataset before convert",
        )
    })
}

/// What the engine cannot do with a module's qconfig.
fn qconfig_findings(module: &str, op: &Op, q: &QConfig, engine: Engine) -> Vec<Finding> {
    let mut out = Vec::new();
    let act = q.activation.observer();
    if act.dtype != DType::QUInt8 {
        out.push(finding(
            Severity::Error,
            module,
            format!("the {engine} engine's static kernels take quint8 activations, the qconfig asks for {}", act.dtype),
            "use an activation observer with dtype=quint8 (float16 belongs to quantize_dynamic)",
        ));
    }
    if matches!(op, Op::Conv(_) | Op::Linear(_)) && q.weight.observer().dtype != DType::QInt8 {
        out.push(finding(
            Severity::Error,
            module,
            format!(
                "the {engine} engine's static kernels take qint8 weights, the qconfig asks for {}",
                q.weight.observer().dtype
            ),
            "use a weight observer with dtype=qint8",
        ));
    }
    if engine.float_requant()
        && act.dtype == DType::QUInt8
        && act.quant_range().is_ok_and(|r| r.quant_max > 127)
        && matches!(op, Op::QuantStub)
    {
        out.push(finding(
            Severity::Warning,
            module,
            "activations use the full 0..255 range: fbgemm's AVX2 kernels can saturate int16 pairs (NUMERICS §8)".into(),
            "set reduce_range=true in the activation observer, or use the qnnpack engine",
        ));
    }
    out
}

/// What the engine cannot do with the qconfigs of the quantized modules (needs no data).
pub fn check_qconfigs(prepared: &Prepared, engine: Engine) -> Vec<Finding> {
    let mut out = Vec::new();
    for node in &prepared.graph.nodes {
        if prepared.placement.get(&node.name) != Some(&Placement::Quantized) {
            continue;
        }
        if let Some(Some(q)) = prepared.qconfigs.get(&node.name) {
            out.extend(qconfig_findings(&node.name, &node.op, q, engine));
        }
    }
    out
}

/// PyTorch's checks before convert, and qlab's: every problem, errors first.
pub fn check(prepared: &Prepared, engine: Engine) -> Vec<Finding> {
    let mut out: Vec<Finding> = prepared
        .observers
        .iter()
        .filter_map(observer_findings)
        .collect();
    out.extend(check_qconfigs(prepared, engine));
    // Module fusions only: an unfused add+ReLU is the user's choice (`add_relu=off`).
    let modules_only = super::fuse::FuseOptions { add_relu: false };
    for group in detect(&prepared.graph, modules_only) {
        if prepared.placement.get(&group[0]) == Some(&Placement::Quantized) {
            out.push(finding(
                Severity::Warning,
                &group[0],
                format!("{group:?} can be fused but is not: it is observed and requantized twice"),
                "fuse the modules (`fuse auto`) before prepare",
            ));
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn observed(prepared: &Prepared, module: &str) -> Result<(f64, i64), WorkflowError> {
    let obs = prepared
        .observers
        .iter()
        .find(|o| o.owner == module)
        .ok_or_else(|| WorkflowError::Check {
            module: module.into(),
            problem: "this quantized module has no activation observer".into(),
            fix: "run prepare again".into(),
        })?;
    let qp = obs.qparams().map_err(|source| WorkflowError::Observer {
        module: module.into(),
        source,
    })?;
    Ok((qp.scales[0] as f64, qp.zero_points[0]))
}

fn quantize_weight(
    module: &str,
    q: &QConfig,
    data: &[f32],
    shape: &[usize],
) -> Result<crate::tensor::QTensor, WorkflowError> {
    observe_and_quantize(q.weight.observer(), data, shape)
        .map(|(t, _)| t)
        .map_err(|source| WorkflowError::Observer {
            module: module.into(),
            source,
        })
}

/// Whether the fused group led by `node` ends in an activation its kernel applies.
fn fused_relu(prepared: &Prepared, node: &Node) -> bool {
    prepared.graph.fusions.iter().any(|f| {
        !f.qat && f.modules[0] == node.name && f.types.iter().skip(1).any(|t| t.starts_with("ReLU"))
    })
}

/// Where convert takes output qparams and quantized weights from: the calibrated observers for
/// static PTQ, the fake-quants for QAT.
pub(crate) trait QParamSource {
    /// The output (scale, zero point) of a quantized module.
    fn activation(&self, module: &str) -> Result<(f64, i64), WorkflowError>;
    /// The quantized weight of a Conv / Linear module: by default the qconfig's weight observer
    /// run on the float weight.
    fn weight(
        &self,
        module: &str,
        q: &QConfig,
        data: &[f32],
        shape: &[usize],
    ) -> Result<crate::tensor::QTensor, WorkflowError> {
        quantize_weight(module, q, data, shape)
    }
}

impl QParamSource for Prepared {
    fn activation(&self, module: &str) -> Result<(f64, i64), WorkflowError> {
        observed(self, module)
    }
}

fn quantized_op(
    prepared: &Prepared,
    source: &dyn QParamSource,
    node: &Node,
) -> Result<QOp, WorkflowError> {
    let module_err = |source: QnnError| WorkflowError::Module {
        module: node.name.clone(),
        source,
    };
    let qconfig = || {
        prepared
            .qconfigs
            .get(&node.name)
            .cloned()
            .flatten()
            .ok_or_else(|| WorkflowError::Check {
                module: node.name.clone(),
                problem: "a quantized module without a qconfig".into(),
                fix: "run prepare again".into(),
            })
    };
    Ok(match &node.op {
        Op::QuantStub => {
            let (s, z) = source.activation(&node.name)?;
            QOp::Quantize(Quantize::new(s, z, QDType::QUInt8).map_err(module_err)?)
        }
        Op::DeQuantStub => QOp::DeQuantize,
        Op::Conv(c) => {
            let q = qconfig()?;
            let w = c.weight.as_standard_layout();
            let wq = source.weight(&node.name, &q, w.as_slice().expect("standard"), w.shape())?;
            let (s, z) = source.activation(&node.name)?;
            let params = ConvParams {
                stride: c.stride.clone(),
                padding: c.pad_begin.clone(),
                dilation: c.dilation.clone(),
                groups: c.groups,
            };
            let bias = c.bias.as_ref().map(|b| b.to_vec());
            let relu = fused_relu(prepared, node);
            QOp::Conv(Box::new(
                QConv::new(&wq, bias, params, s, z, relu).map_err(module_err)?,
            ))
        }
        Op::Linear(l) => {
            let q = qconfig()?;
            let w = l.weight.as_standard_layout();
            let wq = source.weight(&node.name, &q, w.as_slice().expect("standard"), w.shape())?;
            let (s, z) = source.activation(&node.name)?;
            let bias = l.bias.as_ref().map(|b| b.to_vec());
            let relu = fused_relu(prepared, node);
            QOp::Linear(Box::new(
                QLinear::new(&wq, bias, s, z, relu).map_err(module_err)?,
            ))
        }
        Op::Unary(Unary::HardSwish) => {
            let (scale, zero_point) = source.activation(&node.name)?;
            QOp::Hardswish { scale, zero_point }
        }
        Op::Add | Op::Mul | Op::Concat { .. } => {
            let (s, z) = source.activation(&node.name)?;
            let f = QFunctional::new(s, z);
            match node.op {
                Op::Add if fused_relu(prepared, node) => QOp::AddRelu(f),
                Op::Add => QOp::Add(f),
                Op::Mul => QOp::Mul(f),
                _ => QOp::Cat(f),
            }
        }
        _ => QOp::Follow,
    })
}

/// Converts a calibrated model for `numerics`. Fails on any error finding of [`check`].
pub fn convert(prepared: &Prepared, numerics: Numerics) -> Result<QuantizedModel, WorkflowError> {
    if let Some(f) = check(prepared, numerics.engine)
        .into_iter()
        .find(|f| f.severity == Severity::Error)
    {
        return Err(WorkflowError::Check {
            module: f.module,
            problem: f.problem,
            fix: f.fix,
        });
    }
    convert_with(prepared, numerics, prepared)
}

/// Builds the quantized model of `prepared` with qparams from `source`, without the
/// pre-convert check.
pub(crate) fn convert_with(
    prepared: &Prepared,
    numerics: Numerics,
    source: &dyn QParamSource,
) -> Result<QuantizedModel, WorkflowError> {
    let ops = prepared
        .graph
        .nodes
        .iter()
        .map(|node| match prepared.placement.get(&node.name) {
            Some(Placement::Quantized) => quantized_op(prepared, source, node),
            Some(Placement::Absorbed) => Ok(QOp::Identity),
            _ => Ok(QOp::Float),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(QuantizedModel {
        graph: prepared.graph.clone(),
        ops,
        numerics,
    })
}

/// The calibrated observers, except for the modules whose output qparams are given.
struct Overridden<'a> {
    prepared: &'a Prepared,
    given: &'a std::collections::HashMap<String, (f64, i64)>,
}

impl QParamSource for Overridden<'_> {
    fn activation(&self, module: &str) -> Result<(f64, i64), WorkflowError> {
        match self.given.get(module) {
            Some(&qp) => Ok(qp),
            None => observed(self.prepared, module),
        }
    }
}

/// [`convert`] with the output (scale, zero point) of some modules given (by node name) instead
/// of derived from their observers: how a model is rebuilt with another tool's qparams.
pub fn convert_with_qparams(
    prepared: &Prepared,
    numerics: Numerics,
    given: &std::collections::HashMap<String, (f64, i64)>,
) -> Result<QuantizedModel, WorkflowError> {
    if let Some(f) = check(prepared, numerics.engine)
        .into_iter()
        .find(|f| f.severity == Severity::Error && !given.contains_key(&f.module))
    {
        return Err(WorkflowError::Check {
            module: f.module,
            problem: f.problem,
            fix: f.fix,
        });
    }
    convert_with(prepared, numerics, &Overridden { prepared, given })
}
