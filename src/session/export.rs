//! The verbs that write files from an analysis: `export` (a report of `errors DATA`,
//! `errors weights`, `compare engines`, `sensitivity` or `show qparams` as versioned JSON,
//! (`export pytorch` is in `pytorch.rs`)
//! CSV, Markdown or HTML) and `plot` (an observer's histogram, per-layer SQNR). Every file is written
//! atomically, and every report is a pure function of the session's state, so a replay writes
//! the same bytes.

use super::{Exported, Output, SessionError, Workbench};
use crate::analysis::ErrorMode;
use crate::observer::Stats;
use crate::report::{
    CompareReport, ErrorReport, Format, HistogramFigure, HistogramPlot, PlotFormat, QParamsReport,
    Report, SensitivityReport, SensitivitySource, WeightReport, WorstHistograms, errors_plot,
    histogram_plot,
};

/// How many of an error report's lowest-SQNR layers the HTML page shows histograms of.
pub const WORST_HISTOGRAMS: usize = 3;

/// How many worst layers the page looks at for them: a model observed by min/max observers
/// only would otherwise list every layer as having none.
const WORST_EXAMINED: usize = 10;

/// The histogram a layer's observer keeps, owned (the observer lends its counts out by value).
struct ObserverHistogram {
    title: String,
    min: f32,
    max: f32,
    counts: Vec<f32>,
    /// Scale, zero point and integer range, once the observer has seen data.
    qparams: Option<(f64, i64, i64, i64)>,
}

impl ObserverHistogram {
    fn plot(&self, log: bool) -> HistogramPlot<'_> {
        HistogramPlot {
            title: self.title.clone(),
            min: self.min,
            max: self.max,
            counts: &self.counts,
            qparams: self.qparams,
            log,
        }
    }
}

impl Workbench {
    fn error_report(&mut self, data: &str, mode: ErrorMode) -> Result<ErrorReport, SessionError> {
        let context = self.report_context(Some(data))?;
        let rows = self.error_table(data, mode)?;
        Ok(ErrorReport::new(context, data, mode, rows))
    }

    pub(super) fn export(&mut self, what: &Exported, out: &str) -> Result<Output, SessionError> {
        // Checked before anything runs: a sensitivity ranking is minutes of work to throw away.
        let format = match (what, Format::from_path(out)) {
            (Exported::Model, _) => return self.export_model(out),
            // A script and its JSON (`pytorch.rs`).
            (Exported::PyTorch, _) => return self.export_pytorch(out),
            (_, Some(format)) => format,
            (_, None) => {
                return Err(SessionError::UnknownFormat {
                    path: out.to_string(),
                    accepted: ".json, .csv, .md, .html",
                });
            }
        };
        let (text, summary) = match what {
            Exported::Errors { data, mode } => {
                let mut report = self.error_report(data, *mode)?;
                if format == Format::Html {
                    report.histograms = Some(self.worst_histograms(&report));
                }
                let summary = format!("{} layers, {} error", report.rows.len(), mode.name());
                (report.render(format), summary)
            }
            Exported::Weights { weight } => {
                let rows = self.weight_error_rows(weight)?;
                let report =
                    WeightReport::new(self.report_context(None)?, &weight.to_string(), &rows);
                let summary = format!("{} layers, weight error with {weight}", rows.len());
                (report.render(format), summary)
            }
            Exported::Compare { a, b, data } => {
                let cmp = self.engine_comparison(*a, *b, data)?;
                let rate = |c: Option<(usize, usize)>| c.map(|(c, n)| c as f64 / n.max(1) as f64);
                let engines = [
                    (a.to_string(), rate(cmp.correct[0])),
                    (b.to_string(), rate(cmp.correct[1])),
                ];
                let report =
                    CompareReport::new(self.report_context(Some(data))?, data, engines, &cmp.rows);
                let summary = format!("{} layers, {a} vs {b}", cmp.rows.len());
                (report.render(format), summary)
            }
            Exported::Sensitivity {
                data,
                calib,
                batching,
            } => {
                let ranking = self.sensitivity_ranking(data, calib, *batching)?;
                let source = SensitivitySource {
                    data,
                    calib,
                    calib_batches: ranking.calib_batches,
                    labelled: ranking.labelled,
                };
                let report = SensitivityReport::new(
                    self.report_context(Some(data))?,
                    source,
                    ranking.all,
                    &ranking.rows,
                );
                let summary = format!("{} layers, sensitivity", ranking.rows.len());
                (report.render(format), summary)
            }
            Exported::Model => return self.export_model(out),
            Exported::QParams { data } => {
                let rows = self.qparams_rows(data.as_deref())?;
                let context = self.report_context(data.as_deref())?;
                let report = QParamsReport::new(context, data.as_deref(), rows);
                let summary = format!("{} modules, qparams", report.rows.len());
                (report.render(format), summary)
            }
            Exported::PyTorch => return self.export_pytorch(out),
        };
        write_file(&self.at(out), out, text)?;
        Ok(Output::Text(format!("wrote {out}: {summary}")))
    }

