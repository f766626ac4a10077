//! The verbs that write files from an analysis: `export errors` (versioned JSON, CSV,
//! Markdown, HTML) and `plot` (an observer's histogram, per-layer SQNR). Every file is written
//! atomically.

use super::{Output, SessionError, Workbench};
use crate::analysis::ErrorMode;
use crate::observer::Stats;
use crate::report::{ErrorReport, Format, HistogramPlot, PlotFormat, errors_plot, histogram_plot};

impl Workbench {
    fn error_report(&mut self, data: &str, mode: ErrorMode) -> Result<ErrorReport, SessionError> {
        let context = self.report_context(data)?;
        let rows = self.error_table(data, mode)?;
        Ok(ErrorReport::new(context, data, mode, rows))
    }

    pub(super) fn export(
        &mut self,
        data: &str,
        out: &str,
        mode: ErrorMode,
    ) -> Result<Output, SessionError> {
        let report = self.error_report(data, mode)?;
        let format = Format::from_path(out).ok_or_else(|| SessionError::UnknownFormat {
            path: out.to_string(),
            accepted: ".json, .csv, .md, .html",
        })?;
        write_file(&self.at(out), out, report.render(format))?;
        Ok(Output::Text(format!(
            "wrote {out}: {} layers, {} error",
            report.rows.len(),
            mode.name()
        )))
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

    pub(super) fn plot_histogram(
        &self,
        layer: &str,
        out: &str,
        log: bool,
    ) -> Result<Output, SessionError> {
        let format = PlotFormat::from_path(out)?;
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
        let bytes = histogram_plot(
            &HistogramPlot {
                title: format!("{layer}: {} after {} batch(es)", obs.spec, obs.batches),
                min,
                max,
                counts: &counts,
                qparams,
                log,
            },
            format,
        )?;
        write_file(&self.at(out), out, bytes)?;
        Ok(Output::Text(format!(
            "wrote {out}: histogram of {layer} ({} bins{})",
            counts.len(),
            if log {
                ", log10(1 + count) heights"
            } else {
                ""
            }
        )))
    }
}

/// Writes `bytes` atomically to `out` (`write_atomic` creates its directory).
fn write_file(
    file: &std::path::Path,
    out: &str,
    bytes: impl AsRef<[u8]>,
) -> Result<(), SessionError> {
    crate::fsutil::write_atomic(file, bytes.as_ref()).map_err(|source| SessionError::Io {
        path: out.into(),
        source,
    })
}
