//! `search DATA calib=CALIB target=...`: the fewest modules to keep in float, and per module the
//! activation observer, that meet an accuracy or SQNR target. Every candidate is measured, not
//! estimated: greedy over the leave-one-out ranking (sensitivity's `all_but_this`), observer
//! alternatives re-derived from the calibration's histograms (no new data), float fallbacks
//! calibrated afresh; then a pruning pass returns float modules the target does not need, and
//! the result is applied as the `qconfig` lines and `quantize` a user would type, whose
//! from-scratch result is the verified figure. The workbench changes only on success.

use super::analyze::Scorer;
use super::command::{Batching, QConfigChoice, SearchTarget};
use super::progress::Progress;
use super::{Command, Output, SessionError, Table, Workbench};
use crate::analysis::leave_one_out;
use crate::engine::Numerics;
use crate::graph::{Graph, Value};
use crate::observer::{ObserverKind, ObserverSpec};
use crate::qconfig::{QConfig, QuantizerSpec};
use crate::workflow::{self, Prepared, QConfigKey, QConfigMap, fuse_auto_with};

/// What the search decided for one module.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// Another activation observer (the weight half kept).
    Observer(ObserverSpec),
    /// Kept in float.
    Float,
}

impl Change {
    /// The `qconfig` line that applies it.
    fn command(&self, layer: &str) -> Command {
        Command::QConfig {
            key: QConfigKey::Path(layer.to_string()),
            choice: match self {
                Change::Observer(spec) => QConfigChoice::Half {
                    activation: Some(QuantizerSpec::Observer(spec.clone())),
                    weight: None,
                },
                Change::Float => QConfigChoice::None,
            },
        }
    }
}

/// The fixed inputs of one search: the fused graph, the session's qconfigs, the calibration
/// batches, the numerics and the scorer.
struct Space<'a> {
    wb: &'a Workbench,
    graph: Graph,
    base: QConfigMap,
    calib: Vec<Value>,
    numerics: Numerics,
    scorer: Scorer,
    bar: Progress,
}

impl Space<'_> {
    /// The base qconfigs with `choices` applied in order.
    fn map(&self, choices: &[(String, Change)]) -> QConfigMap {
        let mut map = self.base.clone();
        for (layer, change) in choices {
            let key = QConfigKey::Path(layer.clone());
            let q = match change {
                Change::Float => None,
                Change::Observer(spec) => {
                    // The module's weight half as the map without this entry resolves it.
                    let weight = map
                        .resolve(&self.graph)
                        .ok()
                        .and_then(|r| r.get(layer).cloned().flatten())
                        .map(|q| q.weight);
                    weight.map(|weight| QConfig {
                        activation: QuantizerSpec::Observer(spec.clone()),
                        weight,
                    })
                }
            };
            map.set(key, q);
        }
        map
    }

    fn measure(&self, model: &workflow::QuantizedModel) -> Result<f64, SessionError> {
        self.bar.tick();
        self.wb.score(&self.scorer, model)
    }

    /// `choices` prepared, calibrated and converted from scratch, and scored.
    fn fresh(&self, choices: &[(String, Change)]) -> Result<(f64, Prepared), SessionError> {
        let map = self.map(choices);
        let mut prepared = workflow::prepare(&self.graph, &map)?;
        for batch in &self.calib {
            super::cancel::check()?;
            prepared.calibrate_batch(vec![batch.clone()])?;
        }
        let model = workflow::convert(&prepared, self.numerics)?;
        Ok((self.measure(&model)?, prepared))
    }

    /// `choices` re-using the statistics of `calibrated` (a calibration of a configuration
    /// with the same observers) when they serve, else calibrated afresh.
    fn rederived(
        &self,
        choices: &[(String, Change)],
        calibrated: &Prepared,
    ) -> Result<(f64, Prepared), SessionError> {
        let mut prepared = workflow::prepare(&self.graph, &self.map(choices))?;
        if prepared.adopt_calibration(calibrated.clone()).is_err() {
            return self.fresh(choices);
        }
        let model = workflow::convert(&prepared, self.numerics)?;
        Ok((self.measure(&model)?, prepared))
    }
}