    /// `export model`: the converted model as a QDQ ONNX file.
    fn export_model(&mut self, out: &str) -> Result<Output, SessionError> {
        use prost::Message;
        let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
        let (proto, s) = crate::export::qdq_model(model)?;
        write_file(&self.at(out), out, proto.encode_to_vec())?;
        Ok(Output::Text(format!(
            "wrote {out}: ONNX opset {}, QDQ form: {} int8 conv/linear layers, {} activation Q/DQ pairs, {} float nodes",
            s.opset, s.int8_layers, s.activation_pairs, s.float_nodes
        )))
    }

    /// The observer histograms of the report's [`WORST_HISTOGRAMS`] lowest-SQNR layers that
    /// keep one, with a note for each worse layer that keeps none (among the
    /// [`WORST_EXAMINED`] worst).
    fn worst_histograms(&self, report: &ErrorReport) -> WorstHistograms {
        if self.prepared.is_none() {
            return WorstHistograms {
                missing: Some(
                    "none: the model was not calibrated with observers (quantize dynamic, or a QAT model)"
                        .into(),
                ),
                layers: Vec::new(),
            };
        }
        let mut figures = WorstHistograms::default();
        let mut shown = 0;
        for row in report.worst_first().into_iter().take(WORST_EXAMINED) {
            if shown == WORST_HISTOGRAMS {
                break;
            }
            let svg = self.observer_histogram_plot(&row.layer).and_then(|h| {
                let bytes = histogram_plot(&h.plot(false), PlotFormat::Svg)?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            });
            shown += usize::from(svg.is_ok());
            figures.layers.push(HistogramFigure {
                layer: row.layer.clone(),
                sqnr_db: row.sqnr_db,
                svg: svg.map_err(|e| e.to_string()),
            });
        }
        figures
    }

    pub(super) fn plot_errors(
        &mut self,
        data: &str,
        out: &str,
        mode: ErrorMode,
    ) -> Result<Output, SessionError> {
        let format = PlotFormat::from_path(out)?;
        let report = self.error_report(data, mode)?;
        write_file(&self.at(out), out, errors_plot(&report, format)?)?;
        Ok(Output::Text(format!(
            "wrote {out}: {} SQNR of {} layers",
            mode.name(),
            report.rows.len()
        )))
    }

    /// The histogram `layer`'s observer keeps, with its qparams once calibrated: what `plot
    /// histogram` draws and the HTML error report shows for its worst layers.
    fn observer_histogram_plot(&self, layer: &str) -> Result<ObserverHistogram, SessionError> {
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let obs = prepared
            .observers
            .iter()
            .find(|o| o.owner == layer)
            .ok_or_else(|| SessionError::NoView {
                layer: layer.to_string(),
                detail: format!(
                    "no observer here (observed: {})",
                    prepared
                        .observers
                        .iter()
                        .map(|o| o.owner.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let Stats::Histogram { min, max, counts } = obs.observer.stats() else {
            return Err(SessionError::NoView {
                layer: layer.to_string(),
                detail: format!(
                    "its observer ({}) keeps no histogram: use a histogram, percentile, entropy or mse observer",
                    obs.spec
                ),
            });
        };
        let qparams = (obs.batches > 0)
            .then(|| obs.qparams().ok())
            .flatten()
            .map(|q| {
                (
                    q.scales[0] as f64,
                    q.zero_points[0],
                    q.quant_min,
                    q.quant_max,
                )
            });
        Ok(ObserverHistogram {
            title: format!("{layer}: {} after {} batch(es)", obs.spec, obs.batches),
            min,
            max,
            counts,
            qparams,
        })
    }

    pub(super) fn plot_histogram(
        &self,
        layer: &str,
        out: &str,
        log: bool,
    ) -> Result<Output, SessionError> {
        let format = PlotFormat::from_path(out)?;
        let histogram = self.observer_histogram_plot(layer)?;
        let bytes = histogram_plot(&histogram.plot(log), format)?;
        write_file(&self.at(out), out, bytes)?;
        Ok(Output::Text(format!(
            "wrote {out}: histogram of {layer} ({} bins{})",
            histogram.counts.len(),
            if log {
                ", log10(1 + count) heights"
            } else {
                ""
            }
        )))
    }
}

/// Writes `bytes` atomically to `out` (`write_atomic` creates its directory).
pub(super) fn write_file(
    file: &std::path::Path,
    out: &str,
    bytes: impl AsRef<[u8]>,
) -> Result<(), SessionError> {
    crate::fsutil::write_atomic(file, bytes.as_ref()).map_err(|source| SessionError::Io {
        path: out.into(),
        source,
    })
}
