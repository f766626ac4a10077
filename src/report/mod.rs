//! Reports: the per-layer error table as a versioned JSON document, CSV, Markdown, or one
//! self-contained HTML page with an inline SVG chart. Output is a pure function of the rows (no
//! timestamps, fixed float formatting), so a replayed session writes byte-identical files.
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
//!
//! The record of a `qlab run` replay (`replay.rs`, as JSON or as JUnit XML from `junit.rs`) is
//! the exception: it carries each command's time, so it differs from run to run.

mod html;
mod junit;
mod plot;
mod replay;

pub use junit::{junit_xml, xml_escape};
pub use plot::{HistogramPlot, PlotError, PlotFormat, errors_plot, histogram_plot};
pub use replay::{
    CommandResult, Comparison, REPLAY_SCHEMA_VERSION, ReplayReport, SkippedLine, Status, Summary,
};

use crate::analysis::{ErrorColumn, ErrorMode, LayerError};
use serde::Serialize;
use std::fmt::Write;

/// The JSON schema version; bump it when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 3;

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
    /// The model's file name (a path would differ between replays from other directories).
    pub model: String,
    pub engine: String,
    pub data: String,
    pub mode: String,
    /// Where the numbers come from.
    pub context: ReportContext,
    /// Graph order.
    pub rows: Vec<ReportRow>,
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

/// Infinite SQNR (identical outputs) is written as JSON `null` and as "inf" in text formats.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl ErrorReport {
    pub fn new(context: ReportContext, data: &str, mode: ErrorMode, rows: &[LayerError]) -> Self {
        ErrorReport {
            schema_version: SCHEMA_VERSION,
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
        }
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.json(),
            Format::Csv => self.csv(),
            Format::Markdown => self.markdown(),
            Format::Html => html::page(self),
        }
    }

    fn json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("plain data serializes");
        for row in v["rows"].as_array_mut().expect("rows") {
            let sqnr = row["sqnr_db"].as_f64().and_then(finite);
            row["sqnr_db"] = serde_json::json!(sqnr);
        }
        let mut s = serde_json::to_string_pretty(&v).expect("plain data serializes");
        s.push('\n');
        s
    }

    /// The cells of each row, formatted once for every text format.
    pub(crate) fn cells(&self) -> Vec<[String; 11]> {
        self.rows
            .iter()
            .map(|r| {
                [
                    r.layer.clone(),
                    r.op.clone(),
                    finite(r.sqnr_db).map_or("inf".into(), |v| format!("{v:.4}")),
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

    /// The context as `key: value` lines, for the text formats.
    pub(crate) fn context_lines(&self) -> Vec<String> {
        let c = &self.context;
        let pct = |a: Option<f64>| a.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v));
        let mut lines = vec![
            format!(
                "qlab {}, engine {} (profile {}), ISA {}",
                c.qlab_version, c.engine, c.profile, c.isa
            ),
            format!("model {} (sha256 {})", c.model_file, c.model_sha256),
            format!(
                "accuracy on {}: float {}, quantized {}",
                self.data,
                pct(c.float_accuracy),
                pct(c.quantized_accuracy)
            ),
        ];
        for d in &c.datasets {
            lines.push(format!(
                "data {}: {} samples of shape {:?} (sha256 {})",
                d.name, d.samples, d.shape, d.sha256
            ));
        }
        lines
    }

    fn markdown(&self) -> String {
        let mut s = format!(
            "# {} activation error: {} on {} ({} engine)\n\n",
            self.mode, self.model, self.data, self.engine
        );
        for line in self.context_lines() {
            let _ = writeln!(s, "- {line}");
        }
        let _ = write!(
            s,
            "\n| {} |\n|{}\n",
            headers().join(" | "),
            "---|".repeat(ErrorColumn::ALL.len())
        );
        for c in self.cells() {
            let _ = writeln!(s, "| {} |", c.join(" | "));
        }
        s
    }

    fn csv(&self) -> String {
        let mut s = format!("{}\n", headers().join(","));
        for c in self.cells() {
            let quoted: Vec<String> = c
                .iter()
                .map(|v| {
                    if v.contains([',', '"']) {
                        format!("\"{}\"", v.replace('"', "\"\""))
                    } else {
                        v.clone()
                    }
                })
                .collect();
            let _ = writeln!(s, "{}", quoted.join(","));
        }
        s
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
            model: "m.onnx".into(),
            engine: "fbgemm".into(),
            data: "test".into(),
            mode: "cumulative".into(),
            context: ReportContext::default(),
            rows: vec![row("a,b<c>", 12.5), row("exact", f64::INFINITY)],
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
