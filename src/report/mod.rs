//! Reports: the per-layer error table (here), weight errors, an engine comparison and a
//! sensitivity ranking (`kinds.rs`), the quantization parameters (`qparams.rs`), each as a
//! versioned JSON document, CSV, Markdown, or one self-contained HTML page (the error page with an SQNR chart and its worst layers' observer
//! histograms as inline SVG), all written by one renderer (`document.rs`). Output is a pure
//! function of the rows (no timestamps, fixed float formatting), so a replayed session writes
//! byte-identical files.
//!
//! JSON schema history (`schema_version`):
//! * 1 — `layer, op, sqnr_db, mse, max_abs, mean_error, cosine, rmse_over_scale, clip_rate` per
//!   row (`sqnr_db` is `null` when infinite);
//! * 2 — adds `input_clip_rate` (`null` for an op with no quantized operand) and
//!   `saturated_pairs` (an integer) per row; every version-1 field is unchanged. The metrics
//!   are defined in `analysis::layers`.
//! * 3 — adds `context`: qlab's version, engine, host profile and ISA tier, the model file's
//!   name and SHA-256, every loaded dataset's fingerprint (samples, shape, SHA-256 of its
//!   inputs and labels), the float and quantized accuracy on the report's data (when it has
//!   labels) and each layer's qconfig. Rows are unchanged.
//! * 4 — adds `kind` to every report: `"errors"` (this table; every version-3 field unchanged)
//!   and three new kinds, each with `schema_version`, `kind`, `model`, `context` and `rows`
//!   (graph order unless said): `"weights"` (`errors weights`' table, worst first: `weight`
//!   spec; rows `layer, op, shape, sqnr_db, mse, max_abs, cosine, rmse_over_scale`),
//!   `"compare"` (`compare engines`: `a`, `b`, `profile`, `data`, `a_accuracy`, `b_accuracy`;
//!   rows `layer, op, outputs, differing, differ_rate, max_lsb`) and `"sensitivity"`
//!   (`sensitivity`, largest recovery first: `data`, `calib`, `calib_batches`, `metric`
//!   (`accuracy` or `output_sqnr_db`), `all_quantized`; rows `layer, only_this, all_but_this,
//!   recovered`). An HTML error report also shows the observer histograms of its worst layers
//!   (they are not part of the JSON). A fifth kind, `"qparams"` (`export qparams`: `data`;
//!   rows `layer, op, observer, batches, dtype, qscheme, scale, zero_point, observed_min,
//!   observed_max, clip_rate, weight_dtype, weight_qscheme, weight_scale, weight_zero_point`),
//!   came later within version 4: it changes no other kind. Later still within version 4,
//!   additive: `qparams` rows gain `quant_min, quant_max, weight_ch_axis, weight_quant_min,
//!   weight_quant_max`, and a sixth kind, `"pytorch"` (`export pytorch`'s JSON, `pytorch.rs`:
//!   `model`, `engine`, `context`, `modules` with `module, node, op, functional, scope,
//!   activation, weight`; the qparams as `dtype, qscheme, scale[], zero_point[], ch_axis,
//!   quant_min, quant_max`).
//!
//! The record of a `qlab run` replay (`replay.rs`, as JSON or as JUnit XML from `junit.rs`) is
//! the exception: it carries each command's time, so it differs from run to run.

mod document;
mod html;
mod junit;
mod kinds;
mod plot;
mod pytorch;
mod qparams;
mod replay;

pub use document::Report;
pub use junit::{junit_xml, xml_escape};
pub use kinds::{
    CompareReport, CompareRow, SensitivityReport, SensitivityRow, SensitivitySource, WeightReport,
    WeightRow,
};
pub use plot::{HistogramPlot, PlotError, PlotFormat, errors_plot, histogram_plot};
pub use pytorch::{FunctionalSite, TorchModule, TorchQParams, TorchQParamsFile, apply_script};
pub use qparams::{QParamsReport, QParamsRow};
pub use replay::{
    CommandResult, Comparison, REPLAY_SCHEMA_VERSION, ReplayReport, SkippedLine, Status, Summary,
};

use crate::analysis::{ErrorColumn, ErrorMode, LayerError};
use serde::Serialize;

