//! The reports beside the activation error table (schema 4): weight quantization error
//! (`errors weights`), an engine comparison (`compare engines`) and a sensitivity ranking
//! (`sensitivity`). Each holds the numbers its verb prints, at full precision, in the order it
//! prints them, and describes itself to the shared renderer (`document.rs`).

use super::document::Report;
use super::{ReportContext, SCHEMA_VERSION, sqnr_cell};
use crate::analysis::{ErrorColumn, LayerDiff, Sensitivity, WeightError};
use serde::Serialize;

/// One layer's weight error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightRow {
    pub layer: String,
    pub op: String,
    pub shape: Vec<usize>,
    pub sqnr_db: f64,
    pub mse: f64,
    pub max_abs: f64,
    pub cosine: f64,
    pub rmse_over_scale: f64,
}

/// Each Conv / Linear weight quantized with one observer spec, worst first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightReport {
    pub schema_version: u32,
    /// `"weights"`.
    pub kind: &'static str,
    pub model: String,
    /// The weight observer, in the session language's text form.
    pub weight: String,
    pub context: ReportContext,
    pub rows: Vec<WeightRow>,
}

impl WeightReport {
    /// `rows` in the order the report lists them (worst first, as `errors weights` prints).
    pub fn new(context: ReportContext, weight: &str, rows: &[WeightError]) -> Self {
        WeightReport {
            schema_version: SCHEMA_VERSION,
            kind: "weights",
            model: context.model_file.clone(),
            weight: weight.into(),
            context,
            rows: rows
                .iter()
                .map(|r| WeightRow {
                    layer: r.layer.clone(),
                    op: r.op.into(),
                    shape: r.shape.clone(),
                    sqnr_db: r.stats.sqnr_db(),
                    mse: r.stats.mse(),
                    max_abs: r.stats.max_abs(),
                    cosine: r.stats.cosine(),
                    rmse_over_scale: r.stats.rmse_over_scale(),
                })
                .collect(),
        }
    }
}

impl Report for WeightReport {
    fn title(&self) -> String {
        format!(
            "weight quantization error: {} with {} (worst first)",
            self.model, self.weight
        )
    }

    fn context(&self) -> &ReportContext {
        &self.context
    }

    fn data(&self) -> Option<&str> {
        None
    }

    fn headers(&self) -> Vec<&'static str> {
        let metrics = ErrorColumn::WEIGHT.iter().map(|c| c.key());
        ["layer", "op", "shape"]
            .into_iter()
            .chain(metrics)
            .collect()
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                let shape: Vec<String> = r.shape.iter().map(usize::to_string).collect();
                vec![
                    r.layer.clone(),
                    r.op.clone(),
                    // `x`-separated, so the CSV cell needs no quoting.
                    shape.join("x"),
                    sqnr_cell(r.sqnr_db),
                    format!("{:.6e}", r.mse),
                    format!("{:.6e}", r.max_abs),
                    format!("{:.8}", r.cosine),
                    format!("{:.6}", r.rmse_over_scale),
                ]
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        vec!["uniform rounding gives rmse/scale 0.2887.".into()]
    }
}

/// One node's integer disagreement between the two engines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    pub layer: String,
    pub op: String,
    pub outputs: u64,
    pub differing: u64,
    /// `differing / outputs` (0 when there are none).
    pub differ_rate: f64,
    /// Largest integer difference, in LSB of the first engine's output scale.
    pub max_lsb: i64,
}

/// The calibrated model converted for two engines, compared node by node on the integers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    pub schema_version: u32,
    /// `"compare"`.
    pub kind: &'static str,
    pub model: String,
    pub a: String,
    pub b: String,
    pub profile: String,
    pub data: String,
    /// Each engine's top-1 accuracy on `data`, when it has labels.
    pub a_accuracy: Option<f64>,
    pub b_accuracy: Option<f64>,
    pub context: ReportContext,
    pub rows: Vec<CompareRow>,
}

