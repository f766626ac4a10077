//! `prepare_qat`: PyTorch eager's `prepare_qat` on a model fused with `fuse_modules_qat`.
//!
//! Fake-quants go where static `prepare` puts observers (the placement logic is `prepare`'s,
//! run with the QAT groups treated as fused modules, so BatchNorm and ReLU stay inside them), and
//! every quantized Conv / Linear gets a weight fake-quant from the qconfig's weight spec. The
//! QAT modules are not separate types: the graph keeps Conv, BatchNorm and ReLU nodes, and the
//! training forward ([`QatModel::train_step`]) gives a Conv+BN group PyTorch's `ConvBn2d`
//! behaviour (NUMERICS §5.3). Each activation fake-quant runs once per forward: QAT modules are
//! not Sequentials, so the double observation of static prepare does not apply.

use super::prepare::prepare;
use super::{Placement, QConfigMap, WorkflowError};
use crate::fake_quant::{FakeQuantError, FakeQuantize};
use crate::graph::{Graph, GraphError, Op, Value};
use crate::qconfig::{QConfig, QuantizerSpec};
use ndarray::ArrayD;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a QAT step failed; each names the module.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QatError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A fake-quant rejected its input or configuration.
    #[error("fake-quant of '{module}': {source}")]
    FakeQuant {
        module: String,
        source: FakeQuantError,
    },
    /// The model or qconfig does not fit QAT.
    #[error("module '{module}': {problem}")]
    Unsupported { module: String, problem: String },
}

/// An activation fake-quant: PyTorch's `activation_post_process` of `owner`.
#[derive(Debug, Clone)]
pub struct ActivationFakeQuant {
    pub owner: String,
    /// The graph value it transforms.
    pub value: String,
    pub fake_quant: FakeQuantize,
}

/// A Conv followed by a BatchNorm trained as one `ConvBn2d` (NUMERICS §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvBn {
    pub conv: String,
    pub bn: String,
}

/// A model prepared for quantization-aware training.
#[derive(Debug, Clone)]
pub struct QatModel {
    /// The fused float graph with boundary stubs; BatchNorm nodes of QAT groups are kept.
    pub graph: Graph,
    pub qconfigs: BTreeMap<String, Option<QConfig>>,
    pub placement: BTreeMap<String, Placement>,
    /// Activation fake-quants in graph order.
    pub activations: Vec<ActivationFakeQuant>,
    /// Weight fake-quants by Conv / Linear node.
    pub weights: BTreeMap<String, FakeQuantize>,
    pub conv_bn: Vec<ConvBn>,
    /// BatchNorm `num_batches_tracked` by BN node (ONNX does not export it: starts at 0).
    pub num_batches_tracked: BTreeMap<String, i64>,
    /// `model.train()` (true) or `model.eval()`.
    pub training: bool,
    /// `freeze_bn_stats` was applied: BN uses running statistics and stops updating them.
    pub bn_frozen: bool,
}

fn fake_quant(module: &str, spec: &QuantizerSpec) -> Result<FakeQuantize, QatError> {
    let QuantizerSpec::FakeQuantize(fq) = spec else {
        return Err(QatError::Unsupported {
            module: module.into(),
            problem: "the qconfig has an observer where QAT needs a fake-quant \
                      (use get_default_qat_qconfig)"
                .into(),
        });
    };
    fq.build().map_err(|source| QatError::FakeQuant {
        module: module.into(),
        source,
    })
}

/// PyTorch's `prepare_qat`: see the module docs. `graph` should be fused with
/// `fuse_modules_qat`; the qconfigs must carry fake-quants.
pub fn prepare_qat(graph: &Graph, qconfigs: &QConfigMap) -> Result<QatModel, QatError> {
    let mut conv_bn = Vec::new();
    for f in graph.fusions.iter().filter(|f| f.qat) {
        match (f.types[0].as_str(), f.types.get(1)) {
            (t, Some(bn)) if t.starts_with("Conv") && bn.starts_with("BatchNorm") => {
                conv_bn.push(ConvBn {
                    conv: f.modules[0].clone(),
                    bn: f.modules[1].clone(),
                });
            }
            (_, Some(bn)) if bn.starts_with("BatchNorm") => {
                return Err(QatError::Unsupported {
                    module: f.modules[0].clone(),
                    problem: format!("QAT of a fused {} + {bn} is not implemented", f.types[0]),
                });
            }
            _ => {}
        }
    }
    // `prepare` treats eval-fused groups as one module; a QAT group is placed the same way.
    let mut as_fused = graph.clone();
    for f in &mut as_fused.fusions {
        f.qat = false;
    }
    let prepared = prepare(&as_fused, qconfigs)?;
    let mut out = prepared.graph;
    out.fusions = graph.fusions.clone();
    let activations = prepared
        .observers
        .iter()
        .map(|o| {
            let q = prepared.qconfigs[&o.owner]
                .as_ref()
                .expect("observed modules have a qconfig");
            Ok(ActivationFakeQuant {
                owner: o.owner.clone(),
                value: o.value.clone(),
                fake_quant: fake_quant(&o.owner, &q.activation)?,
            })
        })
        .collect::<Result<Vec<_>, QatError>>()?;
    let mut weights = BTreeMap::new();
    for node in &out.nodes {
        if matches!(node.op, Op::Conv(_) | Op::Linear(_))
            && prepared.placement.get(&node.name) == Some(&Placement::Quantized)
        {
            let q = prepared.qconfigs[&node.name]
                .as_ref()
                .expect("quantized modules have a qconfig");
            weights.insert(node.name.clone(), fake_quant(&node.name, &q.weight)?);
        }
    }
    // A Conv+BN kept in float (qconfig None) stays a plain Conv then BN, as PyTorch leaves it.
    conv_bn.retain(|c| weights.contains_key(&c.conv));
    let num_batches_tracked = out
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::BatchNorm(_)))
        .map(|n| (n.name.clone(), 0))
        .collect();
    Ok(QatModel {
        graph: out,
        qconfigs: prepared.qconfigs,
        placement: prepared.placement,
        activations,
        weights,
        conv_bn,
        num_batches_tracked,
        training: true,
        bn_frozen: false,
    })
}

