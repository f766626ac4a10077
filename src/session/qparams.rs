//! `show qparams` and `export qparams`: one list of every quantized module's quantization
//! parameters, which the verb prints and the report writes, so the two cannot disagree. Once
//! converted, the list is the converted model's ops (output qparams and weights), each with
//! its activation observer's spec and observed range when the model was prepared in this
//! session (a loaded model has no observers); before convert, the observers themselves.

use super::{Output, SessionError, Table, Workbench};
use crate::analysis::ErrorMode;
use crate::observer::{ObserverSpec, Stats};
use crate::qnn::PackedWeight;
use crate::report::QParamsRow;
use crate::tensor::{QDType, QScheme};
use crate::workflow::{ActivationObserver, QOp};
use std::collections::BTreeMap;

/// A row with only the layer and op set.
fn row(layer: &str, op: &str) -> QParamsRow {
    QParamsRow {
        layer: layer.into(),
        op: op.into(),
        observer: None,
        batches: None,
        dtype: None,
        qscheme: None,
        scale: None,
        zero_point: None,
        quant_min: None,
        quant_max: None,
        observed_min: None,
        observed_max: None,
        clip_rate: None,
        weight_dtype: None,
        weight_qscheme: None,
        weight_scale: Vec::new(),
        weight_zero_point: Vec::new(),
        weight_ch_axis: None,
        weight_quant_min: None,
        weight_quant_max: None,
        problem: None,
    }
}

/// Fills in what the observer `o` knows: its spec, batches, range, and (once it has seen data)
/// the qparams it derives, unless the row has them from the converted model.
fn observed(r: &mut QParamsRow, o: &ActivationObserver) {
    r.observer = Some(o.spec.to_string());
    r.batches = Some(o.batches);
    if let Ok(range) = o.spec.quant_range() {
        (r.quant_min, r.quant_max) = (Some(range.quant_min), Some(range.quant_max));
    }
    if let Stats::MinMax { min, max } | Stats::Histogram { min, max, .. } = o.observer.stats() {
        r.observed_min = Some(f64::from(min));
        r.observed_max = Some(f64::from(max));
    }
    if r.scale.is_some() || o.batches == 0 {
        return;
    }
    match o.qparams() {
        Ok(q) => {
            r.dtype = Some(q.dtype.to_string());
            r.qscheme = Some(q.qscheme.to_string());
            r.scale = q.scales.first().map(|&s| f64::from(s));
            r.zero_point = q.zero_points.first().copied();
        }
        Err(e) => r.problem = Some(e.to_string()),
    }
}

/// Fills in the packed weight's qparams (symmetric schemes in the affine form convert stores;
/// a packed weight's channels are always on axis 0), with the weight observer's integer range
/// when the module's qconfig is known.
fn weight(r: &mut QParamsRow, w: &PackedWeight, spec: Option<&ObserverSpec>) {
    r.weight_dtype = Some(QDType::QInt8.to_string());
    let scheme = if w.scales.len() == 1 {
        QScheme::PerTensorAffine
    } else {
        r.weight_ch_axis = Some(0);
        QScheme::PerChannelAffine
    };
    if let Some(range) = spec.and_then(|s| s.quant_range().ok()) {
        (r.weight_quant_min, r.weight_quant_max) = (Some(range.quant_min), Some(range.quant_max));
    }
    r.weight_qscheme = Some(scheme.to_string());
    r.weight_scale = w.scales.clone();
    r.weight_zero_point = w.zero_points.iter().map(|&z| i64::from(z)).collect();
}

