//! The qparams report (`export qparams`): per quantized module, its activation observer, the
//! output dtype, scheme, scale and zero point, the range the observer saw, the output clip
//! rate on a dataset when one is named, and the weight's dtype, scheme, scales and zero points
//! (with the integer ranges and channel axis `export pytorch` passes on to PyTorch).
//! The rows are what `show qparams` prints, at full precision (the session builds both from one
//! list); each layer's qconfig text is in the context.

use super::document::Report;
use super::{ReportContext, SCHEMA_VERSION};
use serde::Serialize;

/// One quantized module's qparams; `None` where it has none (an uncalibrated observer, a
/// module without a weight, no dataset for the clip rate).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QParamsRow {
    pub layer: String,
    /// The converted op's kind (`qconv_relu`, `qadd`, …), or `observer` before convert.
    pub op: String,
    /// The activation observer, in the session language's text form (prepared models).
    pub observer: Option<String>,
    /// Calibration batches the observer saw.
    pub batches: Option<usize>,
    pub dtype: Option<String>,
    pub qscheme: Option<String>,
    pub scale: Option<f64>,
    pub zero_point: Option<i64>,
    /// The activation observer's integer range (known when it was calibrated here).
    pub quant_min: Option<i64>,
    pub quant_max: Option<i64>,
    pub observed_min: Option<f64>,
    pub observed_max: Option<f64>,
    /// Fraction of the output's float values outside the quantized range on the report's data
    /// (`errors DATA`'s clip%, cumulative mode).
    pub clip_rate: Option<f64>,
    pub weight_dtype: Option<String>,
    pub weight_qscheme: Option<String>,
    /// One scale per output channel, or one.
    pub weight_scale: Vec<f64>,
    pub weight_zero_point: Vec<i64>,
    /// The per-channel axis of the weight's scales (`None` per-tensor).
    pub weight_ch_axis: Option<usize>,
    /// The weight observer's integer range (known when the model was prepared here).
    pub weight_quant_min: Option<i64>,
    pub weight_quant_max: Option<i64>,
    /// Why the observer gave no qparams (`show qparams` prints it; not a column).
    #[serde(skip)]
    pub problem: Option<String>,
}

/// Every quantized module's qparams, in graph order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QParamsReport {
    pub schema_version: u32,
    /// `"qparams"`.
    pub kind: &'static str,
    pub model: String,
    /// The dataset `clip_rate` was measured on, if any.
    pub data: Option<String>,
    pub context: ReportContext,
    pub rows: Vec<QParamsRow>,
}

impl QParamsReport {
    pub fn new(context: ReportContext, data: Option<&str>, rows: Vec<QParamsRow>) -> Self {
        QParamsReport {
            schema_version: SCHEMA_VERSION,
            kind: "qparams",
            model: context.model_file.clone(),
            data: data.map(str::to_string),
            context,
            rows,
        }
    }
}

/// `v` formatted, `-` when absent.
fn or_dash<T>(v: &Option<T>, f: impl Fn(&T) -> String) -> String {
    v.as_ref().map_or_else(|| "-".into(), f)
}

impl Report for QParamsReport {
    fn title(&self) -> String {
        format!("quantization parameters: {}", self.model)
    }

    fn context(&self) -> &ReportContext {
        &self.context
    }

    fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }

    fn headers(&self) -> Vec<&'static str> {
        vec![
            "layer",
            "op",
            "observer",
            "batches",
            "dtype",
            "qscheme",
            "scale",
            "zero_point",
            "quant_min",
            "quant_max",
            "observed_min",
            "observed_max",
            "clip_rate",
            "weight_dtype",
            "weight_qscheme",
            "weight_scale",
            "weight_zero_point",
            "weight_ch_axis",
            "weight_quant_min",
            "weight_quant_max",
        ]
    }

    fn cells(&self) -> Vec<Vec<String>> {
        let text = |v: &Option<String>| or_dash(v, String::clone);
        // Space-separated, so a CSV cell needs no quoting.
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "-".into()
            } else {
                v.join(" ")
            }
        };
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.layer.clone(),
                    r.op.clone(),
                    text(&r.observer),
                    or_dash(&r.batches, usize::to_string),
                    text(&r.dtype),
                    text(&r.qscheme),
                    or_dash(&r.scale, |s| format!("{s:.9e}")),
                    or_dash(&r.zero_point, i64::to_string),
                    or_dash(&r.quant_min, i64::to_string),
                    or_dash(&r.quant_max, i64::to_string),
                    or_dash(&r.observed_min, |v| format!("{v:.6e}")),
                    or_dash(&r.observed_max, |v| format!("{v:.6e}")),
                    or_dash(&r.clip_rate, |v| format!("{v:.6}")),
                    text(&r.weight_dtype),
                    text(&r.weight_qscheme),
                    list(r.weight_scale.iter().map(|s| format!("{s:.9e}")).collect()),
                    list(r.weight_zero_point.iter().map(i64::to_string).collect()),
                    or_dash(&r.weight_ch_axis, usize::to_string),
                    or_dash(&r.weight_quant_min, i64::to_string),
                    or_dash(&r.weight_quant_max, i64::to_string),
                ]
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        vec!["each layer's qconfig is listed in the JSON context.".into()]
    }
}