fn flag(on: bool) -> Value {
    Value::I64(ArrayD::from_elem(ndarray::IxDyn(&[1]), on as i64))
}

fn vector(v: &[f32]) -> Value {
    Value::F32(ArrayD::from_shape_vec(ndarray::IxDyn(&[v.len()]), v.to_vec()).expect("1-d"))
}

/// The state-dict entries of a fake-quant under `prefix` (PyTorch's buffer names; the
/// observer's constant `eps` is not listed).
fn fake_quant_state(prefix: &str, fq: &FakeQuantize, dict: &mut BTreeMap<String, Value>) {
    let obs = format!("{prefix}.activation_post_process");
    dict.insert(
        format!("{prefix}.fake_quant_enabled"),
        flag(fq.fake_quant_enabled()),
    );
    dict.insert(
        format!("{prefix}.observer_enabled"),
        flag(fq.observer_enabled()),
    );
    dict.insert(format!("{prefix}.scale"), vector(fq.scale()));
    let zp = fq.zero_point();
    dict.insert(
        format!("{prefix}.zero_point"),
        Value::I64(ArrayD::from_shape_vec(ndarray::IxDyn(&[zp.len()]), zp.to_vec()).expect("1-d")),
    );
    let (min, max) = match fq.stats() {
        crate::observer::Stats::MinMax { min, max } => (
            Value::F32(ArrayD::from_elem(ndarray::IxDyn(&[]), min)),
            Value::F32(ArrayD::from_elem(ndarray::IxDyn(&[]), max)),
        ),
        crate::observer::Stats::PerChannel { mins, maxs, .. } => (vector(&mins), vector(&maxs)),
        _ => return,
    };
    dict.insert(format!("{obs}.min_val"), min);
    dict.insert(format!("{obs}.max_val"), max);
}

impl QatModel {
    /// PyTorch's `model.train()` / `model.eval()` (does not undo `freeze_bn_stats`).
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
    }

    /// PyTorch's `apply(freeze_bn_stats)`: BatchNorms of Conv+BN groups normalise with running
    /// statistics and stop updating them.
    pub fn freeze_bn_stats(&mut self) {
        self.bn_frozen = true;
    }

    /// PyTorch's `apply(disable_observer)` / `enable_observer` on every fake-quant: qparams
    /// freeze at their current values.
    pub fn set_observers_enabled(&mut self, on: bool) {
        for a in &mut self.activations {
            a.fake_quant.set_observer_enabled(on);
        }
        for w in self.weights.values_mut() {
            w.set_observer_enabled(on);
        }
    }

    /// The prepared model's state dict under PyTorch's keys: `conv1.weight`, `conv1.bn.*` for
    /// a Conv+BN group, `fc.weight_fake_quant.scale`,
    /// `quant.activation_post_process.activation_post_process.min_val`, ... (modules keyed by
    /// qlab node name).
    pub fn state_dict(&self) -> BTreeMap<String, Value> {
        let mut dict = BTreeMap::new();
        let f32v = |a: ArrayD<f32>| Value::F32(a);
        for node in &self.graph.nodes {
            let name = &node.name;
            match &node.op {
                Op::Conv(c) => {
                    dict.insert(format!("{name}.weight"), f32v(c.weight.clone()));
                    if let Some(b) = &c.bias {
                        dict.insert(format!("{name}.bias"), f32v(b.clone().into_dyn()));
                    }
                }
                Op::Linear(l) => {
                    dict.insert(format!("{name}.weight"), f32v(l.weight.clone().into_dyn()));
                    if let Some(b) = &l.bias {
                        dict.insert(format!("{name}.bias"), f32v(b.clone().into_dyn()));
                    }
                }
                Op::BatchNorm(b) => {
                    let prefix = match self.conv_bn.iter().find(|c| &c.bn == name) {
                        Some(c) => format!("{}.bn", c.conv),
                        None => name.clone(),
                    };
                    for (key, v) in [
                        ("weight", &b.weight),
                        ("bias", &b.bias),
                        ("running_mean", &b.running_mean),
                        ("running_var", &b.running_var),
                    ] {
                        dict.insert(format!("{prefix}.{key}"), f32v(v.clone().into_dyn()));
                    }
                    let n = self.num_batches_tracked.get(name).copied().unwrap_or(0);
                    dict.insert(
                        format!("{prefix}.num_batches_tracked"),
                        Value::I64(ArrayD::from_elem(ndarray::IxDyn(&[]), n)),
                    );
                }
                _ => {}
            }
        }
        for (node, fq) in &self.weights {
            fake_quant_state(&format!("{node}.weight_fake_quant"), fq, &mut dict);
        }
        for a in &self.activations {
            fake_quant_state(
                &format!("{}.activation_post_process", a.owner),
                &a.fake_quant,
                &mut dict,
            );
        }
        dict
    }
}
