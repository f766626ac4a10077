//! Read-only views of the workbench for full-screen front ends: the rows of the layer list,
//! one observer's histogram with its quantization range, one layer's weight integers, and a
//! layer's qconfig and one layer's quantized output activation on one input sample. They never
//! change state, so a front end can redraw from them at will; anything that changes state
//! still goes through `Workbench::apply` as a `Command`.

use super::{SessionError, Workbench};
use crate::analysis::{ErrorMode, LayerError};
use crate::engine::Engine;
use crate::observer::Stats;
use crate::qconfig::QConfig;
use crate::workflow::{QOp, QValue};

/// One quantized layer: its path, quantized op, qconfig summary and error on a dataset.
#[derive(Debug, Clone)]
pub struct LayerRow {
    pub layer: String,
    pub op: &'static str,
    /// `activation / weight` observer kinds, or `-` when the layer has no qconfig.
    pub qconfig: String,
    pub error: LayerError,
}

/// An activation observer's statistics and the float range its qparams represent.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramView {
    /// The observer spec qparams are derived with (canonical text).
    pub spec: String,
    /// The observed data range.
    pub min: f32,
    pub max: f32,
    /// Equal bins over `[min, max]`; empty for min/max-only observers.
    pub counts: Vec<f32>,
    /// The qparams and the float range they represent, once calibrated.
    pub range: Option<QRangeView>,
}

/// Activation qparams and the float interval `[(qmin - zp)·s, (qmax - zp)·s]` they cover:
/// values outside it are clipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QRangeView {
    pub scale: f32,
    pub zero_point: i64,
    pub lo: f32,
    pub hi: f32,
}

/// A converted layer's weight as PyTorch's `int_repr()` shows it, with per-row qparams.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightView {
    pub shape: Vec<usize>,
    /// `[out, k]` row-major.
    pub data: Vec<i8>,
    pub k: usize,
    /// One entry, or one per output row.
    pub scales: Vec<f64>,
    pub zero_points: Vec<i32>,
}

/// A converted layer's output activation for one input sample, per-tensor quantized.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationView {
    /// Batch dimension included (always 1).
    pub shape: Vec<usize>,
    /// Row-major integers.
    pub data: Vec<i32>,
    pub scale: f64,
    pub zero_point: i64,
}

impl Workbench {
    /// The engine `convert` targets.
    pub fn engine(&self) -> Engine {
        self.numerics.engine
    }

    /// The converted model's per-layer errors on `data` with the qconfig summary of each, in
    /// graph order (from the cached table when a command already computed it).
    pub fn layer_list(&self, data: &str, mode: ErrorMode) -> Result<Vec<LayerRow>, SessionError> {
        let rows = match self.error_tables.get(&(data.to_string(), mode)) {
            Some(rows) => rows.clone(),
            None => self.layer_rows(data, mode)?,
        };
        Ok(rows
            .into_iter()
            .map(|error| LayerRow {
                layer: error.layer.clone(),
                op: error.op,
                qconfig: self
                    .layer_qconfig(&error.layer)
                    .map_or_else(|| "-".into(), |q| summary(&q)),
                error,
            })
            .collect())
    }

    /// The qconfig `layer` was prepared with (`None`: not prepared, or kept in float).
    pub fn layer_qconfig(&self, layer: &str) -> Option<QConfig> {
        self.prepared.as_ref()?.qconfigs.get(layer)?.clone()
    }

    /// The activation observer owned by `layer`, if the model is prepared and has one.
    pub fn observer_histogram(&self, layer: &str) -> Option<HistogramView> {
        let prepared = self.prepared.as_ref()?;
        let o = prepared.observers.iter().find(|o| o.owner == layer)?;
        let (min, max, counts) = match o.observer.stats() {
            Stats::Histogram { min, max, counts } => (min, max, counts),
            Stats::MinMax { min, max } => (min, max, Vec::new()),
            _ => return None,
        };
        let range = (o.batches > 0)
            .then(|| o.qparams().ok())
            .flatten()
            .and_then(|q| {
                let (&scale, &zero_point) = (q.scales.first()?, q.zero_points.first()?);
                let float = |i: i64| (i - zero_point) as f32 * scale;
                Some(QRangeView {
                    scale,
                    zero_point,
                    lo: float(q.quant_min),
                    hi: float(q.quant_max),
                })
            });
        Some(HistogramView {
            spec: o.spec.to_string(),
            min,
            max,
            counts,
            range,
        })
    }

    /// The converted weight of a conv or linear `layer`.
    pub fn weight_int_repr(&self, layer: &str) -> Option<WeightView> {
        let model = self.quantized.as_ref()?;
        let i = model.graph.nodes.iter().position(|n| n.name == layer)?;
        let w = match &model.ops[i] {
            QOp::Conv(c) => &c.weight,
            QOp::Linear(l) => &l.weight,
            _ => return None,
        };
        Some(WeightView {
            shape: w.shape.clone(),
            data: w.data.clone(),
            k: w.k,
            scales: w.scales.clone(),
            zero_points: w.zero_points.clone(),
        })
    }
}

impl Workbench {
    /// The converted model's quantized output of `layer` on sample `sample` of `data` (an
    /// error when the layer's output is float or not per-tensor).
    pub fn activation_int_repr(
        &self,
        layer: &str,
        data: &str,
        sample: usize,
    ) -> Result<ActivationView, SessionError> {
        let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
        let d = self.dataset(data)?;
        let n = d.len();
        let no_view = |detail: String| SessionError::NoView {
            layer: layer.into(),
            detail,
        };
        if sample >= n {
            return Err(no_view(format!(
                "no sample {sample} in {data} ({n} samples)"
            )));
        }
        // One sample is the run; a model pinned to a larger batch cannot run it alone.
        if let Some((input, b)) = super::feed::pinned_batch(&model.graph)
            && b != 1
        {
            return Err(no_view(format!(
                "model input '{input}' pins batch {b}; a single sample cannot run alone"
            )));
        }
        d.check_model(&model.graph)?;
        let mut found = None;
        model.run(vec![d.rows(sample..sample + 1)], |node, outs| {
            if node.name == layer {
                found = outs.first().cloned();
            }
        })?;
        let not_quantized = || no_view("no per-tensor quantized output".into());
        let Some(QValue::Quant(q)) = found else {
            return Err(not_quantized());
        };
        let (Ok(scale), Ok(zero_point)) = (q.q_scale(), q.q_zero_point()) else {
            return Err(not_quantized());
        };
        Ok(ActivationView {
            shape: q.shape().to_vec(),
            data: q.int_values(),
            scale,
            zero_point,
        })
    }
}

/// `activation / weight` observer kinds.
fn summary(q: &QConfig) -> String {
    format!(
        "{} / {}",
        q.activation.observer().kind.name(),
        q.weight.observer().kind.name()
    )
}
