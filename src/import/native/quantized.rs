//! The quantized section of a native model (schema version 2): a converted
//! [`QuantizedModel`] as plain data. `graph.json` gets the engine and host profile, the
//! prepared graph's structure, one record per quantized op (its geometry, output scale and zero
//! point, whether it has a bias) and each layer's qconfig text; `weights.safetensors` gets the
//! prepared graph's float tensors under `quantized/…` and the ops' integer tensors under
//! `qop/<node>.…`: `weight` (I8, the weight's own shape), `weight_scale` (F64, one or one per
//! output channel), `weight_zero_point` (I32, likewise), `bias` (F32).
//!
//! Only the integers are stored: the kernels' packed layouts (GEMM panels, tap-major rows) are
//! rebuilt on load by the same constructors `convert` uses, so a file never depends on the
//! host's kernels. For the same reason the ISA tier is recorded as information only: a model
//! saved on an AVX-512 host loads on a NEON host and runs on that host's tier (every tier
//! computes the same integers).
//!
//! Every field is checked before it is used: scales finite and positive, zero points in their
//! dtype's range, tensor dtypes and shapes, and then the constructors' own checks; a bad field
//! is a [`NativeError`] naming it.

use super::{Encoded, GraphBody, NativeError, Tensors, build_graph, encode_graph};
use crate::engine::{Engine, HostProfile, Numerics};
use crate::graph::{Node, Op};
use crate::qnn::dynamic::{DynamicLinear, DynamicLstm, DynamicLstmCell, DynamicWeight, LstmConfig};
use crate::qnn::{ConvParams, PackedWeight, QConv, QFunctional, QLinear, Quantize};
use crate::tensor::{QDType, QParams, QStorage, QTensor};
use crate::workflow::{QOp, QuantizedModel};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A converted model with what the native format keeps beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedQuantized {
    pub model: QuantizedModel,
    /// Each node's qconfig as `qconfig` prints it (`float` for a node kept in float); empty
    /// when the model was not built from a qconfig map the session knows.
    pub qconfigs: BTreeMap<String, String>,
    /// The ISA tier the saving process ran on (information only, module docs); `None` before
    /// saving.
    pub saved_isa: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct QuantizedRecord {
    engine: String,
    profile: String,
    /// Information only (module docs).
    #[serde(default)]
    saved_isa: Option<String>,
    graph: GraphBody,
    ops: Vec<QOpRecord>,
    #[serde(default)]
    qconfigs: BTreeMap<String, String>,
}

/// One node's quantized op; `node` must name the prepared graph's node at the same index.
#[derive(Debug, Serialize, Deserialize)]
struct QOpRecord {
    node: String,
    #[serde(flatten)]
    op: QOpKind,
}

/// An output's per-tensor qparams.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct OutQParams {
    scale: f64,
    zero_point: i64,
}

/// A requantizing layer's epilogue; its weight and bias are tensors.
#[derive(Debug, Serialize, Deserialize)]
struct Epilogue {
    out: OutQParams,
    relu: bool,
    bias: bool,
}

/// A dynamic linear layer; its weight (I8 with qparams, or the f16 values as F32) and bias are
/// tensors.
#[derive(Debug, Serialize, Deserialize)]
struct DynamicRecord {
    float16: bool,
    relu: bool,
    bias: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "qop", rename_all = "snake_case")]
enum QOpKind {
    Float,
    Follow,
    Identity,
    Quantize {
        out: OutQParams,
        dtype: String,
    },
    Dequantize,
    /// Its geometry is the prepared graph's conv node's (stride, padding, dilation, groups):
    /// not repeated here, so the two cannot disagree.
    Conv {
        epilogue: Epilogue,
    },
    Linear {
        epilogue: Epilogue,
    },
    Add {
        out: OutQParams,
    },
    AddRelu {
        out: OutQParams,
    },
    Mul {
        out: OutQParams,
    },
    Cat {
        out: OutQParams,
    },
    Hardswish {
        out: OutQParams,
    },
    DynamicLinear {
        layer: DynamicRecord,
    },
    DynamicLstm {
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        bidirectional: bool,
        batch_first: bool,
        /// `[ih, hh]` per layer and direction, in PyTorch's cell order.
        cells: Vec<[DynamicRecord; 2]>,
    },
}