/// The JSON schema version; bump it when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 4;

/// One layer of an error report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub layer: String,
    pub op: String,
    pub sqnr_db: f64,
    pub mse: f64,
    pub max_abs: f64,
    pub mean_error: f64,
    pub cosine: f64,
    pub rmse_over_scale: f64,
    pub clip_rate: f64,
    pub input_clip_rate: Option<f64>,
    pub saturated_pairs: u64,
}

/// A per-layer activation error report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorReport {
    pub schema_version: u32,
    /// `"errors"` (schema 4).
    pub kind: &'static str,
    /// The model's file name (a path would differ between replays from other directories).
    pub model: String,
    pub engine: String,
    pub data: String,
    pub mode: String,
    /// Where the numbers come from.
    pub context: ReportContext,
    /// Graph order.
    pub rows: Vec<ReportRow>,
    /// The worst layers' observer histograms, for the HTML page only (`None`: not gathered).
    #[serde(skip)]
    pub histograms: Option<WorstHistograms>,
}

/// The observer histograms of an error report's worst layers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorstHistograms {
    /// Why there are none at all (the model was not calibrated with observers).
    pub missing: Option<String>,
    /// Worst first.
    pub layers: Vec<HistogramFigure>,
}

/// One worst layer: its SQNR and its histogram as SVG, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramFigure {
    pub layer: String,
    pub sqnr_db: f64,
    pub svg: Result<String, String>,
}

/// What a report's numbers were computed from, so two reports can be told apart (schema 3).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReportContext {
    pub qlab_version: String,
    pub engine: String,
    pub profile: String,
    /// The tier the converted model ran on (it changes speed, never a number).
    pub isa: String,
    pub model_file: String,
    /// SHA-256 of the model file (for a native model, of `graph.json` then the weights), hex.
    pub model_sha256: String,
    /// Every dataset loaded when the report was written, by name.
    pub datasets: Vec<DatasetFingerprint>,
    /// Top-1 accuracy of the float and of the converted model on the report's data, when it
    /// has labels.
    pub float_accuracy: Option<f64>,
    pub quantized_accuracy: Option<f64>,
    /// Each quantized layer's qconfig in the session language's text form.
    pub qconfigs: std::collections::BTreeMap<String, String>,
}

/// A dataset's identity: its size and a hash of its contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetFingerprint {
    pub name: String,
    pub samples: usize,
    pub shape: Vec<usize>,
    /// SHA-256 of the inputs' little-endian bytes, then the labels', hex.
    pub sha256: String,
}

/// The report's column keys, in `ReportRow`'s field order (one definition:
/// [`ErrorColumn::key`]).
fn headers() -> Vec<&'static str> {
    ErrorColumn::ALL.iter().map(|c| c.key()).collect()
}

/// The formats `export` writes, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Markdown,
    Html,
}

impl Format {
    /// The format of `path`'s extension, if it names one.
    pub fn from_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "md" => Format::Markdown,
            "html" | "htm" => Format::Html,
            _ => return None,
        })
    }
}

/// Infinite SQNR (identical outputs) is written as "inf" in text formats (JSON `null`).
pub(crate) fn sqnr_cell(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "inf".into()
    }
}

impl ErrorReport {
    pub fn new(context: ReportContext, data: &str, mode: ErrorMode, rows: &[LayerError]) -> Self {
        ErrorReport {
            schema_version: SCHEMA_VERSION,
            kind: "errors",
            model: context.model_file.clone(),
            engine: context.engine.clone(),
            data: data.into(),
            mode: mode.name().into(),
            context,
            rows: rows
                .iter()
                .map(|r| ReportRow {
                    layer: r.layer.clone(),
                    op: r.op.into(),
                    sqnr_db: r.stats.sqnr_db(),
                    mse: r.stats.mse(),
                    max_abs: r.stats.max_abs(),
                    mean_error: r.stats.mean_error(),
                    cosine: r.stats.cosine(),
                    rmse_over_scale: r.stats.rmse_over_scale(),
                    clip_rate: r.clip_rate(),
                    input_clip_rate: r.input_clip_rate(),
                    saturated_pairs: r.saturated_pairs,
                })
                .collect(),
            histograms: None,
        }
    }

