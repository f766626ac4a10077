//! The quantization verbs of the workbench — `engine`, `qconfig`, `fuse`, `prepare`,
//! `calibrate`, `check`, `convert`, `quantize` (static one-call and dynamic) — over the
//! `workflow` library calls, and the converted model's outputs for `eval` and `expect`.
//!
//! State flows one way: a new model or a fusion drops the prepared and converted models; a new
//! qconfig drops them too (they were built with the old one); a new engine drops only the
//! converted model, so `convert` again re-uses the calibration.

use super::command::{Batching, QConfigChoice};
use super::progress::Progress;
use super::{Output, SessionError, Table, Workbench};
use crate::analysis::{ErrorColumn, ErrorMode, LayerError, layer_errors, sensitivity};
use crate::engine::{Engine, HostProfile, Numerics};
use crate::graph::{Graph, Value};
use crate::observer::Stats;
use crate::qconfig::QConfig;
use crate::qconfig::presets::get_default_qconfig;
use crate::report::{ErrorReport, Format, HistogramPlot, PlotFormat, errors_plot, histogram_plot};
use crate::workflow::{
    self, FuseOptions, QConfigKey, QConfigMap, QOp, QuantizedModel, Severity, dynamic_qconfig_map,
    fuse_auto, fuse_auto_with, fuse_modules,
};
use ndarray::ArrayD;

impl Workbench {
    /// The prepared and converted models no longer match the model or qconfig.
    pub(super) fn reset_quantization(&mut self) {
        self.prepared = None;
        self.qat = None;
        self.drop_converted();
    }

    pub(super) fn drop_converted(&mut self) {
        self.quantized = None;
        self.quantized_outputs.clear();
    }

    pub(super) fn set_engine(&mut self, engine: Engine, profile: HostProfile) -> Output {
        self.numerics = Numerics::new(engine, profile);
        self.drop_converted();
        let follows_engine = !self
            .qconfigs
            .entries
            .iter()
            .any(|(k, _)| *k == QConfigKey::Global);
        let note = match (&self.prepared, follows_engine) {
            (None, _) => "",
            // The default qconfig is the engine's: the observers were built for the old one.
            (Some(_), true) => {
                self.prepared = None;
                "; the default qconfig follows the engine: prepare and calibrate again (or set `qconfig * preset=NAME` to keep a calibration across engines)"
            }
            (Some(_), false) => "; run convert again for the new engine",
        };
        Output::Text(format!(
            "engine {engine} (host profile {}){note}",
            profile.name()
        ))
    }

    /// Sets a qconfig entry. After calibration, observers whose statistics serve the new choice
    /// are kept (qparams re-derived, no new data) and a converted model is rebuilt at once.
    pub(super) fn set_qconfig(
        &mut self,
        key: &QConfigKey,
        choice: &QConfigChoice,
    ) -> Result<Output, SessionError> {
        let qconfig = choice.resolve(self.current_qconfig(key)?.as_ref())?;
        let mut text = format!("qconfig {key}: {}", describe(choice, qconfig.as_ref()));
        let mut map = self.qconfigs.clone();
        map.set(key.clone(), qconfig);
        let Some((_, graph)) = &self.model else {
            self.qconfigs = map;
            return Ok(Output::Text(text));
        };
        // A path or type that names nothing is refused now, not at prepare.
        map.resolve(graph)?;
        let candidate = match &self.prepared {
            Some(_) => {
                let fresh = workflow::prepare(graph, &self.effective_with(&map)?)?;
                // Refuse a qconfig the engine cannot convert before anything changes.
                let problems = workflow::check_qconfigs(&fresh, self.numerics.engine);
                if let Some(f) = problems.into_iter().find(|f| f.severity == Severity::Error) {
                    return Err(workflow::WorkflowError::Check {
                        module: f.module,
                        problem: f.problem,
                        fix: f.fix,
                    }
                    .into());
                }
                Some(fresh)
            }
            None => None,
        };
        let Some(mut fresh) = candidate else {
            self.qconfigs = map;
            self.drop_converted();
            return Ok(Output::Text(text));
        };
        // Build the new state on copies and commit it only when every step succeeded.
        let old = self.prepared.clone().ok_or(SessionError::NotPrepared)?;
        let calibrated = old.batches > 0;
        let adopted = fresh.adopt_calibration(old);
        let model = match (&adopted, calibrated, self.quantized.is_some()) {
            (Ok(()), true, true) => Some(workflow::convert(&fresh, self.numerics)?),
            _ => None,
        };
        match (&adopted, calibrated, &model) {
            (Err(missing), true, _) => text.push_str(&format!(
                "\nnew statistics needed for {}: calibrate again",
                missing.join(", ")
            )),
            (_, true, Some(_)) => text
                .push_str("\nqparams re-derived from the stored statistics; model converted again"),
            (_, true, None) => text.push_str("\nqparams re-derived from the stored statistics"),
            _ => {}
        }
        self.qconfigs = map;
        self.prepared = Some(fresh);
        self.drop_converted();
        if let Some(model) = model {
            self.install(model);
        }
        Ok(Output::Text(text))
    }