/// Pushes one tensor of `values` (each `to_le` bytes) onto `tensors`.
fn push<T: Copy, const N: usize>(
    tensors: &mut Vec<Encoded>,
    key: String,
    dtype: Dtype,
    shape: Vec<usize>,
    values: &[T],
    to_le: fn(T) -> [u8; N],
) {
    let bytes = values.iter().flat_map(|&v| to_le(v)).collect();
    tensors.push((key, dtype, shape, bytes));
}

fn push_bias(tensors: &mut Vec<Encoded>, key: &str, bias: Option<&Vec<f32>>) -> bool {
    if let Some(b) = bias {
        push(
            tensors,
            format!("{key}.bias"),
            Dtype::F32,
            vec![b.len()],
            b,
            f32::to_le_bytes,
        );
    }
    bias.is_some()
}

fn push_weight(tensors: &mut Vec<Encoded>, key: &str, w: &PackedWeight) {
    push(
        tensors,
        format!("{key}.weight"),
        Dtype::I8,
        w.shape.clone(),
        &w.data,
        i8::to_le_bytes,
    );
    let n = vec![w.scales.len()];
    push(
        tensors,
        format!("{key}.weight_scale"),
        Dtype::F64,
        n.clone(),
        &w.scales,
        f64::to_le_bytes,
    );
    push(
        tensors,
        format!("{key}.weight_zero_point"),
        Dtype::I32,
        n,
        &w.zero_points,
        i32::to_le_bytes,
    );
}

fn encode_dynamic(tensors: &mut Vec<Encoded>, key: &str, m: &DynamicLinear) -> DynamicRecord {
    let float16 = match &m.weight {
        DynamicWeight::QInt8(w) => {
            push_weight(tensors, key, w);
            false
        }
        DynamicWeight::Float16 { values, out, k } => {
            push(
                tensors,
                format!("{key}.weight"),
                Dtype::F32,
                vec![*out, *k],
                values,
                f32::to_le_bytes,
            );
            true
        }
    };
    DynamicRecord {
        float16,
        relu: m.relu,
        bias: push_bias(tensors, key, m.bias.as_ref()),
    }
}

fn out(scale: f64, zero_point: i64) -> OutQParams {
    OutQParams { scale, zero_point }
}

/// `m`'s record, its tensors pushed onto `tensors`.
pub(super) fn encode(
    m: &QuantizedModel,
    qconfigs: &BTreeMap<String, String>,
    tensors: &mut Vec<Encoded>,
) -> QuantizedRecord {
    let graph = encode_graph(&m.graph, "quantized/", tensors);
    let ops = m
        .graph
        .nodes
        .iter()
        .zip(&m.ops)
        .map(|(node, op)| {
            let key = format!("qop/{}", node.name);
            let op = match op {
                QOp::Float => QOpKind::Float,
                QOp::Follow => QOpKind::Follow,
                QOp::Identity => QOpKind::Identity,
                QOp::Quantize(s) => QOpKind::Quantize {
                    out: out(s.scale, s.zero_point),
                    dtype: s.dtype.to_string(),
                },
                QOp::DeQuantize => QOpKind::Dequantize,
                QOp::Conv(c) => {
                    push_weight(tensors, &key, &c.weight);
                    QOpKind::Conv {
                        epilogue: Epilogue {
                            out: out(c.out_scale, c.out_zero_point),
                            relu: c.relu,
                            bias: push_bias(tensors, &key, c.bias.as_ref()),
                        },
                    }
                }
                QOp::Linear(l) => {
                    push_weight(tensors, &key, &l.weight);
                    QOpKind::Linear {
                        epilogue: Epilogue {
                            out: out(l.out_scale, l.out_zero_point),
                            relu: l.relu,
                            bias: push_bias(tensors, &key, l.bias.as_ref()),
                        },
                    }
                }
                QOp::Add(f) => QOpKind::Add {
                    out: out(f.scale, f.zero_point),
                },
                QOp::AddRelu(f) => QOpKind::AddRelu {
                    out: out(f.scale, f.zero_point),
                },
                QOp::Mul(f) => QOpKind::Mul {
                    out: out(f.scale, f.zero_point),
                },
                QOp::Cat(f) => QOpKind::Cat {
                    out: out(f.scale, f.zero_point),
                },
                QOp::Hardswish { scale, zero_point } => QOpKind::Hardswish {
                    out: out(*scale, *zero_point),
                },
                QOp::DynamicLinear(d) => QOpKind::DynamicLinear {
                    layer: encode_dynamic(tensors, &key, d),
                },
                QOp::DynamicLstm(lstm) => QOpKind::DynamicLstm {
                    input_size: lstm.config.input_size,
                    hidden_size: lstm.config.hidden_size,
                    num_layers: lstm.config.num_layers,
                    bidirectional: lstm.config.bidirectional,
                    batch_first: lstm.config.batch_first,
                    cells: lstm
                        .cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            [
                                encode_dynamic(tensors, &format!("{key}.cell{i}.ih"), &c.ih),
                                encode_dynamic(tensors, &format!("{key}.cell{i}.hh"), &c.hh),
                            ]
                        })
                        .collect(),
                },
            };
            QOpRecord {
                node: node.name.clone(),
                op,
            }
        })
        .collect();
    QuantizedRecord {
        engine: m.numerics.engine.name().into(),
        profile: m.numerics.profile.name().into(),
        saved_isa: Some(m.numerics.isa().to_string()),
        graph,
        ops,
        qconfigs: qconfigs.clone(),
    }
}

