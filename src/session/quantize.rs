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
use crate::engine::{Engine, HostProfile, Numerics};
use crate::graph::Graph;
use crate::qconfig::QConfig;
use crate::qconfig::presets::get_default_qconfig;
use crate::workflow::{
    self, FuseOptions, QConfigKey, QConfigMap, QuantizedModel, Severity, dynamic_qconfig_map,
    fuse_auto_with, fuse_modules,
};

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
        // They described the converted model that was loaded.
        self.loaded_qconfigs.clear();
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

    /// `correct bias DATA`: bias correction of a copy of the converted model, installed when
    /// it completes (a cancelled run changes nothing).
    pub(super) fn correct_bias(&mut self, data: &str, b: Batching) -> Result<Output, SessionError> {
        let mut model = self.quantized.clone().ok_or(SessionError::NotConverted)?;
        let runs = self.runs(&model.graph, data, Some(b))?;
        let d = self.dataset(data)?;
        let batches: Vec<_> = runs.ranges.iter().map(|r| d.rows(r.clone())).collect();
        let done = workflow::correct_bias(&mut model, &batches)?;
        self.quantized = Some(model);
        self.quantized_outputs.clear();
        if done.is_empty() {
            return Ok(Output::Text(
                "no bias to correct: no unfused quantized Conv2d or Linear with a bias".into(),
            ));
        }
        let mut text = format!(
            "corrected the bias of {} module(s) on {} samples of {data} (largest per-channel shift):",
            done.len(),
            runs.samples()
        );
        for c in &done {
            text.push_str(&format!("\n  {}: {:.3e}", c.layer, c.max_abs_shift()));
        }
        Ok(Output::Text(text))
    }

    /// `equalize`: cross-layer equalization of the (fused) float model's pairs.
    pub(super) fn equalize(
        &mut self,
        groups: Option<&[Vec<String>]>,
        threshold: f64,
    ) -> Result<Output, SessionError> {
        let (path, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        if let Some(bn) = graph
            .nodes
            .iter()
            .find(|n| matches!(n.op, crate::graph::Op::BatchNorm(_)))
        {
            // Scaling a conv's output channels under an unfolded BatchNorm is not the identity.
            return Err(workflow::WorkflowError::Check {
                module: bn.name.clone(),
                problem: "BatchNorm is not folded into its conv".into(),
                fix: "fuse auto (or fuse the conv with it) before equalize".into(),
            }
            .into());
        }
        let (pairs, skipped) = match groups {
            None => workflow::find_pairs(graph),
            Some(groups) => (
                groups
                    .iter()
                    .flat_map(|g| {
                        g.windows(2).map(|w| workflow::Pair {
                            first: w[0].clone(),
                            second: w[1].clone(),
                        })
                    })
                    .collect(),
                Vec::new(),
            ),
        };
        let mut equalized = graph.clone();
        let done = workflow::equalize(&mut equalized, &pairs, threshold)?;
        let path = path.clone();
        self.model = Some((path, equalized));
        self.outputs.clear();
        self.reset_quantization();
        let mut text = if pairs.is_empty() {
            "nothing to equalize".to_string()
        } else {
            format!(
                "equalized {} pair(s) in {} sweep(s); largest/smallest output-channel weight range of the first:",
                pairs.len(),
                done.sweeps
            )
        };
        for (p, before, after) in &done.spread {
            text.push_str(&format!(
                "\n  {} → {}: {before:.1}x → {after:.1}x",
                p.first, p.second
            ));
        }
        for (module, channel) in &done.kept {
            text.push_str(&format!(
                "\n  {module} channel {channel}: weight range zero, left unscaled"
            ));
        }
        for s in &skipped {
            text.push_str(&format!(
                "\n  skipped {} → {}: {}",
                s.first, s.second, s.reason
            ));
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
    pub(super) fn effective_qconfigs(&self) -> Result<QConfigMap, SessionError> {
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
        self.loaded_qconfigs.clear();
        if rows.is_empty() {
            return Output::Text(title);
        }
        if rows.len() > NODE_TABLE_LIMIT {
            return Output::Text(format!("{title}\n{}", op_counts(&rows)));
        }
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
}

fn describe(choice: &QConfigChoice, resolved: Option<&QConfig>) -> String {
    match (choice, resolved) {
        (QConfigChoice::Preset(p), _) => format!("preset {p}"),
        (QConfigChoice::None, _) | (_, None) => "none (kept in float)".into(),
        (_, Some(q)) => q.to_string(),
    }
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

/// Beyond this many quantized nodes `convert` prints counts per op, not a row per node (a
/// MobileNet's would fill screens); `show model` has the per-node column.
const NODE_TABLE_LIMIT: usize = 24;

/// `op ×count` per quantized op kind, in order of first appearance.
fn op_counts(rows: &[Vec<String>]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for op in rows.iter().map(|r| r[1].as_str()) {
        match counts.iter_mut().find(|(k, _)| *k == op) {
            Some((_, n)) => *n += 1,
            None => counts.push((op, 1)),
        }
    }
    let list: Vec<String> = counts.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    format!(
        "quantized ops: {} (show model lists each node's)",
        list.join(", ")
    )
}