/// The activation observers tried for a module whose observer is `have`: the histogram-based
/// kinds with its settings, and with `reduce_range` off too where it is on; valid ones only.
fn alternatives(have: &QuantizerSpec) -> Vec<ObserverSpec> {
    let QuantizerSpec::Observer(have) = have else {
        // A fake-quant (QAT) qconfig: not a post-training observer choice.
        return Vec::new();
    };
    if have.dtype != crate::tensor::DType::QUInt8 || have.kind.is_per_channel() {
        return Vec::new();
    }
    let ranges: &[bool] = if have.reduce_range {
        &[true, false]
    } else {
        &[false]
    };
    let mut out = Vec::new();
    for &reduce_range in ranges {
        for kind in [
            ObserverKind::Histogram,
            ObserverKind::Mse,
            ObserverKind::Entropy,
            ObserverKind::Percentile,
        ] {
            let mut spec = have.clone();
            spec.kind = kind;
            spec.reduce_range = reduce_range;
            if spec != *have && spec.validate().is_ok() && !out.contains(&spec) {
                out.push(spec);
            }
        }
    }
    out
}

fn met(target: SearchTarget, metric: f64) -> bool {
    metric >= target.value()
}

fn fmt_metric(target: SearchTarget, v: f64) -> String {
    match target {
        SearchTarget::Accuracy(_) => format!("{v:.6}"),
        SearchTarget::Sqnr(_) => format!("{v:.3} dB"),
    }
}

impl Workbench {
    pub(super) fn search(
        &mut self,
        data: &str,
        calib: &str,
        target: SearchTarget,
        max_float: Option<usize>,
        b: Batching,
    ) -> Result<Output, SessionError> {
        self.dataset(calib)?;
        self.dataset(data)?;
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let (fused, _) = fuse_auto_with(graph, self.fuse_options)?;
        let runs = self.runs(&fused, calib, Some(b))?;
        let c = self.dataset(calib)?;
        let calib_batches: Vec<Value> = runs.ranges.iter().map(|r| c.rows(r.clone())).collect();
        let scorer = self.scorer(data, target.is_accuracy())?;
        let base = self.effective_qconfigs()?;
        let space = Space {
            wb: self,
            graph: fused,
            base,
            calib: calib_batches,
            numerics: self.numerics,
            scorer,
            bar: Progress::start(self.progress, "search: models measured", None),
        };
        // A cancel inside the ranking comes back wrapped as an analysis error (the ranking
        // reports its callback's failures that way): say it was a cancel.
        let found = search_in(&space, data, calib, target, max_float, runs.batches).map_err(
            |e| match e {
                SessionError::Analysis(crate::analysis::AnalysisError::Model { detail })
                    if detail == SessionError::Cancelled.to_string() =>
                {
                    SessionError::Cancelled
                }
                e => e,
            },
        )?;
        drop(space);
        let Found {
            choices,
            metric,
            trail,
            title,
        } = found;
        if choices.is_empty() {
            return Ok(Output::Table {
                title: format!(
                    "{title}\ntarget {target} already met ({}): nothing changed",
                    fmt_metric(target, metric)
                ),
                table: trail,
            });
        }
        let mut commands: Vec<Command> = choices.iter().map(|(l, c)| c.command(l)).collect();
        commands.push(Command::Quantize {
            data: calib.to_string(),
            batching: b,
        });
        let verified = self.apply_verified(&commands, data, target)?;
        let floats = choices.iter().filter(|(_, c)| *c == Change::Float).count();
        let mut text = format!(
            "{title}\nverified from scratch (prepare, calibrate, convert): {} on {data} (search measured {}); {floats} module path(s) kept in float, {} observer change(s); applied and recorded:",
            fmt_metric(target, verified),
            fmt_metric(target, metric),
            choices.len() - floats,
        );
        for cmd in &commands {
            text.push_str(&format!("\n  {cmd}"));
        }
        Ok(Output::Table {
            title: text,
            table: trail,
        })
    }

    /// Applies `commands` (the chosen qconfig lines and the quantize that rebuilds the model
    /// from scratch) to the session and records them, when the rebuilt model meets `target`;
    /// otherwise, or if any fails or is cancelled, puts the workbench back as it was.
    fn apply_verified(
        &mut self,
        commands: &[Command],
        data: &str,
        target: SearchTarget,
    ) -> Result<f64, SessionError> {
        let saved = (
            self.model.clone(),
            self.qconfigs.clone(),
            self.prepared.take(),
            self.qat.take(),
            self.quantized.take(),
            std::mem::take(&mut self.quantized_outputs),
            self.outputs.clone(),
            self.loaded_qconfigs.clone(),
        );
        let applied = (|| {
            for cmd in commands {
                match cmd {
                    Command::QConfig { key, choice } => {
                        self.set_qconfig(key, choice)?;
                    }
                    Command::Quantize { data, batching } => {
                        self.quantize(data, *batching)?;
                    }
                    _ => unreachable!("search applies qconfig lines and quantize"),
                }
            }
            let scorer = self.scorer(data, target.is_accuracy())?;
            let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
            let verified = self.score(&scorer, model)?;
            if !met(target, verified) {
                return Err(SessionError::SearchUnmet {
                    detail: format!(
                        "the search's configuration measured {} when rebuilt from scratch, below the target {target}: nothing changed",
                        fmt_metric(target, verified)
                    ),
                });
            }
            Ok(verified)
        })();
        match applied {
            Ok(v) => {
                for cmd in commands {
                    self.record(cmd.clone());
                }
                Ok(v)
            }
            Err(e) => {
                let (model, qconfigs, prepared, qat, quantized, qouts, outs, loaded) = saved;
                self.model = model;
                self.qconfigs = qconfigs;
                self.prepared = prepared;
                self.qat = qat;
                self.quantized = quantized;
                self.quantized_outputs = qouts;
                self.outputs = outs;
                self.loaded_qconfigs = loaded;
                self.error_tables.clear();
                Err(e)
            }
        }
    }
}