impl CompareReport {
    /// `engines`: each engine's name and accuracy on `data`; `rows` in graph order.
    pub fn new(
        context: ReportContext,
        data: &str,
        engines: [(String, Option<f64>); 2],
        rows: &[LayerDiff],
    ) -> Self {
        let [(a, a_accuracy), (b, b_accuracy)] = engines;
        CompareReport {
            schema_version: SCHEMA_VERSION,
            kind: "compare",
            model: context.model_file.clone(),
            profile: context.profile.clone(),
            a,
            b,
            data: data.into(),
            a_accuracy,
            b_accuracy,
            context,
            rows: rows
                .iter()
                .map(|r| CompareRow {
                    layer: r.layer.clone(),
                    op: r.op.into(),
                    outputs: r.count,
                    differing: r.differing,
                    differ_rate: r.differing as f64 / r.count.max(1) as f64,
                    max_lsb: r.max_lsb,
                })
                .collect(),
        }
    }
}

impl Report for CompareReport {
    fn title(&self) -> String {
        format!(
            "{} vs {} on {}: {} (same observers; profile {})",
            self.a, self.b, self.data, self.model, self.profile
        )
    }

    fn context(&self) -> &ReportContext {
        &self.context
    }

    fn data(&self) -> Option<&str> {
        Some(&self.data)
    }

    fn headers(&self) -> Vec<&'static str> {
        vec![
            "layer",
            "op",
            "outputs",
            "differing",
            "differ_rate",
            "max_lsb",
        ]
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.layer.clone(),
                    r.op.clone(),
                    r.outputs.to_string(),
                    r.differing.to_string(),
                    format!("{:.6}", r.differ_rate),
                    r.max_lsb.to_string(),
                ]
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let acc = |e: &str, a: Option<f64>| {
            a.map_or_else(|| format!("{e} (no labels)"), |v| format!("{e} {v:.6}"))
        };
        vec![format!(
            "accuracy on {}: {}, {}",
            self.data,
            acc(&self.a, self.a_accuracy),
            acc(&self.b, self.b_accuracy)
        )]
    }
}

/// One module's sensitivity scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitivityRow {
    pub layer: String,
    /// The metric with only this module quantized.
    pub only_this: f64,
    /// The metric with every module but this one quantized.
    pub all_but_this: f64,
    /// `all_but_this - all_quantized`: what leaving this module in float wins back.
    pub recovered: f64,
}

/// Every quantized module quantized alone and left out alone, largest recovery first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitivityReport {
    pub schema_version: u32,
    /// `"sensitivity"`.
    pub kind: &'static str,
    pub model: String,
    pub data: String,
    pub calib: String,
    pub calib_batches: usize,
    /// `accuracy` (labelled data) or `output_sqnr_db` (against the float model's outputs).
    pub metric: &'static str,
    /// The metric with every module quantized.
    pub all_quantized: f64,
    pub context: ReportContext,
    pub rows: Vec<SensitivityRow>,
}

/// Where a sensitivity ranking came from: the data it scores on and the calibration.
#[derive(Debug, Clone, Copy)]
pub struct SensitivitySource<'a> {
    pub data: &'a str,
    pub calib: &'a str,
    pub calib_batches: usize,
    /// Whether `data` has labels (the metric is accuracy, else output SQNR).
    pub labelled: bool,
}

impl SensitivityRow {
    /// The column keys: `sensitivity`'s header and the report's.
    pub const KEYS: [&'static str; 4] = ["layer", "only_this", "all_but_this", "recovered"];

    /// Each module's row against `all_quantized`, in the order of `rows`.
    pub fn from_ranking(all_quantized: f64, rows: &[Sensitivity]) -> Vec<SensitivityRow> {
        rows.iter()
            .map(|r| SensitivityRow {
                layer: r.layer.clone(),
                only_this: r.only_this,
                all_but_this: r.all_but_this,
                recovered: r.all_but_this - all_quantized,
            })
            .collect()
    }

    /// The row's cells, as `sensitivity` prints them and the report writes them.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.layer.clone(),
            format!("{:.6}", self.only_this),
            format!("{:.6}", self.all_but_this),
            format!("{:+.6}", self.recovered),
        ]
    }
}

impl SensitivityReport {
    /// `rows` in the order the report lists them (largest recovery first).
    pub fn new(
        context: ReportContext,
        source: SensitivitySource,
        all_quantized: f64,
        rows: &[Sensitivity],
    ) -> Self {
        SensitivityReport {
            schema_version: SCHEMA_VERSION,
            kind: "sensitivity",
            model: context.model_file.clone(),
            data: source.data.into(),
            calib: source.calib.into(),
            calib_batches: source.calib_batches,
            metric: if source.labelled {
                "accuracy"
            } else {
                "output_sqnr_db"
            },
            all_quantized,
            context,
            rows: SensitivityRow::from_ranking(all_quantized, rows),
        }
    }
}

