//! The `Workbench`: the state every front end drives (the model, named datasets, the command
//! log) and `apply`, the one place commands take effect.

use super::command::ModelChoice;
use super::{Command, Expectation, Metric, Output, SessionError, Table};
use crate::analysis::{ErrorColumn, ErrorMode, LayerError, weight_errors};
use crate::engine::Numerics;
use crate::graph::rows;
use crate::graph::{Graph, GraphError, Value, summarize};
use crate::import::Dataset;
use crate::import::native::{SavedQuantized, load_native_model, save_native_model};
use crate::import::npy::write_npy_f32;
use crate::workflow::{FuseOptions, Prepared, QConfigMap, QatModel, QuantizedModel};
use ndarray::{ArrayD, Axis};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Samples per forward pass when running a dataset (bounds memory on large inputs).
pub(super) const RUN_BATCH: usize = 256;

/// The session state.
#[derive(Debug, Default)]
pub struct Workbench {
    pub(super) model: Option<(String, Graph)>,
    pub(super) datasets: BTreeMap<String, Dataset>,
    log: Vec<Command>,
    /// The model's first output per dataset, so `eval`, `expect` and `predict` on the same data
    /// run the model once; cleared when the model or that dataset changes.
    pub(super) outputs: BTreeMap<String, ArrayD<f32>>,
    /// How `fuse auto` and `quantize` read an add followed by a ReLU (`fuse auto add_relu=`).
    pub(super) fuse_options: FuseOptions,
    /// The engine and host profile `convert` targets.
    pub(super) numerics: Numerics,
    /// The qconfig entries given so far (empty: the engine's default qconfig for everything).
    pub(super) qconfigs: QConfigMap,
    /// The model prepared (and perhaps calibrated) for static quantization.
    pub(super) prepared: Option<Prepared>,
    /// The model prepared for quantization-aware training.
    pub(super) qat: Option<QatModel>,
    /// The converted model.
    pub(super) quantized: Option<QuantizedModel>,
    /// The converted model's first output per dataset (as `outputs`).
    pub(super) quantized_outputs: BTreeMap<String, ArrayD<f32>>,
    /// Per-layer error tables by (dataset, mode), so consecutive `expect`, `errors`, `export`
    /// and `plot errors` lines compute each once; cleared by every state-changing command.
    pub(super) error_tables: BTreeMap<(String, ErrorMode), Vec<LayerError>>,
    /// Notes for the current command's output, one per model input (a pinned batch's runs);
    /// behind a lock because data is run from `&self`, also inside analysis callbacks.
    pub(super) notes: Mutex<Vec<(String, String)>>,
    /// Whether long commands draw a progress bar on stderr (see [`super::progress`]).
    pub(super) progress: bool,
    /// The directory relative paths are resolved against (see [`super::paths`]); `None`: the
    /// working directory.
    pub(super) base_dir: Option<std::path::PathBuf>,
    /// SHA-256 of the loaded model file, for reports (see [`super::context`]).
    pub(super) model_sha256: String,
    /// Each layer's qconfig text as a loaded native model recorded it: what `save model` and
    /// `export qparams` report for a converted model that was loaded rather than prepared here.
    pub(super) loaded_qconfigs: BTreeMap<String, String>,
}

impl Workbench {
    pub fn new() -> Self {
        Workbench::default()
    }

    /// Turns progress bars on stderr on or off for long commands (calibration, sensitivity);
    /// off by default, for front ends that own the screen.
    pub fn show_progress(&mut self, on: bool) {
        self.progress = on;
    }

    /// The loaded model, if any.
    pub fn graph(&self) -> Option<&Graph> {
        self.model.as_ref().map(|(_, g)| g)
    }

    /// The names of the loaded datasets, sorted.
    pub fn dataset_names(&self) -> Vec<String> {
        self.datasets.keys().cloned().collect()
    }

    /// The number of samples in dataset `name`, if loaded.
    pub fn dataset_len(&self, name: &str) -> Option<usize> {
        self.datasets.get(name).map(|d| d.len())
    }