/// The trail a search prints: one row per step.
struct Trail {
    target: SearchTarget,
    rows: Vec<Vec<String>>,
}

impl Trail {
    fn row(&mut self, step: String, layer: &str, tried: String, kept: String, metric: f64) {
        self.rows.push(vec![
            step,
            layer.to_string(),
            tried,
            kept,
            fmt_metric(self.target, metric),
        ]);
    }

    fn table(&self) -> Table {
        Table {
            headers: Table::header_row(&["step", "module", "tried", "kept", "metric"]),
            rows: self.rows.clone(),
        }
    }
}

/// What the greedy search settled on.
struct Found {
    choices: Vec<(String, Change)>,
    /// Its metric as the search measured it.
    metric: f64,
    trail: Table,
    title: String,
}

/// The search proper, on fixed inputs; changes nothing in the session.
fn search_in(
    space: &Space,
    data: &str,
    calib: &str,
    target: SearchTarget,
    max_float: Option<usize>,
    calib_batches: usize,
) -> Result<Found, SessionError> {
    let what = match target {
        SearchTarget::Accuracy(_) => "accuracy",
        SearchTarget::Sqnr(_) => "output SQNR",
    };
    let title = format!(
        "search on {data} for {target} ({what}; calibrated on {calib_batches} batch(es) of {calib})"
    );
    let mut trail = Trail {
        target,
        rows: Vec::new(),
    };
    let (baseline, mut calibrated) = space.fresh(&[])?;
    trail.row(
        "0".into(),
        "-",
        "session qconfigs".into(),
        "-".into(),
        baseline,
    );
    if met(target, baseline) {
        return Ok(Found {
            choices: Vec::new(),
            metric: baseline,
            trail: trail.table(),
            title,
        });
    }
    let layers = crate::analysis::ranked_layers(&space.graph, &space.base)?;
    // Candidates: largest leave-one-out recovery first; ties keep graph order.
    let metric =
        |m: &workflow::QuantizedModel| space.measure(m).map_err(super::analyze::analysis_err);
    let mut order = leave_one_out(
        &space.graph,
        &space.base,
        &space.calib,
        space.numerics,
        metric,
    )?;
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Then the other modules with an output observer of their own (Hardswish, ...), whose
    // observer can change but which the ranking does not score.
    let observed: Vec<String> = calibrated
        .observers
        .iter()
        .map(|o| o.owner.clone())
        .filter(|o| space.graph.node(o).is_some() && !layers.iter().any(|(l, _)| l == o))
        .collect();
    let mut choices: Vec<(String, Change)> = Vec::new();
    let mut current = baseline;
    // 1. Observers: each module's best activation observer, re-derived from the statistics.
    // Ranked modules whose leaving out does not beat the baseline gain little from another
    // observer either (measured on MobileNetV3: +0.01 dB of 3.5): they are not tried. Accuracy
    // moves in steps of one sample, so there a tie with the baseline is tried.
    let worth =
        |left_out: f64| left_out > baseline || (target.is_accuracy() && left_out == baseline);
    let candidates = order
        .iter()
        .filter(|(_, m)| worth(*m))
        .map(|(l, m)| (l.clone(), Some(*m)))
        .chain(observed.iter().map(|l| (l.clone(), None)));
    for (i, (layer, left_out)) in candidates.enumerate() {
        if met(target, current) {
            break;
        }
        let have = space
            .map(&choices)
            .resolve(&space.graph)?
            .get(&layer)
            .cloned()
            .flatten();
        let alts = have
            .as_ref()
            .map_or_else(Vec::new, |q| alternatives(&q.activation));
        if alts.is_empty() {
            continue;
        }
        let mut best: Option<(f64, ObserverSpec, Prepared)> = None;
        for spec in &alts {
            let mut trial = choices.clone();
            trial.push((layer.clone(), Change::Observer(spec.clone())));
            let (m, p) = space.rederived(&trial, &calibrated)?;
            if m > best.as_ref().map_or(current, |b| b.0) {
                best = Some((m, spec.clone(), p));
            }
        }
        let kept = match best {
            Some((m, spec, p)) => {
                choices.push((layer.clone(), Change::Observer(spec.clone())));
                current = m;
                calibrated = p;
                format!("activation={spec}")
            }
            None => "-".into(),
        };
        trail.row(
            format!("o{}", i + 1),
            &layer,
            format!(
                "{} observers{}",
                alts.len(),
                left_out.map_or_else(
                    || " (not ranked)".to_string(),
                    |m| format!("; left out {}", fmt_metric(target, m))
                )
            ),
            kept,
            current,
        );
    }
    // 2. Float fallback, in the ranking's order, when observers were not enough.
    let max_float = max_float.unwrap_or(layers.len());
    if !met(target, current) && max_float > 0 {
        // The ceiling: every ranked module in float at once (over the observer choices).
        let mut all_float: Vec<(String, Change)> = choices
            .iter()
            .filter(|(l, _)| !layers.iter().any(|(r, _)| r == l))
            .cloned()
            .collect();
        all_float.extend(layers.iter().map(|(l, _)| (l.clone(), Change::Float)));
        let (ceiling, _) = space.fresh(&all_float)?;
        trail.row(
            "-".into(),
            "(all ranked)",
            format!("all {} ranked modules float", layers.len()),
            "-".into(),
            ceiling,
        );
        if !met(target, ceiling) {
            return Err(SessionError::SearchUnmet {
                detail: format!(
                    "no configuration meets the target {target}: even with all {} ranked modules in float (and the observer choices above) the {what} on {data} is {} (baseline {}, best with observers only {}); nothing changed\n{title}\n{}",
                    layers.len(),
                    fmt_metric(target, ceiling),
                    fmt_metric(target, baseline),
                    fmt_metric(target, current),
                    trail.table()
                ),
            });
        }
        let mut floats = 0;
        for (i, (layer, _)) in order.iter().enumerate() {
            if met(target, current) || floats >= max_float {
                break;
            }
            let mut trial: Vec<(String, Change)> = choices
                .iter()
                .filter(|(l, _)| l != layer)
                .cloned()
                .collect();
            trial.push((layer.clone(), Change::Float));
            let (m, _) = space.fresh(&trial)?;
            let keep = m > current;
            if keep {
                choices = trial;
                current = m;
                floats += 1;
            }
            trail.row(
                format!("f{}", i + 1),
                layer,
                format!("float {}", fmt_metric(target, m)),
                if keep { "float" } else { "-" }.into(),
                current,
            );
        }
    }
    if !met(target, current) {
        let float: Vec<&str> = choices
            .iter()
            .filter(|(_, c)| *c == Change::Float)
            .map(|(l, _)| l.as_str())
            .collect();
        let detail = format!(
            "no configuration meets the target {target} within max_float={max_float}; best found: {} ({} module(s) in float: {}; {} observer change(s)); nothing changed",
            fmt_metric(target, current),
            float.len(),
            if float.is_empty() {
                "-".to_string()
            } else {
                float.join(", ")
            },
            choices.len() - float.len(),
        );
        return Err(SessionError::SearchUnmet {
            detail: format!("{detail}\n{title}\n{}", trail.table()),
        });
    }
    // Pruning: a module put in float early may not be needed once later ones are; return each
    // float module to its quantized qconfig (newest first) while the target still holds.
    let float_layers: Vec<String> = choices
        .iter()
        .rev()
        .filter(|(_, c)| *c == Change::Float)
        .map(|(l, _)| l.clone())
        .collect();
    if float_layers.len() > 1 {
        for layer in float_layers {
            let trial: Vec<(String, Change)> = choices
                .iter()
                .filter(|(l, _)| *l != layer)
                .cloned()
                .collect();
            let (m, _) = space.fresh(&trial)?;
            let keep = met(target, m);
            trail.row(
                "prune".into(),
                &layer,
                format!("quantized again {}", fmt_metric(target, m)),
                if keep { "quantized" } else { "float" }.into(),
                if keep { m } else { current },
            );
            if keep {
                choices = trial;
                current = m;
            }
        }
    }
    Ok(Found {
        choices,
        metric: current,
        trail: trail.table(),
        title,
    })
}