/// Reads one node's fields, each error naming the node and the field.
struct Fields<'t, 'a> {
    t: &'t mut Tensors<'a>,
    shown: &'t str,
    node: String,
}

impl Fields<'_, '_> {
    fn err(&self, field: &str, detail: impl ToString) -> NativeError {
        NativeError::Quantized {
            path: self.shown.to_string(),
            node: self.node.clone(),
            field: field.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Output qparams of `dtype`, checked (scale finite and positive, zero point in range).
    fn out(&self, q: OutQParams, dtype: QDType) -> Result<(f64, i64), NativeError> {
        let p = QParams::PerTensor {
            scale: q.scale,
            zero_point: q.zero_point,
        };
        p.validate(dtype, &[])
            .map_err(|e| self.err("out (scale, zero_point)", e))?;
        Ok((q.scale, q.zero_point))
    }

    /// A 1-D tensor's values.
    fn vector<T, const N: usize>(
        &mut self,
        key: &str,
        dtype: Dtype,
        from: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, NativeError> {
        let (_, shape, data) = self.t.raw(key, &[dtype])?;
        if shape.len() != 1 {
            return Err(self.t.err(key, format!("must be 1-D, is {shape:?}")));
        }
        Ok(super::le_values(data, from))
    }

    fn bias(&mut self, key: &str, has: bool, out: usize) -> Result<Option<Vec<f32>>, NativeError> {
        if !has {
            return Ok(None);
        }
        let key = format!("{key}.bias");
        let b = self.vector(&key, Dtype::F32, f32::from_le_bytes)?;
        if b.len() != out {
            return Err(self.t.err(
                &key,
                format!("{} values for {out} output channels", b.len()),
            ));
        }
        Ok(Some(b))
    }

    /// The qint8 weight under `key`: per-tensor when one scale, else per channel along axis 0.
    fn weight(&mut self, key: &str) -> Result<QTensor, NativeError> {
        let wkey = format!("{key}.weight");
        let (_, shape, data) = self.t.raw(&wkey, &[Dtype::I8])?;
        let values: Vec<i8> = data.iter().map(|&b| b as i8).collect();
        let skey = format!("{key}.weight_scale");
        let scales = self.vector(&skey, Dtype::F64, f64::from_le_bytes)?;
        if let Some((i, s)) = scales
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(self.t.err(
                &skey,
                format!("scale {i} is {s}: scales must be finite and positive"),
            ));
        }
        let zkey = format!("{key}.weight_zero_point");
        let zero_points = self.vector(&zkey, Dtype::I32, i32::from_le_bytes)?;
        let (lo, hi) = (QDType::QInt8.qmin(), QDType::QInt8.qmax());
        if let Some((i, z)) = zero_points
            .iter()
            .enumerate()
            .find(|(_, z)| !(lo..=hi).contains(&i64::from(**z)))
        {
            return Err(self.t.err(
                &zkey,
                format!("zero point {i} is {z}, outside qint8's [{lo}, {hi}]"),
            ));
        }
        let qparams = match (scales.as_slice(), zero_points.as_slice()) {
            ([s], [z]) => QParams::PerTensor {
                scale: *s,
                zero_point: i64::from(*z),
            },
            _ => QParams::PerChannel {
                scales,
                zero_points: zero_points.iter().map(|&z| i64::from(z)).collect(),
                axis: 0,
            },
        };
        QTensor::from_int_repr(QStorage::I8(values), &shape, qparams)
            .map_err(|e| self.t.err(&wkey, e.to_string()))
    }

    fn dynamic(&mut self, key: &str, r: &DynamicRecord) -> Result<DynamicLinear, NativeError> {
        let weight = if r.float16 {
            let wkey = format!("{key}.weight");
            let (_, shape, data) = self.t.raw(&wkey, &[Dtype::F32])?;
            let &[out, k] = shape.as_slice() else {
                return Err(self
                    .t
                    .err(&wkey, format!("must be [out, in], is {shape:?}")));
            };
            let values = super::le_values(data, f32::from_le_bytes);
            // Only f16 values (and their saturation bounds) are what conversion makes.
            if let Some(v) = values
                .iter()
                .find(|&&v| crate::qnn::dynamic::round_to_f16(v).to_bits() != v.to_bits())
            {
                return Err(self.t.err(&wkey, format!("{v} is not a float16 value")));
            }
            DynamicWeight::Float16 { values, out, k }
        } else {
            let w = self.weight(key)?;
            if w.shape().len() != 2 {
                return Err(self.t.err(
                    &format!("{key}.weight"),
                    format!("must be [out, in], is {:?}", w.shape()),
                ));
            }
            let packed = PackedWeight::new("linear_dynamic", &w).map_err(|e| self.err(key, e))?;
            DynamicWeight::QInt8(packed)
        };
        Ok(DynamicLinear {
            bias: self.bias(key, r.bias, weight.out())?,
            weight,
            relu: r.relu,
        })
    }

    fn lstm(
        &mut self,
        key: &str,
        config: LstmConfig,
        cells: &[[DynamicRecord; 2]],
    ) -> Result<DynamicLstm, NativeError> {
        let (h, dirs) = (config.hidden_size, config.directions());
        if Some(cells.len()) != config.num_layers.checked_mul(dirs) {
            return Err(self.err(
                "cells",
                format!(
                    "{} cells for {} layers × {dirs} directions",
                    cells.len(),
                    config.num_layers
                ),
            ));
        }
        // Sizes from the file: overflow is an error, not a panic.
        let (Some(gates), Some(stacked)) = (h.checked_mul(4), h.checked_mul(dirs)) else {
            return Err(self.err("hidden_size", format!("{h} is too large")));
        };
        let cells = cells
            .iter()
            .enumerate()
            .map(|(i, [ih, hh])| {
                let in_size = if i < dirs { config.input_size } else { stacked };
                let ih = self.dynamic(&format!("{key}.cell{i}.ih"), ih)?;
                let hh = self.dynamic(&format!("{key}.cell{i}.hh"), hh)?;
                for (name, m, cols) in [("ih", &ih, in_size), ("hh", &hh, h)] {
                    if (m.out_features(), m.in_features()) != (gates, cols) {
                        return Err(self.err(
                            &format!("cell{i}.{name}"),
                            format!(
                                "weight is [{}, {}], must be [{}, {cols}]",
                                m.out_features(),
                                m.in_features(),
                                gates
                            ),
                        ));
                    }
                }
                Ok(DynamicLstmCell { ih, hh })
            })
            .collect::<Result<_, NativeError>>()?;
        Ok(DynamicLstm { config, cells })
    }

    fn functional(&self, q: OutQParams) -> Result<QFunctional, NativeError> {
        let (scale, zero_point) = self.out(q, QDType::QUInt8)?;
        Ok(QFunctional { scale, zero_point })
    }

    fn op(&mut self, kind: QOpKind, node: &Node) -> Result<QOp, NativeError> {
        let key = format!("qop/{}", self.node);
        Ok(match kind {
            QOpKind::Float => QOp::Float,
            QOpKind::Follow => QOp::Follow,
            QOpKind::Identity => QOp::Identity,
            QOpKind::Dequantize => QOp::DeQuantize,
            QOpKind::Quantize { out, dtype } => {
                let dtype = QDType::parse(&dtype)
                    .filter(|d| *d != QDType::QInt32)
                    .ok_or_else(|| {
                        self.err("dtype", format!("'{dtype}' is not quint8 or qint8"))
                    })?;
                let (scale, zero_point) = self.out(out, dtype)?;
                QOp::Quantize(
                    Quantize::new(scale, zero_point, dtype).map_err(|e| self.err("quantize", e))?,
                )
            }
            QOpKind::Conv { epilogue: e } => {
                let Op::Conv(c) = &node.op else {
                    return Err(self.err("qop", format!("conv on a {} node", node.op.kind())));
                };
                let w = self.weight(&key)?;
                if w.shape() != c.weight.shape() {
                    return Err(self.t.err(
                        &format!("{key}.weight"),
                        format!(
                            "shape {:?} is not the conv node's {:?}",
                            w.shape(),
                            c.weight.shape()
                        ),
                    ));
                }
                let (scale, zp) = self.out(e.out, QDType::QUInt8)?;
                let bias = self.bias(&key, e.bias, w.shape()[0])?;
                // As convert builds it from the node.
                let params = ConvParams {
                    stride: c.stride.clone(),
                    padding: c.pad_begin.clone(),
                    dilation: c.dilation.clone(),
                    groups: c.groups,
                };
                let conv = QConv::new(&w, bias, params, scale, zp, e.relu)
                    .map_err(|err| self.err("conv", err))?;
                QOp::Conv(Box::new(conv))
            }
            QOpKind::Linear { epilogue: e } => {
                let w = self.weight(&key)?;
                let (scale, zp) = self.out(e.out, QDType::QUInt8)?;
                let out_features = w.shape().first().copied().unwrap_or(0);
                let bias = self.bias(&key, e.bias, out_features)?;
                let linear = QLinear::new(&w, bias, scale, zp, e.relu)
                    .map_err(|err| self.err("linear", err))?;
                QOp::Linear(Box::new(linear))
            }
            QOpKind::Add { out } => QOp::Add(self.functional(out)?),
            QOpKind::AddRelu { out } => QOp::AddRelu(self.functional(out)?),
            QOpKind::Mul { out } => QOp::Mul(self.functional(out)?),
            QOpKind::Cat { out } => QOp::Cat(self.functional(out)?),
            QOpKind::Hardswish { out } => {
                let f = self.functional(out)?;
                QOp::Hardswish {
                    scale: f.scale,
                    zero_point: f.zero_point,
                }
            }
            QOpKind::DynamicLinear { layer } => {
                QOp::DynamicLinear(Box::new(self.dynamic(&key, &layer)?))
            }
            QOpKind::DynamicLstm {
                input_size,
                hidden_size,
                num_layers,
                bidirectional,
                batch_first,
                cells,
            } => {
                let config = LstmConfig {
                    input_size,
                    hidden_size,
                    num_layers,
                    bidirectional,
                    batch_first,
                };
                QOp::DynamicLstm(Box::new(self.lstm(&key, config, &cells)?))
            }
        })
    }
}

/// The converted model `rec` and its tensors describe, checked; `shown` names `graph.json`.
pub(super) fn decode(
    rec: QuantizedRecord,
    t: &mut Tensors,
    shown: &str,
) -> Result<SavedQuantized, NativeError> {
    let field = |field: &str, detail: String| NativeError::Quantized {
        path: shown.to_string(),
        node: "(model)".into(),
        field: field.into(),
        detail,
    };
    let engine = Engine::parse(&rec.engine).map_err(|e| field("engine", e.to_string()))?;
    let profile = HostProfile::parse(&rec.profile).map_err(|e| field("profile", e.to_string()))?;
    let graph = build_graph(rec.graph, "quantized/", t, shown)?;
    if rec.ops.len() != graph.nodes.len() {
        return Err(field(
            "ops",
            format!("{} ops for {} nodes", rec.ops.len(), graph.nodes.len()),
        ));
    }
    let ops = rec
        .ops
        .into_iter()
        .zip(&graph.nodes)
        .map(|(r, node)| {
            if r.node != node.name {
                return Err(field(
                    "ops",
                    format!("op for '{}' where node '{}' is", r.node, node.name),
                ));
            }
            let mut f = Fields {
                t: &mut *t,
                shown,
                node: r.node,
            };
            // A kernel that takes its data input from operand 0 needs one.
            if node.inputs.is_empty() && !matches!(r.op, QOpKind::Float) {
                return Err(f.err("qop", "a quantized op on a node without inputs"));
            }
            f.op(r.op, node)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SavedQuantized {
        model: QuantizedModel {
            graph,
            ops,
            numerics: Numerics::new(engine, profile),
        },
        qconfigs: rec.qconfigs,
        saved_isa: rec.saved_isa,
    })
}

#[cfg(test)]
mod tests;