    /// The commands recorded so far, in order.
    pub fn log(&self) -> &[Command] {
        &self.log
    }

    /// Records `cmd` as if it had been applied on its own line (a verb that applies other
    /// commands records those).
    pub(super) fn record(&mut self, cmd: Command) {
        self.log.push(cmd);
    }

    /// The recorded commands as a replayable script.
    pub fn session_text(&self) -> String {
        script(self.log.iter().cloned())
    }

    /// Applies one command; on error nothing that existed before is changed.
    pub fn apply(&mut self, cmd: &Command) -> Result<Output, SessionError> {
        // A model run stopped by a cancel request fails with whatever error its layer has; the
        // pending request says it was a cancel.
        self.apply_uncancelled(cmd).map_err(|e| {
            if crate::cancel::take() {
                SessionError::Cancelled
            } else {
                e
            }
        })
    }

    fn apply_uncancelled(&mut self, cmd: &Command) -> Result<Output, SessionError> {
        if cmd.changes_state() {
            self.error_tables.clear();
        }
        self.clear_notes();
        let out = match cmd {
            Command::LoadModel { path } => self.load_model(path)?,
            Command::LoadData { name, path, labels } => {
                self.load_data(name, path, labels.as_deref())?
            }
            Command::ShowModel => self.show_model()?,
            Command::ShowQParams => self.show_qparams()?,
            Command::Eval { data } => self.eval(data)?,
            Command::Predict { data, out, model } => self.predict(data, out, *model)?,
            Command::Expect(e) => self.expect(e)?,
            Command::SaveModel { path } => self.save_model(path)?,
            Command::SaveSession { path } => {
                let file = self.at(path);
                crate::fsutil::write_atomic(&file, self.session_text_for(&file).as_bytes())
                    .map_err(|source| SessionError::Io {
                        path: path.clone(),
                        source,
                    })?;
                Output::Text(format!("saved {} command(s) to {path}", self.log.len()))
            }
            Command::ErrorsWeights { weight } => self.weight_errors(weight)?,
            Command::ErrorsLayers { data, mode } => self.layer_errors(data, *mode)?,
            Command::Help { verb } => super::help::help(verb.as_deref())?,
            Command::Engine { engine, profile } => self.set_engine(*engine, *profile),
            Command::QConfig { key, choice } => self.set_qconfig(key, choice)?,
            Command::Fuse { groups, add_relu } => self.fuse(groups.as_deref(), *add_relu)?,
            Command::CorrectBias { data, batching } => self.correct_bias(data, *batching)?,
            Command::Diagnose { data, top } => self.diagnose(data, *top)?,
            Command::Equalize { groups, threshold } => {
                self.equalize(groups.as_deref(), *threshold)?
            }
            Command::Prepare => self.prepare()?,
            Command::PrepareQat => self.prepare_qat()?,
            Command::Train(t) => self.train(t)?,
            Command::Calibrate { data, batching } => self.calibrate(data, *batching)?,
            Command::Check => self.check()?,
            Command::Convert { qparams: None } => self.convert()?,
            Command::Convert { qparams: Some(q) } => self.convert_with_reference(q)?,
            Command::Quantize { data, batching } => self.quantize(data, *batching)?,
            Command::QuantizeDynamic { float16 } => self.quantize_dynamic(*float16)?,
            Command::CompareEngines { a, b, data, timing } => {
                self.compare_engines(*a, *b, data, *timing)?
            }
            Command::CompareReference {
                layers,
                data,
                qparams,
                sample,
            } => self.compare_reference(layers, data, qparams.as_deref(), *sample)?,
            Command::Export { what, out } => self.export(what, out)?,
            Command::Sensitivity {
                data,
                calib,
                batching,
            } => self.sensitivity(data, calib, *batching)?,
            Command::Search {
                data,
                calib,
                target,
                max_float,
                batching,
            } => self.search(data, calib, *target, *max_float, *batching)?,
            Command::PlotHistogram { layer, out, log } => self.plot_histogram(layer, out, *log)?,
            Command::PlotErrors { data, out, mode } => self.plot_errors(data, out, *mode)?,
        };
        let out = self.with_notes(out);
        if !matches!(
            cmd,
            Command::Help { .. }
                | Command::ShowModel
                | Command::ShowQParams
                | Command::SaveSession { .. }
                | Command::Check
                // It records the commands it applied instead (see `search.rs`).
                | Command::Search { .. }
        ) {
            self.log.push(cmd.clone());
        }
        Ok(out)
    }