    /// The rows by SQNR, lowest first; ties in graph order (the sort is stable).
    pub fn worst_first(&self) -> Vec<&ReportRow> {
        let mut rows: Vec<&ReportRow> = self.rows.iter().collect();
        rows.sort_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db));
        rows
    }
}

impl Report for ErrorReport {
    fn title(&self) -> String {
        format!(
            "{} activation error: {} on {} ({} engine)",
            self.mode, self.model, self.data, self.engine
        )
    }

    fn context(&self) -> &ReportContext {
        &self.context
    }

    fn data(&self) -> Option<&str> {
        Some(&self.data)
    }

    fn headers(&self) -> Vec<&'static str> {
        headers()
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.layer.clone(),
                    r.op.clone(),
                    sqnr_cell(r.sqnr_db),
                    format!("{:.6e}", r.mse),
                    format!("{:.6e}", r.max_abs),
                    format!("{:.6e}", r.mean_error),
                    format!("{:.8}", r.cosine),
                    format!("{:.6}", r.rmse_over_scale),
                    format!("{:.6}", r.clip_rate),
                    r.input_clip_rate.map_or("-".into(), |v| format!("{v:.6}")),
                    r.saturated_pairs.to_string(),
                ]
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "schema version {}; uniform rounding gives rmse/scale 0.2887.",
            self.schema_version
        )]
    }

    fn figures_html(&self) -> String {
        html::figures(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ErrorReport {
        let row = |layer: &str, sqnr: f64| ReportRow {
            layer: layer.into(),
            op: "qconv".into(),
            sqnr_db: sqnr,
            mse: 1e-3,
            max_abs: 0.5,
            mean_error: -1e-4,
            cosine: 0.999,
            rmse_over_scale: 0.29,
            clip_rate: 0.01,
            input_clip_rate: (sqnr < 20.0).then_some(0.125),
            saturated_pairs: 3,
        };
        ErrorReport {
            schema_version: SCHEMA_VERSION,
            kind: "errors",
            model: "m.onnx".into(),
            engine: "fbgemm".into(),
            data: "test".into(),
            mode: "cumulative".into(),
            context: ReportContext::default(),
            rows: vec![row("a,b<c>", 12.5), row("exact", f64::INFINITY)],
            histograms: None,
        }
    }

    /// The CSV / Markdown headers and the JSON row fields are the same keys.
    #[test]
    fn column_keys_are_the_row_fields() {
        let json: serde_json::Value = serde_json::from_str(&report().render(Format::Json)).unwrap();
        let mut fields: Vec<&str> = json["rows"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys = headers();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }

    #[test]
    fn every_format_renders_the_rows() {
        let r = report();
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["rows"][0]["sqnr_db"], 12.5);
        assert!(json["rows"][1]["sqnr_db"].is_null());
        assert_eq!(json["rows"][0]["input_clip_rate"], 0.125);
        assert!(json["rows"][1]["input_clip_rate"].is_null());
        assert_eq!(json["rows"][0]["saturated_pairs"], 3);
        let csv = r.render(Format::Csv);
        assert!(csv.starts_with("layer,op,sqnr_db,mse,max_abs,mean_error,cosine,rmse_over_scale,clip_rate,input_clip_rate,saturated_pairs\n"));
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .ends_with(",0.010000,0.125000,3"),
            "{csv}"
        );
        assert!(
            csv.lines().nth(2).unwrap().ends_with(",0.010000,-,3"),
            "{csv}"
        );
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("\"a,b<c>\",qconv,12.5000,")
        );
        assert!(csv.lines().nth(2).unwrap().starts_with("exact,qconv,inf,"));
        let md = r.render(Format::Markdown);
        assert!(md.contains("| a,b<c> | qconv | 12.5000 |"), "{md}");
        let html = r.render(Format::Html);
        assert!(
            html.contains("a,b&lt;c&gt;") && html.contains("<svg") && !html.contains("<script")
        );
        assert_eq!(Format::from_path("r.HTML"), Some(Format::Html));
        assert_eq!(Format::from_path("r.txt"), None);
    }
}