    pub(super) fn fuse(
        &mut self,
        groups: Option<&[Vec<String>]>,
        add_relu: bool,
    ) -> Result<Output, SessionError> {
        let (path, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let options = FuseOptions { add_relu };
        let (fused, listed) = match groups {
            None => {
                let (g, found) = fuse_auto_with(graph, options)?;
                let listed: Vec<String> = found
                    .iter()
                    .map(|f| format!("{} → {}", f.modules.join("+"), f.fused_type.type_name))
                    .collect();
                (g, listed)
            }
            Some(groups) => (
                fuse_modules(graph, groups)?,
                groups.iter().map(|g| g.join("+")).collect(),
            ),
        };
        let pairs = add_relu_note(graph, &fused);
        self.model = Some((path.clone(), fused));
        if groups.is_none() {
            self.fuse_options = options;
        }
        self.outputs.clear();
        self.reset_quantization();
        let mut text = if listed.is_empty() {
            "nothing to fuse".to_string()
        } else {
            format!(
                "fused {} group(s):\n  {}",
                listed.len(),
                listed.join("\n  ")
            )
        };
        text.push_str(&pairs);
        Ok(Output::Text(text))
    }

    /// The qconfig map `prepare` uses: the user's entries over the engine's default.
    fn effective_qconfigs(&self) -> Result<QConfigMap, SessionError> {
        self.effective_with(&self.qconfigs)
    }

    /// The qconfig `key` has now, which a one-half `qconfig` line changes: its own entry, else
    /// for a path naming one module what that module resolves to, else the global one.
    fn current_qconfig(&self, key: &QConfigKey) -> Result<Option<QConfig>, SessionError> {
        if let Some((_, q)) = self.qconfigs.entries.iter().rev().find(|(k, _)| k == key) {
            return Ok(q.clone());
        }
        let effective = self.effective_with(&self.qconfigs)?;
        if let (QConfigKey::Path(path), Some((_, graph))) = (key, &self.model)
            && graph.node(path).is_some()
        {
            return Ok(effective.resolve(graph)?.remove(path).flatten());
        }
        Ok(effective
            .entries
            .iter()
            .rev()
            .find(|(k, _)| *k == QConfigKey::Global)
            .and_then(|(_, q)| q.clone()))
    }

    fn effective_with(&self, entries: &QConfigMap) -> Result<QConfigMap, SessionError> {
        let mut map = QConfigMap::default();
        if !entries
            .entries
            .iter()
            .any(|(k, _)| *k == QConfigKey::Global)
        {
            let default = get_default_qconfig(self.numerics.engine.name())?;
            map.set(QConfigKey::Global, Some(default));
        }
        map.entries.extend(entries.entries.iter().cloned());
        Ok(map)
    }

    pub(super) fn prepare(&mut self) -> Result<Output, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let prepared = workflow::prepare(graph, &self.effective_qconfigs()?)?;
        let text = format!(
            "prepared: {} observers ({}), {} nodes quantized, {} float",
            prepared.observers.len(),
            prepared
                .observers
                .iter()
                .map(|o| o.owner.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            prepared
                .placement
                .values()
                .filter(|p| **p != workflow::Placement::Float)
                .count(),
            prepared
                .placement
                .values()
                .filter(|p| **p == workflow::Placement::Float)
                .count(),
        );
        self.prepared = Some(prepared);
        self.qat = None;
        self.drop_converted();
        Ok(Output::Text(text))
    }

    pub(super) fn calibrate(&mut self, data: &str, b: Batching) -> Result<Output, SessionError> {
        // Calibrate a copy: a failed or cancelled run leaves the observers as they were.
        let mut prepared = self.prepared.clone().ok_or(SessionError::NotPrepared)?;
        let runs = self.runs(&prepared.graph, data, Some(b))?;
        let d = self.dataset(data)?;
        // A pinned batch's runs are the forward passes the observers see, one update each.
        let bar = Progress::start(
            self.progress,
            &format!("calibrating on {data}"),
            Some(runs.ranges.len() as u64),
        );
        for range in &runs.ranges {
            super::cancel::check()?;
            prepared.calibrate_batch(vec![d.rows(range.clone())])?;
            bar.tick();
        }
        self.prepared = Some(prepared);
        self.drop_converted();
        Ok(Output::Text(format!(
            "calibrated on {} batch(es), {} samples of {data}",
            runs.batches,
            runs.samples()
        )))
    }

    pub(super) fn check(&self) -> Result<Output, SessionError> {
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let findings = workflow::check(prepared, self.numerics.engine);
        if findings.is_empty() {
            return Ok(Output::Text("pre-convert check: no problems found".into()));
        }
        Ok(Output::Table {
            title: format!("pre-convert check: {} finding(s)", findings.len()),
            table: Table {
                headers: Table::header_row(&["severity", "module", "problem", "fix"]),
                rows: findings
                    .iter()
                    .map(|f| {
                        vec![
                            match f.severity {
                                Severity::Error => "error".into(),
                                Severity::Warning => "warning".into(),
                            },
                            f.module.clone(),
                            f.problem.clone(),
                            f.fix.clone(),
                        ]
                    })
                    .collect(),
            },
        })
    }

    pub(super) fn convert(&mut self) -> Result<Output, SessionError> {
        if self.qat.is_some() {
            return self.convert_qat();
        }
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let model = workflow::convert(prepared, self.numerics)?;
        Ok(self.install(model))
    }

    pub(super) fn install(&mut self, model: QuantizedModel) -> Output {
        let rows: Vec<Vec<String>> = model
            .graph
            .nodes
            .iter()
            .zip(&model.ops)
            .filter(|(_, op)| !matches!(op, workflow::QOp::Float))
            .map(|(n, op)| vec![n.name.clone(), op.kind().to_string()])
            .collect();
        let title = format!(
            "converted for {} ({} quantized nodes; profile {})",
            model.numerics.engine,
            rows.len(),
            model.numerics.profile.name()
        );
        self.quantized = Some(model);
        self.quantized_outputs.clear();
        Output::Table {
            title,
            table: Table {
                headers: vec!["node".into(), "quantized op".into()],
                rows,
            },
        }
    }

    pub(super) fn quantize(&mut self, data: &str, b: Batching) -> Result<Output, SessionError> {
        self.dataset(data)?;
        let (path, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let path = path.clone();
        let (fused, _) = fuse_auto_with(graph, self.fuse_options)?;
        let pairs = add_relu_note(graph, &fused);
        let prepared = workflow::prepare(&fused, &self.effective_qconfigs()?)?;
        // Run on the candidate state; put the old one back if any step fails.
        let saved_model = self.model.replace((path, fused));
        let saved_prepared = self.prepared.replace(prepared);
        match self.calibrate(data, b).and_then(|_| self.convert()) {
            Ok(out) => {
                self.outputs.clear();
                Ok(match out {
                    Output::Table { title, table } => Output::Table {
                        title: title + &pairs,
                        table,
                    },
                    Output::Text(t) => Output::Text(t + &pairs),
                    other => other,
                })
            }
            Err(e) => {
                self.model = saved_model;
                self.prepared = saved_prepared;
                Err(e)
            }
        }
    }

    pub(super) fn quantize_dynamic(&mut self, float16: bool) -> Result<Output, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let mut map = dynamic_qconfig_map(graph, float16);
        map.entries.extend(
            self.qconfigs
                .entries
                .iter()
                .filter(|(k, _)| *k != QConfigKey::Global)
                .cloned(),
        );
        let model = workflow::quantize_dynamic(graph, &map, self.numerics)?;
        self.prepared = None;
        Ok(self.install(model))
    }

    /// Pooled per-layer errors of the converted model on `data`, in graph order.
    pub(super) fn layer_rows(
        &self,
        data: &str,
        mode: ErrorMode,
    ) -> Result<Vec<LayerError>, SessionError> {
        let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
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
                known: rows
                    .iter()
                    .map(|r| r.layer.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
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

    fn error_report(&mut self, data: &str, mode: ErrorMode) -> Result<ErrorReport, SessionError> {
        let engine = self.numerics.engine.name();
        let (model, _) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let model = model.clone();
        let rows = self.error_table(data, mode)?;
        Ok(ErrorReport::new(&model, engine, data, mode, rows))
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
        write_file(out, report.render(format))?;
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
        write_file(out, errors_plot(&report, format)?)?;
        Ok(Output::Text(format!(
            "wrote {out}: {} SQNR of {} layers",
            mode.name(),
            report.rows.len()
        )))
    }

    pub(super) fn plot_histogram(&self, layer: &str, out: &str) -> Result<Output, SessionError> {
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
            },
            format,
        )?;
        write_file(out, bytes)?;
        Ok(Output::Text(format!(
            "wrote {out}: histogram of {layer} ({} bins)",
            counts.len()
        )))
    }

    /// The converted model's output and weight qparams, else the observers' statistics.
    pub(super) fn show_qparams(&self) -> Result<Output, SessionError> {
        if let Some(model) = &self.quantized {
            let rows = model
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
                    let weight = w.map_or_else(String::new, |w| {
                        let lo = w.scales.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = w.scales.iter().copied().fold(0.0, f64::max);
                        if w.scales.len() == 1 {
                            format!("per-tensor scale {lo:.6e}")
                        } else {
                            format!("per-channel ×{} scale {lo:.3e}..{hi:.3e}", w.scales.len())
                        }
                    });
                    Some(vec![
                        n.name.clone(),
                        op.kind().into(),
                        format!("{s:.9e}"),
                        z.to_string(),
                        weight,
                    ])
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
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let rows = prepared
            .observers
            .iter()
            .map(|o| {
                let (lo, hi) = match o.observer.stats() {
                    Stats::MinMax { min, max } | Stats::Histogram { min, max, .. } => {
                        (format!("{min:.6e}"), format!("{max:.6e}"))
                    }
                    _ => ("-".into(), "-".into()),
                };
                let (s, z) = match (o.batches, o.qparams()) {
                    (0, _) => ("-".into(), "-".into()),
                    (_, Ok(q)) => (format!("{:.9e}", q.scales[0]), q.zero_points[0].to_string()),
                    (_, Err(e)) => (format!("error: {e}"), "-".into()),
                };
                vec![
                    o.owner.clone(),
                    o.spec.to_string(),
                    o.batches.to_string(),
                    lo,
                    hi,
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

    pub(super) fn sensitivity(
        &mut self,
        data: &str,
        calib: &str,
        b: Batching,
    ) -> Result<Output, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let (fused, _) = fuse_auto(graph)?;
        let runs = self.runs(&fused, calib, Some(b))?;
        let c = self.dataset(calib)?;
        let batches: Vec<Value> = runs.ranges.into_iter().map(|r| c.rows(r)).collect();
        let labelled = self.dataset(data)?.labels.is_some();
        let reference = if labelled {
            None
        } else {
            Some(self.outputs(data)?.clone())
        };
        let map = self.effective_qconfigs()?;
        let bar = Progress::start(self.progress, "sensitivity: models measured", None);
        let metric = |m: &QuantizedModel| -> Result<f64, crate::analysis::AnalysisError> {
            let fail = |e: SessionError| crate::analysis::AnalysisError::Model {
                detail: e.to_string(),
            };
            super::cancel::check().map_err(fail)?;
            bar.tick();
            match &reference {
                None => {
                    let (c, n) = self.model_correct(m, data).map_err(fail)?.unwrap_or((0, 0));
                    Ok(c as f64 / n.max(1) as f64)
                }
                Some(float) => {
                    let y = self
                        .run_batches(&m.graph, data, |x| Ok(m.run(vec![x], |_, _| {})?))
                        .map_err(fail)?;
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
        };
        let (all, mut rows) = sensitivity(&fused, &map, &batches, self.numerics, metric)?;
        // Largest recovery first; ties keep graph order (the sort is stable).
        rows.sort_by(|a, b| b.all_but_this.total_cmp(&a.all_but_this));
        let what = if labelled {
            "accuracy"
        } else {
            "output SQNR dB"
        };
        Ok(Output::Table {
            title: format!(
                "sensitivity on {data} ({what}; all quantized: {all:.6}; calibrated on {} batch(es) of {calib})",
                runs.batches
            ),
            table: Table {
                headers: Table::header_row(&["layer", "only_this", "all_but_this", "recovered"]),
                rows: rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.layer.clone(),
                            format!("{:.6}", r.only_this),
                            format!("{:.6}", r.all_but_this),
                            format!("{:+.6}", r.all_but_this - all),
                        ]
                    })
                    .collect(),
            },
        })
    }

    /// The converted model's first output on every sample of `data` (computed once).
    pub(super) fn quantized_outputs(&mut self, data: &str) -> Result<&ArrayD<f32>, SessionError> {
        if !self.quantized_outputs.contains_key(data) {
            let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
            let y = self.run_batches(&model.graph, data, |x| Ok(model.run(vec![x], |_, _| {})?))?;
            self.quantized_outputs.insert(data.to_string(), y);
        }
        Ok(&self.quantized_outputs[data])
    }
}

fn describe(choice: &QConfigChoice, resolved: Option<&QConfig>) -> String {
    match (choice, resolved) {
        (QConfigChoice::Preset(p), _) => format!("preset {p}"),
        (QConfigChoice::None, _) | (_, None) => "none (kept in float)".into(),
        (_, Some(q)) => q.to_string(),
    }
}

/// Writes `bytes` atomically to `out` (`write_atomic` creates its directory).
fn write_file(out: &str, bytes: impl AsRef<[u8]>) -> Result<(), SessionError> {
    crate::fsutil::write_atomic(std::path::Path::new(out), bytes.as_ref()).map_err(|source| {
        SessionError::Io {
            path: out.into(),
            source,
        }
    })
}

/// The note printed when fusion read add+ReLU pairs as `add_relu` (an ambiguous choice: the
/// graph cannot tell it from `add` then `nn.ReLU`); empty when it read none.
fn add_relu_note(before: &Graph, after: &Graph) -> String {
    let n = after.fusions[before.fusions.len().min(after.fusions.len())..]
        .iter()
        .filter(|f| f.types.first().is_some_and(|t| t == "Add"))
        .count();
    if n == 0 {
        return String::new();
    }
    format!(
        "\n{n} add+ReLU pair(s) read as FloatFunctional.add_relu (one observer after the ReLU, as torchvision's ResNet adds); `fuse auto add_relu=off` keeps them apart"
    )
}