    fn load_model(&mut self, path: &str) -> Result<Output, SessionError> {
        let p = &self.at(path);
        // A native model may carry its converted form; other formats are float only.
        let (graph, quantized) = if p.is_dir() {
            let m = load_native_model(p)?;
            (m.graph, m.quantized)
        } else {
            (crate::import::load_model::<SessionError>(p)?, None)
        };
        let mut text = format!(
            "loaded {path}: {} nodes, {} parameters, {}",
            graph.nodes.len(),
            graph.param_count(),
            batch_text(&graph)
        );
        text.push_str(&batch_norm_note(&graph));
        self.model_sha256 = super::context::model_sha256(p)?;
        self.model = Some((path.to_string(), graph));
        self.outputs.clear();
        self.reset_quantization();
        if let Some(q) = quantized {
            text.push_str(&loaded_quantized_text(&q));
            self.numerics = q.model.numerics;
            self.quantized = Some(q.model);
            self.loaded_qconfigs = q.qconfigs;
        }
        Ok(Output::Text(text))
    }

    /// `save model`: the float graph, and the converted model when there is one.
    fn save_model(&self, path: &str) -> Result<Output, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let qconfigs = self.layer_qconfigs();
        let quantized = self.quantized.as_ref().map(|m| (m, &qconfigs));
        save_native_model(graph, quantized, &self.at(path))?;
        Ok(Output::Text(match &self.quantized {
            Some(m) => format!(
                "saved model to {path}, with the converted model ({} engine)",
                m.numerics.engine
            ),
            None => format!("saved model to {path}"),
        }))
    }

    /// Each layer's qconfig text (`float`: kept in float): the prepared (or QAT) model's, else
    /// what a loaded model recorded.
    pub(super) fn layer_qconfigs(&self) -> BTreeMap<String, String> {
        let live = (self.prepared.as_ref().map(|p| &p.qconfigs))
            .or_else(|| self.qat.as_ref().map(|q| &q.qconfigs));
        match live {
            Some(qconfigs) => qconfigs
                .iter()
                .map(|(k, q)| {
                    let text = q.as_ref().map_or_else(|| "float".into(), |q| q.to_string());
                    (k.clone(), text)
                })
                .collect(),
            None => self.loaded_qconfigs.clone(),
        }
    }

    fn load_data(
        &mut self,
        name: &str,
        path: &str,
        labels: Option<&str>,
    ) -> Result<Output, SessionError> {
        let labels = labels.map(|l| self.at(l));
        let d = Dataset::from_npy(name, &self.at(path), labels.as_deref())?;
        if let Some(graph) = self.graph() {
            d.check_model(graph)?;
        }
        let text = format!(
            "loaded data {name}: {} samples of shape {:?}{}{}",
            d.len(),
            d.sample_shape(),
            match d.inputs {
                Value::F32(_) => "",
                Value::I64(_) => " (int64 ids)",
            },
            if d.labels.is_some() { ", labelled" } else { "" }
        );
        self.datasets.insert(name.to_string(), d);
        self.outputs.remove(name);
        self.quantized_outputs.remove(name);
        Ok(Output::Text(text))
    }

    pub(super) fn dataset(&self, name: &str) -> Result<&Dataset, SessionError> {
        self.datasets
            .get(name)
            .ok_or_else(|| SessionError::UnknownData {
                name: name.into(),
                known: super::suggest::listing(
                    name,
                    &self.datasets.keys().map(String::as_str).collect::<Vec<_>>(),
                    "loaded",
                ),
            })
    }

    /// The model's first output on every sample of `data`, concatenated in order (computed
    /// once per model and dataset).
    pub(super) fn outputs(&mut self, data: &str) -> Result<&ArrayD<f32>, SessionError> {
        if !self.outputs.contains_key(data) {
            let y = self.run_dataset(data)?;
            self.outputs.insert(data.to_string(), y);
        }
        Ok(&self.outputs[data])
    }

    fn run_dataset(&self, data: &str) -> Result<ArrayD<f32>, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        self.run_batches(graph, data)
    }

    /// Runs `model` over `data` in the ranges of [`Workbench::runs`] and concatenates the first
    /// outputs in order. With several threads, a model found sample-wise on the first two rows
    /// ([`rows::row_parallel`]) runs each range as parallel parts of rows (the same outputs,
    /// bit for bit); any other runs each range whole.
    pub(super) fn run_batches<M: rows::Forward>(
        &self,
        model: &M,
        data: &str,
    ) -> Result<ArrayD<f32>, SessionError>
    where
        SessionError: From<M::Error>,
    {
        let graph = model.graph();
        if graph.inputs.is_empty() {
            return Err(SessionError::NoModel);
        }
        let runs = self.runs(graph, data, None)?;
        let d = self.dataset(data)?;
        let probe = runs
            .ranges
            .first()
            .filter(|r| r.len() >= 2 && rayon::current_num_threads() > 1);
        let parallel = match probe {
            Some(r) => rows::row_parallel(model, vec![d.rows(r.start..r.start + 2)])?
                .1
                .ok(),
            None => None,
        };
        let mut parts = Vec::new();
        for range in runs.ranges {
            super::cancel::check()?;
            let x = vec![d.rows(range)];
            let y = match &parallel {
                Some(p) => p.run(x)?,
                None => model.forward_shapes(x, &mut |_, _| {})?,
            };
            match y.into_iter().next() {
                Some(Value::F32(y)) => parts.push(y),
                Some(other) => {
                    return Err(GraphError::WrongType {
                        node: "<model output>".into(),
                        expected: "float32",
                        got: other.dtype_name(),
                    }
                    .into());
                }
                None => return Err(SessionError::NoModel),
            }
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(0), &views).map_err(|e| {
            GraphError::Shape {
                node: "<model output>".into(),
                detail: format!("batches of {data} do not concatenate: {e}"),
            }
            .into()
        })
    }

    /// The labels of `data`, or an error when it has none.
    pub(super) fn labels(&self, data: &str) -> Result<&[i64], SessionError> {
        self.dataset(data)?
            .labels
            .as_deref()
            .ok_or_else(|| SessionError::NoLabels(data.into()))
    }

    /// Correct predictions of `model` on `data`, when it is labelled.
    pub(super) fn model_correct(
        &self,
        model: &QuantizedModel,
        data: &str,
    ) -> Result<Option<(usize, usize)>, SessionError> {
        if self.dataset(data)?.labels.is_none() {
            return Ok(None);
        }
        let y = self.run_batches(model, data)?;
        Ok(Some(self.count_correct(&y, data)?))
    }

    pub(super) fn correct(&mut self, data: &str) -> Result<(usize, usize), SessionError> {
        self.labels(data)?;
        self.outputs(data)?;
        self.count_correct(&self.outputs[data], data)
    }

    /// Correct predictions of the converted model on `data`.
    pub(super) fn quantized_correct(&mut self, data: &str) -> Result<(usize, usize), SessionError> {
        self.labels(data)?;
        self.quantized_outputs(data)?;
        self.count_correct(&self.quantized_outputs[data], data)
    }

    /// (correct, total) predictions in `logits` against `data`'s labels, each checked to be one
    /// of the logits' classes.
    fn count_correct(
        &self,
        logits: &ArrayD<f32>,
        data: &str,
    ) -> Result<(usize, usize), SessionError> {
        let labels = self.labels(data)?;
        let classes = logits.shape().get(1).copied().unwrap_or(0);
        self.dataset(data)?.check_labels(classes)?;
        let correct = logits
            .outer_iter()
            .zip(labels)
            .filter(|(row, label)| argmax(row.iter().copied()) == Some(**label as usize))
            .count();
        Ok((correct, labels.len()))
    }

    /// Fraction of samples where the float and the converted model pick the same class.
    fn agreement(&mut self, data: &str) -> Result<f64, SessionError> {
        let (same, total) = self.agreeing(data)?;
        Ok(same as f64 / total.max(1) as f64)
    }

    /// (samples whose top-1 class is the float model's, samples) of the converted model.
    fn agreeing(&mut self, data: &str) -> Result<(usize, usize), SessionError> {
        self.outputs(data)?;
        self.quantized_outputs(data)?;
        let (f, q) = (&self.outputs[data], &self.quantized_outputs[data]);
        let same = f
            .outer_iter()
            .zip(q.outer_iter())
            .filter(|(a, b)| argmax(a.iter().copied()) == argmax(b.iter().copied()))
            .count();
        Ok((same, f.shape()[0]))
    }

    fn eval(&mut self, data: &str) -> Result<Output, SessionError> {
        if self.dataset(data)?.labels.is_none() {
            return self.eval_unlabelled(data);
        }
        let (correct, total) = self.correct(data)?;
        let mut text = format!(
            "float accuracy on {data}: {:.6} ({correct}/{total})",
            correct as f64 / total.max(1) as f64
        );
        if let Some(model) = &self.quantized {
            let engine = model.numerics.engine;
            let (qc, qt) = self.quantized_correct(data)?;
            let agree = self.agreement(data)?;
            text.push_str(&format!(
                "\nquantized ({engine}) accuracy on {data}: {:.6} ({qc}/{qt}); top-1 agreement with float {:.6}",
                qc as f64 / qt.max(1) as f64,
                agree
            ));
        }
        Ok(Output::Text(text))
    }

    /// `eval` on data without labels: what can be measured without them, the converted
    /// model's top-1 agreement with the float model.
    fn eval_unlabelled(&mut self, data: &str) -> Result<Output, SessionError> {
        let Some(engine) = self.quantized.as_ref().map(|m| m.numerics.engine) else {
            return Err(SessionError::NothingToEval(data.into()));
        };
        let (same, total) = self.agreeing(data)?;
        Ok(Output::Text(format!(
            "{data} has no labels (load it with labels=PATH for accuracy)\n\
             quantized ({engine}) top-1 agreement with float on {data}: {:.6} ({same}/{total})",
            same as f64 / total.max(1) as f64
        )))
    }

    /// Writes the float model's outputs, or the converted model's dequantized outputs, on
    /// `data` to `out` (both cached as `eval` caches them, so `predict` after `eval` reruns
    /// nothing).
    fn predict(
        &mut self,
        data: &str,
        out: &str,
        model: ModelChoice,
    ) -> Result<Output, SessionError> {
        let file = self.at(out);
        let (y, what) = match model {
            ModelChoice::Float => (self.outputs(data)?, "outputs".to_string()),
            ModelChoice::Quantized => {
                let engine = self
                    .quantized
                    .as_ref()
                    .ok_or(SessionError::NotConverted)?
                    .numerics
                    .engine;
                (
                    self.quantized_outputs(data)?,
                    format!("quantized ({engine}) outputs, dequantized,"),
                )
            }
        };
        write_npy_f32(&file, y)?;
        Ok(Output::Text(format!(
            "wrote {out}: {what} of shape {:?}",
            y.shape()
        )))
    }

    fn show_model(&self) -> Result<Output, SessionError> {
        let (path, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let mut table = model_table(graph)?;
        // Once converted, each node's quantized op (`convert` only counts them on big models).
        if let Some(q) = &self.quantized {
            let kinds: std::collections::HashMap<&str, &str> = q
                .graph
                .nodes
                .iter()
                .zip(&q.ops)
                .map(|(n, op)| (n.name.as_str(), op.kind()))
                .collect();
            table.headers.push("quantized".into());
            for row in &mut table.rows {
                let kind = kinds.get(row[0].as_str()).copied().unwrap_or("-");
                row.push(kind.to_string());
            }
        }
        Ok(Output::Table {
            title: format!(
                "{path}: {} nodes, {} parameters",
                table.rows.len(),
                graph.param_count()
            ),
            table,
        })
    }

    /// Every Conv / Linear weight's quantization error with `spec`, worst first, as
    /// `errors weights` prints it and `export weights` writes it.
    pub(super) fn weight_error_rows(
        &self,
        spec: &crate::observer::ObserverSpec,
    ) -> Result<Vec<crate::analysis::WeightError>, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let mut rows = weight_errors(graph, spec)?;
        // Worst first; ties keep graph order (the sort is stable).
        rows.sort_by(|a, b| a.stats.sqnr_db().total_cmp(&b.stats.sqnr_db()));
        Ok(rows)
    }

    fn weight_errors(&self, spec: &crate::observer::ObserverSpec) -> Result<Output, SessionError> {
        let rows = self.weight_error_rows(spec)?;
        let mut headers = Table::header_row(&["layer", "op", "shape"]);
        headers.extend(ErrorColumn::WEIGHT.iter().map(|c| c.header().to_string()));
        let table = Table {
            headers,
            rows: rows
                .iter()
                .map(|r| {
                    vec![
                        r.layer.clone(),
                        r.op.to_string(),
                        format!("{:?}", r.shape),
                        format!("{:.2}", r.stats.sqnr_db()),
                        format!("{:.3e}", r.stats.mse()),
                        format!("{:.3e}", r.stats.max_abs()),
                        format!("{:.6}", r.stats.cosine()),
                        format!("{:.4}", r.stats.rmse_over_scale()),
                    ]
                })
                .collect(),
        };
        Ok(Output::Table {
            title: format!(
                "weight quantization error with {spec} (worst first; uniform rounding gives rmse/scale 0.2887)"
            ),
            table,
        })
    }

    fn expect(&mut self, e: &Expectation) -> Result<Output, SessionError> {
        let actual = match &e.metric {
            Metric::Accuracy { data } => {
                let (c, n) = self.correct(data)?;
                c as f64 / n.max(1) as f64
            }
            Metric::Correct { data } => self.correct(data)?.0 as f64,
            Metric::QuantizedAccuracy { data } => {
                let (c, n) = self.quantized_correct(data)?;
                c as f64 / n.max(1) as f64
            }
            Metric::QuantizedCorrect { data } => self.quantized_correct(data)?.0 as f64,
            Metric::Agreement { data } => self.agreement(data)?,
            Metric::Sqnr { data, layer } => self.layer_row(data, layer)?.stats.sqnr_db(),
            Metric::OutputSqnr { data } => {
                let scorer = self.scorer(data, false)?;
                let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
                self.score(&scorer, model)?
            }
            Metric::Saturated { data, layer: None } => self
                .error_table(data, ErrorMode::Cumulative)?
                .iter()
                .map(|r| r.saturated_pairs)
                .sum::<u64>() as f64,
            Metric::Saturated {
                data,
                layer: Some(layer),
            } => self.layer_row(data, layer)?.saturated_pairs as f64,
        };
        if e.op.holds(actual, e.value) {
            Ok(Output::Text(format!("ok: {e} (actual {actual})")))
        } else {
            Err(SessionError::ExpectationFailed {
                expectation: e.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

/// How many rows of `logits` pick their label, and how many rows there are.
/// Index of the largest value (first on ties), `None` when empty or all NaN.
fn argmax(values: impl Iterator<Item = f32>) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, v) in values.enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// What the export did with BatchNorm, which decides how close int8 results can come to
/// PyTorch's: kept, qlab folds it as `fuse_model()` does (bit for bit); folded by the exporter,
/// the Conv weights differ from eager folding in the last float bits.
fn batch_norm_note(graph: &Graph) -> String {
    let bns = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, crate::graph::Op::BatchNorm(_)))
        .count();
    let convs = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, crate::graph::Op::Conv(_)))
        .count();
    let folded_by_fuse = graph
        .fusions
        .iter()
        .filter(|f| !f.qat)
        .flat_map(|f| f.types.iter().skip(1))
        .filter(|t| t.starts_with("BatchNorm"))
        .count();
    let quantize_linear = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, crate::graph::Op::QuantizeLinear { .. }))
        .count();
    match (bns, convs) {
        // A QDQ file (qlab's `export model`, ORT's quantizer): BN was folded before it.
        _ if quantize_linear > 0 => format!(
            "; a QDQ model ({quantize_linear} QuantizeLinear nodes): it runs as ONNX's float simulation of its int8 model; quantizing it again would quantize that simulation"
        ),
        _ if folded_by_fuse > 0 => format!(
            "; {folded_by_fuse} BatchNorm modules folded by qlab's fusion (as PyTorch's fuse_model() does)"
        ),
        (0, 0) => String::new(),
        (0, _) => "; no BatchNorm nodes (if the network has BN, the exporter folded it: int8 results come close to PyTorch's eager ones, not bit for bit)".into(),
        (n, _) => format!("; {n} BatchNorm nodes kept (fusion folds them as PyTorch's fuse_model() does)"),
    }
}