impl Workbench {
    /// Every quantized module's qparams (module docs), with the output clip rate on `data`
    /// when given (`errors DATA`'s, cumulative).
    pub(super) fn qparams_rows(
        &mut self,
        data: Option<&str>,
    ) -> Result<Vec<QParamsRow>, SessionError> {
        let clip: BTreeMap<String, f64> = match data {
            Some(d) => self
                .error_table(d, ErrorMode::Cumulative)?
                .iter()
                .map(|e| (e.layer.clone(), e.clip_rate()))
                .collect(),
            None => BTreeMap::new(),
        };
        let observers: BTreeMap<&str, &ActivationObserver> = self
            .prepared
            .iter()
            .flat_map(|p| &p.observers)
            .map(|o| (o.owner.as_str(), o))
            .collect();
        let mut rows = match &self.quantized {
            Some(model) => model
                .graph
                .nodes
                .iter()
                .zip(&model.ops)
                .filter_map(|(n, op)| {
                    let (s, z, w) = match op {
                        QOp::Quantize(q) => (q.scale, q.zero_point, None),
                        QOp::Conv(c) => (c.out_scale, c.out_zero_point, Some(&c.weight)),
                        QOp::Linear(l) => (l.out_scale, l.out_zero_point, Some(&l.weight)),
                        QOp::Add(f) | QOp::AddRelu(f) | QOp::Mul(f) | QOp::Cat(f) => {
                            (f.scale, f.zero_point, None)
                        }
                        QOp::Hardswish { scale, zero_point } => (*scale, *zero_point, None),
                        _ => return None,
                    };
                    let mut r = row(&n.name, op.kind());
                    let dtype = match op {
                        QOp::Quantize(q) => q.dtype,
                        _ => QDType::QUInt8,
                    };
                    r.dtype = Some(dtype.to_string());
                    r.qscheme = Some(QScheme::PerTensorAffine.to_string());
                    (r.scale, r.zero_point) = (Some(s), Some(z));
                    if let Some(w) = w {
                        let spec = self
                            .prepared
                            .as_ref()
                            .and_then(|p| p.qconfigs.get(&n.name)?.as_ref())
                            .map(|q| q.weight.observer());
                        weight(&mut r, w, spec);
                    }
                    if let Some(o) = observers.get(n.name.as_str()) {
                        observed(&mut r, o);
                    }
                    Some(r)
                })
                .collect(),
            None => {
                let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
                prepared
                    .observers
                    .iter()
                    .map(|o| {
                        let mut r = row(&o.owner, "observer");
                        observed(&mut r, o);
                        r
                    })
                    .collect::<Vec<_>>()
            }
        };
        for r in &mut rows {
            r.clip_rate = clip.get(&r.layer).copied();
        }
        Ok(rows)
    }

    /// The converted model's output and weight qparams, else the observers' statistics.
    pub(super) fn show_qparams(&mut self) -> Result<Output, SessionError> {
        let rows = self.qparams_rows(None)?;
        let dash = || "-".to_string();
        let sci9 = |v: Option<f64>| v.map_or_else(dash, |s| format!("{s:.9e}"));
        let sci6 = |v: Option<f64>| v.map_or_else(dash, |s| format!("{s:.6e}"));
        let zp = |v: Option<i64>| v.map_or_else(dash, |z| z.to_string());
        if let Some(model) = &self.quantized {
            let rows = rows
                .iter()
                .map(|r| {
                    let w = &r.weight_scale;
                    let lo = w.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = w.iter().copied().fold(0.0, f64::max);
                    let weight = match w.len() {
                        0 => String::new(),
                        1 => format!("per-tensor scale {lo:.6e}"),
                        n => format!("per-channel ×{n} scale {lo:.3e}..{hi:.3e}"),
                    };
                    vec![
                        r.layer.clone(),
                        r.op.clone(),
                        sci9(r.scale),
                        zp(r.zero_point),
                        weight,
                    ]
                })
                .collect();
            return Ok(Output::Table {
                title: format!("converted model ({})", model.numerics.engine),
                table: Table {
                    headers: Table::header_row(&["node", "op", "out_scale", "out_zp", "weight"]),
                    rows,
                },
            });
        }
        let rows = rows
            .into_iter()
            .map(|r| {
                let (s, z) = match (&r.problem, r.batches) {
                    (_, Some(0)) | (_, None) => (dash(), dash()),
                    (Some(e), _) => (format!("error: {e}"), dash()),
                    (None, _) => (sci9(r.scale), zp(r.zero_point)),
                };
                vec![
                    r.layer,
                    r.observer.unwrap_or_default(),
                    r.batches.unwrap_or(0).to_string(),
                    sci6(r.observed_min),
                    sci6(r.observed_max),
                    s,
                    z,
                ]
            })
            .collect();
        Ok(Output::Table {
            title: "observers (prepared model)".into(),
            table: Table {
                headers: Table::header_row(&[
                    "owner",
                    "observer",
                    "batches",
                    "min",
                    "max",
                    "scale",
                    "zero_point",
                ]),
                rows,
            },
        })
    }
}
