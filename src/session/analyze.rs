//! The analysis verbs of the workbench: `errors` (per-layer error tables, also the rows every
//! report and the TUI's error pane show), `sensitivity`, and the converted
//! model's outputs that `eval`, `predict` and `expect` read. None of them changes the model.

use super::command::Batching;
use super::progress::Progress;
use super::{Output, SessionError, Table, Workbench};
use crate::analysis::{ErrorColumn, ErrorMode, LayerError, layer_errors, sensitivity};
use crate::graph::Value;
use crate::report::SensitivityRow;
use crate::workflow::{QuantizedModel, fuse_auto};
use ndarray::ArrayD;

/// A sensitivity ranking and what it was measured with.
pub(super) struct SensitivityRanking {
    /// The metric with every module quantized.
    pub all: f64,
    /// Largest recovery first.
    pub rows: Vec<crate::analysis::Sensitivity>,
    /// Calibration batches each model was calibrated on.
    pub calib_batches: usize,
    /// Whether the metric is accuracy (labelled data) or output SQNR.
    pub labelled: bool,
}

/// How a converted model is scored against the float one on one dataset: top-1 accuracy on
/// its labels, or the output SQNR (dB) against the float model's outputs. `sensitivity` picks
/// accuracy when the data is labelled; `search` picks what its target names.
pub(super) struct Scorer {
    pub data: String,
    /// The float model's outputs on `data` when the score is SQNR; `None`: accuracy.
    reference: Option<ndarray::ArrayD<f32>>,
}

/// A session error inside an analysis callback.
pub(super) fn analysis_err(e: SessionError) -> crate::analysis::AnalysisError {
    crate::analysis::AnalysisError::Model {
        detail: e.to_string(),
    }
}

impl Workbench {
    /// A scorer on `data`: accuracy (the data must be labelled) or output SQNR.
    pub(super) fn scorer(&mut self, data: &str, accuracy: bool) -> Result<Scorer, SessionError> {
        let reference = if accuracy {
            self.labels(data)?;
            None
        } else {
            Some(self.outputs(data)?.clone())
        };
        Ok(Scorer {
            data: data.to_string(),
            reference,
        })
    }

    /// `m`'s score (checking for a cancel request first).
    pub(super) fn score(&self, s: &Scorer, m: &QuantizedModel) -> Result<f64, SessionError> {
        super::cancel::check()?;
        match &s.reference {
            None => {
                let (c, n) = self.model_correct(m, &s.data)?.unwrap_or((0, 0));
                Ok(c as f64 / n.max(1) as f64)
            }
            Some(float) => {
                let y = self.run_batches(m, &s.data)?;
                let mut stats = crate::analysis::ErrorStats::default();
                let (f, q) = (float.as_standard_layout(), y.as_standard_layout());
                stats.add(
                    f.as_slice().unwrap_or(&[]),
                    q.as_slice().unwrap_or(&[]),
                    |_| 0.0,
                );
                Ok(stats.sqnr_db())
            }
        }
    }

    /// Pooled per-layer errors of the converted model on `data`, in graph order.
    pub(super) fn layer_rows(
        &self,
        data: &str,
        mode: ErrorMode,
    ) -> Result<Vec<LayerError>, SessionError> {
        let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
        self.rows_of(model, data, mode)
    }

    /// The per-layer error rows of any converted `model` (the session's, or a variant of it)
    /// on `data`.
    pub(super) fn rows_of(
        &self,
        model: &QuantizedModel,
        data: &str,
        mode: ErrorMode,
    ) -> Result<Vec<LayerError>, SessionError> {
        let runs = self.runs(&model.graph, data, None)?;
        let d = self.dataset(data)?;
        let batches = runs.ranges.into_iter().map(|r| d.rows(r));
        Ok(layer_errors(model, batches, mode)?)
    }

    /// The per-layer error table of `data` in `mode`, computed once until the state changes.
    pub(super) fn error_table(
        &mut self,
        data: &str,
        mode: ErrorMode,
    ) -> Result<&[LayerError], SessionError> {
        let key = (data.to_string(), mode);
        if !self.error_tables.contains_key(&key) {
            let rows = self.layer_rows(data, mode)?;
            self.error_tables.insert(key.clone(), rows);
        }
        Ok(&self.error_tables[&key])
    }