/// `commands` as a replayable script, one per line under a header saying how to replay it.
pub(super) fn script(commands: impl IntoIterator<Item = Command>) -> String {
    let mut text = String::from("# qlab session: replay with `qlab run FILE.qls`\n");
    for cmd in commands {
        text.push_str(&format!("{cmd}\n"));
    }
    text
}

/// A model's layer listing (`show model`, `qlab inspect`): path, op, attributes, input and
/// output shapes, parameter count.
pub fn model_table(graph: &crate::graph::Graph) -> Result<Table, SessionError> {
    let shapes = |v: &[Vec<usize>]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(Table {
        headers: Table::header_row(&["path", "op", "attributes", "input", "output", "params"]),
        rows: summarize(graph)?
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.op.to_string(),
                    r.attributes.clone(),
                    shapes(&r.input_shapes),
                    shapes(&r.output_shapes),
                    r.params.to_string(),
                ]
            })
            .collect(),
    })
}

/// What `load model` adds for a model saved after convert.
fn loaded_quantized_text(q: &SavedQuantized) -> String {
    let n = &q.model.numerics;
    let saved_on = q
        .saved_isa
        .as_ref()
        .map_or_else(String::new, |isa| format!("; saved on ISA tier {isa}"));
    format!(
        "\nwith its converted model: {} engine, profile {}, runs on ISA tier {}{saved_on}",
        n.engine,
        n.profile.name(),
        n.isa()
    )
}