impl Report for SensitivityReport {
    fn title(&self) -> String {
        format!(
            "sensitivity on {} ({}): {}, all quantized {:.6}, calibrated on {} batch(es) of {}",
            self.data, self.metric, self.model, self.all_quantized, self.calib_batches, self.calib
        )
    }

    fn context(&self) -> &ReportContext {
        &self.context
    }

    fn data(&self) -> Option<&str> {
        Some(&self.data)
    }

    fn headers(&self) -> Vec<&'static str> {
        SensitivityRow::KEYS.to_vec()
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.rows.iter().map(SensitivityRow::cells).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ErrorReport, Format};
    use super::*;
    use crate::analysis::{ErrorMode, ErrorStats};

    fn stats() -> ErrorStats {
        let mut s = ErrorStats::default();
        s.add(&[1.0, -2.0, 0.5], &[1.0, -1.9, 0.5], |_| 0.1);
        s
    }

    fn reports() -> (WeightReport, CompareReport, SensitivityReport) {
        let context = ReportContext {
            model_file: "m.onnx".into(),
            profile: "vnni".into(),
            ..ReportContext::default()
        };
        let weights = WeightReport::new(
            context.clone(),
            "per_channel_minmax",
            &[WeightError {
                layer: "conv,1".into(),
                op: "Conv",
                shape: vec![4, 1, 3, 3],
                stats: stats(),
            }],
        );
        let compare = CompareReport::new(
            context.clone(),
            "test",
            [("fbgemm".into(), Some(0.5)), ("qnnpack".into(), None)],
            &[LayerDiff {
                layer: "fc".into(),
                op: "QLinear",
                count: 40,
                differing: 3,
                max_lsb: 1,
            }],
        );
        let sensitivity = SensitivityReport::new(
            context,
            SensitivitySource {
                data: "test",
                calib: "calib",
                calib_batches: 2,
                labelled: true,
            },
            0.9,
            &[Sensitivity {
                layer: "fc".into(),
                only_this: 0.95,
                all_but_this: 0.97,
            }],
        );
        (weights, compare, sensitivity)
    }

    /// The CSV header, the Markdown header and the JSON rows' fields are the same keys, and
    /// JSON names the kind and the schema version.
    fn check_keys(r: &impl Report, kind: &str) {
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["kind"], kind);
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["context"]["model_file"], "m.onnx");
        let fields: Vec<&str> = json["rows"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = r.headers();
        sorted.sort_unstable();
        let mut fields = fields;
        fields.sort_unstable();
        assert_eq!(fields, sorted, "{kind}");
        let csv = r.render(Format::Csv);
        assert_eq!(csv.lines().next().unwrap(), r.headers().join(","));
        assert_eq!(csv.lines().count(), 2);
        let md = r.render(Format::Markdown);
        assert!(
            md.contains(&format!("| {} |", r.headers().join(" | "))),
            "{md}"
        );
        let html = r.render(Format::Html);
        assert!(
            html.contains("<table>") && !html.contains("<script"),
            "{html}"
        );
    }

    #[test]
    fn every_kind_renders_its_rows_under_its_keys() {
        let (w, c, s) = reports();
        check_keys(&w, "weights");
        check_keys(&c, "compare");
        check_keys(&s, "sensitivity");
        let errors = ErrorReport::new(ReportContext::default(), "test", ErrorMode::Cumulative, &[]);
        let json: serde_json::Value = serde_json::from_str(&errors.render(Format::Json)).unwrap();
        assert_eq!(json["kind"], "errors");
        // Fixed formatting: the cells a reader compares with the verbs' tables.
        assert!(w.render(Format::Csv).contains("\"conv,1\",Conv,4x1x3x3,"));
        assert!(
            c.render(Format::Csv)
                .ends_with("fc,QLinear,40,3,0.075000,1\n")
        );
        assert!(
            s.render(Format::Csv)
                .ends_with("fc,0.950000,0.970000,+0.070000\n")
        );
        assert!(
            c.render(Format::Markdown)
                .contains("fbgemm 0.500000, qnnpack (no labels)")
        );
        let sj: serde_json::Value = serde_json::from_str(&s.render(Format::Json)).unwrap();
        assert_eq!(sj["metric"], "accuracy");
        assert_eq!(sj["all_quantized"], 0.9);
    }
}