    /// One layer's cumulative row on `data`, for `expect sqnr(...)` and `expect saturated(...)`.
    pub(super) fn layer_row(
        &mut self,
        data: &str,
        layer: &str,
    ) -> Result<&LayerError, SessionError> {
        let rows = self.error_table(data, ErrorMode::Cumulative)?;
        rows.iter()
            .find(|r| r.layer == layer)
            .ok_or_else(|| SessionError::UnknownLayer {
                layer: layer.into(),
                known: super::suggest::listing(
                    layer,
                    &rows.iter().map(|r| r.layer.as_str()).collect::<Vec<_>>(),
                    "layers",
                ),
            })
    }

    pub(super) fn layer_errors(
        &mut self,
        data: &str,
        mode: ErrorMode,
    ) -> Result<Output, SessionError> {
        let mut rows = self.error_table(data, mode)?.to_vec();
        let engine = self.numerics.engine;
        // Worst first; ties keep graph order (the sort is stable).
        rows.sort_by(|a, b| a.stats.sqnr_db().total_cmp(&b.stats.sqnr_db()));
        let headers: Vec<&str> = ErrorColumn::ALL.iter().map(|c| c.header()).collect();
        Ok(Output::Table {
            title: format!(
                "{} activation error on {data} ({} engine, worst first; uniform rounding gives rmse/scale 0.2887)",
                mode.name(),
                engine
            ),
            table: Table {
                headers: Table::header_row(&headers),
                rows: rows
                    .iter()
                    .map(|r| ErrorColumn::ALL.iter().map(|c| c.cell(r, false)).collect())
                    .collect(),
            },
        })
    }

    /// Every quantized module quantized alone and left out alone, largest recovery first, as
    /// `sensitivity` prints it and `export sensitivity` writes it.
    pub(super) fn sensitivity_ranking(
        &mut self,
        data: &str,
        calib: &str,
        b: Batching,
    ) -> Result<SensitivityRanking, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let (fused, _) = fuse_auto(graph)?;
        let runs = self.runs(&fused, calib, Some(b))?;
        let c = self.dataset(calib)?;
        let batches: Vec<Value> = runs.ranges.into_iter().map(|r| c.rows(r)).collect();
        let labelled = self.dataset(data)?.labels.is_some();
        let scorer = self.scorer(data, labelled)?;
        let map = self.effective_qconfigs()?;
        let bar = Progress::start(self.progress, "sensitivity: models measured", None);
        let metric = |m: &QuantizedModel| -> Result<f64, crate::analysis::AnalysisError> {
            bar.tick();
            self.score(&scorer, m).map_err(analysis_err)
        };
        let (all, mut rows) = sensitivity(&fused, &map, &batches, self.numerics, metric)?;
        // Largest recovery first; ties keep graph order (the sort is stable).
        rows.sort_by(|a, b| b.all_but_this.total_cmp(&a.all_but_this));
        Ok(SensitivityRanking {
            all,
            rows,
            calib_batches: runs.batches,
            labelled,
        })
    }

    pub(super) fn sensitivity(
        &mut self,
        data: &str,
        calib: &str,
        b: Batching,
    ) -> Result<Output, SessionError> {
        let SensitivityRanking {
            all,
            rows,
            calib_batches,
            labelled,
        } = self.sensitivity_ranking(data, calib, b)?;
        let what = if labelled {
            "accuracy"
        } else {
            "output SQNR dB"
        };
        Ok(Output::Table {
            title: format!(
                "sensitivity on {data} ({what}; all quantized: {all:.6}; calibrated on {calib_batches} batch(es) of {calib})"
            ),
            table: Table {
                headers: Table::header_row(&SensitivityRow::KEYS),
                rows: SensitivityRow::from_ranking(all, &rows)
                    .iter()
                    .map(SensitivityRow::cells)
                    .collect(),
            },
        })
    }

    /// The converted model's first output on every sample of `data` (computed once).
    pub(super) fn quantized_outputs(&mut self, data: &str) -> Result<&ArrayD<f32>, SessionError> {
        if !self.quantized_outputs.contains_key(data) {
            let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
            let y = self.run_batches(model, data)?;
            self.quantized_outputs.insert(data.to_string(), y);
        }
        Ok(&self.quantized_outputs[data])
    }
}