/// `batch pinned at N` for an export with its batch baked in, else `any batch`.
pub fn batch_text(graph: &crate::graph::Graph) -> String {
    match graph.inputs.first().and_then(|i| i.shape.first()) {
        Some(Some(b)) => format!("batch pinned at {b}"),
        _ => "any batch".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::parse_line;

    /// `expect` lines on the same data share one error table per mode, kept (not recomputed)
    /// across read-only commands and dropped by a state change.
    #[test]
    fn error_tables_are_cached_until_the_state_changes() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut wb = Workbench::new();
        let mut run = |line: &str| {
            wb.apply(&parse_line(line).unwrap().unwrap()).unwrap();
            wb.error_tables
                .iter()
                .map(|((data, mode), rows)| (data.clone(), *mode, rows.as_ptr()))
                .collect::<Vec<_>>()
        };
        run(&format!(
            "load model \"{root}/sample-models/digits_mlp.onnx\""
        ));
        run(&format!(
            "load data calib \"{root}/sample-models/data/digits_calib_x.npy\""
        ));
        assert!(run("quantize calib").is_empty());
        let first = run("expect saturated(calib) == 0");
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].0.as_str(), first[0].1),
            ("calib", ErrorMode::Cumulative)
        );
        // The same allocation: the table was read, not rebuilt.
        assert_eq!(run("expect saturated(calib) <= 0"), first);
        let both = run("errors calib mode=isolated");
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], first[0]);
        assert!(run("engine qnnpack").is_empty());
    }
}
