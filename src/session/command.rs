//! The `Command` type — one line of the session language as the workbench applies it — and
//! the values its variants hold; `parse_line` reads a line into one and `Display` prints its
//! canonical form, which is what session files record. Both go through the verb table
//! (`super::verb`), where each verb's words are read and written.
//!
//! Grammar: `VERB [OBJECT] ARG... [key=value]...`; `#` starts a comment; tokens with spaces are
//! written in double quotes.

use super::SessionError;
use super::verb::{self, args::Args, args::tokenize};
use crate::analysis::ErrorMode;
use crate::engine::{Engine, HostProfile};
use crate::observer::ObserverSpec;
use crate::qconfig::presets::get_default_qconfig;
use crate::qconfig::{QConfig, QConfigError, QuantizerSpec};
use crate::workflow::QConfigKey;
use std::fmt;

/// A comparison in an `expect` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl CmpOp {
    pub const ALL: [(CmpOp, &'static str); 5] = [
        (CmpOp::Ge, ">="),
        (CmpOp::Gt, ">"),
        (CmpOp::Le, "<="),
        (CmpOp::Lt, "<"),
        (CmpOp::Eq, "=="),
    ];

    pub fn parse(s: &str) -> Option<CmpOp> {
        CmpOp::ALL.iter().find(|(_, t)| *t == s).map(|(op, _)| *op)
    }

    pub fn symbol(self) -> &'static str {
        CmpOp::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("==", |(_, t)| t)
    }

    /// Whether `actual OP expected` holds.
    pub fn holds(self, actual: f64, expected: f64) -> bool {
        match self {
            CmpOp::Ge => actual >= expected,
            CmpOp::Gt => actual > expected,
            CmpOp::Le => actual <= expected,
            CmpOp::Lt => actual < expected,
            CmpOp::Eq => actual == expected,
        }
    }
}

/// A quantity an `expect` line can test.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Top-1 accuracy of the float model on a labelled dataset.
    Accuracy { data: String },
    /// Number of correctly classified samples.
    Correct { data: String },
    /// Top-1 accuracy of the converted (quantized) model.
    QuantizedAccuracy { data: String },
    /// Correctly classified samples of the converted model.
    QuantizedCorrect { data: String },
    /// Fraction of samples where the float and the converted model agree on the top-1 class.
    Agreement { data: String },
    /// Cumulative output SQNR (dB) of one layer of the converted model on `data`.
    Sqnr { data: String, layer: String },
    /// SQNR (dB) of the converted model's first output against the float model's on `data`
    /// (what `search target=sqnr>=Y` measures; defined when the last layer is kept in float).
    OutputSqnr { data: String },
    /// Pair sums the engine saturated to int16 on `data` (cumulative run): in one layer, or in
    /// all of them when `layer` is `None`.
    Saturated { data: String, layer: Option<String> },
}

impl Metric {
    /// The metrics' names, as `expect` lines write them.
    pub const NAMES: [&'static str; 8] = [
        "accuracy",
        "correct",
        "quantized_accuracy",
        "quantized_correct",
        "agreement",
        "sqnr",
        "saturated",
        "output_sqnr",
    ];
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Accuracy { data } => write!(f, "accuracy({data})"),
            Metric::Correct { data } => write!(f, "correct({data})"),
            Metric::QuantizedAccuracy { data } => write!(f, "quantized_accuracy({data})"),
            Metric::QuantizedCorrect { data } => write!(f, "quantized_correct({data})"),
            Metric::Agreement { data } => write!(f, "agreement({data})"),
            Metric::Sqnr { data, layer } => write!(f, "sqnr({data},{layer})"),
            Metric::OutputSqnr { data } => write!(f, "output_sqnr({data})"),
            Metric::Saturated { data, layer: None } => write!(f, "saturated({data})"),
            Metric::Saturated {
                data,
                layer: Some(layer),
            } => write!(f, "saturated({data},{layer})"),
        }
    }
}

/// `expect METRIC OP NUMBER`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub metric: Metric,
    pub op: CmpOp,
    pub value: f64,
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.symbol(), self.value)
    }
}

/// One command of the session language.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `load model PATH` — an ONNX file or a `NAME.qlab` directory.
    LoadModel { path: String },
    /// `load data NAME PATH [labels=PATH]`.
    LoadData {
        name: String,
        path: String,
        labels: Option<String>,
    },
    /// `show model` — the layer listing.
    ShowModel,
    /// `show qparams` — every observer's statistics and qparams, or the converted model's.
    ShowQParams,
    /// `eval DATA` — top-1 accuracy of the float model.
    Eval { data: String },
    /// `predict DATA out=FILE.npy [model=float|quantized]` — write the float model's outputs,
    /// or the converted model's dequantized outputs.
    Predict {
        data: String,
        out: String,
        model: ModelChoice,
    },
    /// `expect METRIC OP NUMBER` — fail the replay unless it holds.
    Expect(Expectation),
    /// `save model PATH.qlab`.
    SaveModel { path: String },
    /// `save session FILE.qls` — write the recorded commands.
    SaveSession { path: String },
    /// `errors weights [weight=SPEC]` — per-layer weight quantization error, worst first.
    ErrorsWeights { weight: ObserverSpec },
    /// `errors DATA [mode=cumulative|isolated]` — per-layer activation error of the converted
    /// model against the float one, worst first.
    ErrorsLayers { data: String, mode: ErrorMode },
    /// `help [VERB]`.
    Help { verb: Option<String> },
    /// `engine fbgemm|qnnpack|x86 [profile=vnni|avx2|exact]` — the numerics `convert` targets.
    Engine {
        engine: Engine,
        profile: HostProfile,
    },
    /// `qconfig TARGET preset=NAME | activation=SPEC weight=SPEC | none`; TARGET is `*`, a
    /// module path or glob, or `type=CLASS`.
    QConfig {
        key: QConfigKey,
        choice: QConfigChoice,
    },
    /// `fuse auto [add_relu=off]` or `fuse a,b,c d,e` (one comma-separated group per argument).
    /// `add_relu=off` keeps an add followed by a ReLU apart (observed before the ReLU) instead
    /// of reading it as `FloatFunctional.add_relu`; `quantize` then fuses the same way.
    Fuse {
        groups: Option<Vec<Vec<String>>>,
        add_relu: bool,
    },
    /// `equalize [a,b[,c] ...] [threshold=X]` — cross-layer equalization of Conv/Linear pairs
    /// with only a ReLU between them (every such pair of the model when no group is named;
    /// a group of three is two pairs), PyTorch's `_equalize.equalize`.
    Equalize {
        groups: Option<Vec<Vec<String>>>,
        threshold: f64,
    },
    /// `correct bias DATA [batch=N] [batches=N]` — empirical bias correction of the converted
    /// model's unfused Conv2d / Linear modules on DATA (PyTorch's `_correct_bias`).
    CorrectBias { data: String, batching: Batching },
    /// `diagnose DATA [top=N]` — the likely causes of the worst layers' error, with evidence
    /// and the command that addresses each; read-only.
    Diagnose { data: String, top: usize },
    /// `prepare` — place observers for static quantization.
    Prepare,
    /// `prepare qat` — fuse for QAT (BN kept), fake-quants on activations and weights.
    PrepareQat,
    /// `train DATA [epochs=1] [lr=0.01] [batch=32] [seed=7] [freeze=true]` — QAT epochs of SGD
    /// on a labelled dataset; `freeze` first disables the observers and freezes BN statistics.
    Train(TrainOptions),
    /// `calibrate DATA [batch=N] [batches=N]` — run data through the observers.
    Calibrate { data: String, batching: Batching },
    /// `check` — the pre-convert check's findings.
    Check,
    /// `convert [qparams=Q.json]` — build the quantized model for the engine; `qparams` takes
    /// the output qparams of the modules a reference model's file names (PyTorch's converted
    /// model: `{module: {type, scale, zero_point}}`) instead of deriving them.
    Convert { qparams: Option<String> },
    /// `quantize DATA [batch=N] [batches=N]` — fuse auto, prepare, calibrate, convert.
    Quantize { data: String, batching: Batching },
    /// `quantize dynamic [dtype=qint8|float16]` — `nn.Linear` modules (not functional
    /// `F.linear` calls) and LSTM, no calibration.
    QuantizeDynamic { float16: bool },
    /// `export KIND ... out=FILE.{json,csv,md,html}` — a report of what `errors DATA`,
    /// `errors weights`, `compare engines` or `sensitivity` print; `export pytorch
    /// out=FILE.py` — the script (and `FILE.json`) that sets qlab's qparams in PyTorch.
    Export { what: Exported, out: String },
    /// `plot histogram LAYER out=FILE.svg|png` — the layer's observer histogram with the
    /// quantization range and grid.
    PlotHistogram {
        layer: String,
        out: String,
        /// `scale=log`: log10(1 + count) heights, so a spike at zero leaves the tails visible.
        log: bool,
    },
    /// `plot errors DATA out=FILE.svg|png [mode=...]` — per-layer SQNR bars.
    PlotErrors {
        data: String,
        out: String,
        mode: ErrorMode,
    },
    /// `sensitivity DATA calib=CALIB [batch=N] [batches=N]` — every module quantized alone and
    /// left out alone, ranked by what leaving it out recovers.
    Sensitivity {
        data: String,
        calib: String,
        batching: Batching,
    },
    /// `search DATA calib=CALIB target=accuracy>=X|sqnr>=Y [max_float=N] [batch=N]
    /// [batches=N]` — the fewest layers to keep in float (and per layer the activation
    /// observer) that meet the target; ends by applying its qconfig lines and `quantize`.
    Search {
        data: String,
        calib: String,
        target: SearchTarget,
        max_float: Option<usize>,
        batching: Batching,
    },
    /// `compare engines A B DATA [timing=on]` — the calibrated model converted for both
    /// engines, compared node by node on the integers, with each engine's accuracy; `timing`
    /// adds per-layer latency against fp32 (off by default: timings differ run to run, and
    /// replayed reports must not).
    CompareEngines {
        a: Engine,
        b: Engine,
        data: String,
        timing: bool,
    },
    /// `compare reference LAYERS.npz DATA [qparams=Q.json] [sample=N]` — the converted model's
    /// per-module outputs and qparams on one sample against a reference int8 model's dump
    /// (PyTorch's), with the first module where they part.
    CompareReference {
        layers: String,
        data: String,
        qparams: Option<String>,
        sample: usize,
    },
}

impl Command {
    /// Whether the command can change what analysis sees (model, data, qconfig, observers,
    /// engine, converted model). Listed by exclusion, so a new verb invalidates cached results
    /// until it is known to be read-only.
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Command::ShowModel
                | Command::ShowQParams
                | Command::Eval { .. }
                | Command::Predict { .. }
                | Command::Expect(_)
                | Command::SaveModel { .. }
                | Command::SaveSession { .. }
                | Command::ErrorsWeights { .. }
                | Command::ErrorsLayers { .. }
                | Command::Help { .. }
                | Command::Check
                | Command::Export { .. }
                | Command::PlotHistogram { .. }
                | Command::PlotErrors { .. }
                | Command::Sensitivity { .. }
                | Command::CompareEngines { .. }
                | Command::CompareReference { .. }
                | Command::Diagnose { .. }
        )
    }

    /// Every file path the command names (read or written), for resolving them against a
    /// session file's directory and rewriting them when a session is saved elsewhere.
    pub fn paths_mut(&mut self) -> Vec<&mut String> {
        match self {
            Command::LoadModel { path }
            | Command::SaveModel { path }
            | Command::SaveSession { path } => vec![path],
            Command::LoadData { path, labels, .. } => {
                std::iter::once(path).chain(labels.as_mut()).collect()
            }
            Command::Predict { out, .. }
            | Command::Export { out, .. }
            | Command::PlotHistogram { out, .. }
            | Command::PlotErrors { out, .. } => vec![out],
            Command::Convert { qparams } => qparams.as_mut().into_iter().collect(),
            Command::CompareReference {
                layers, qparams, ..
            } => std::iter::once(layers).chain(qparams.as_mut()).collect(),
            // Listed, not `_`: a new verb must say whether it names files.
            Command::ShowModel
            | Command::ShowQParams
            | Command::Eval { .. }
            | Command::Expect(_)
            | Command::ErrorsWeights { .. }
            | Command::ErrorsLayers { .. }
            | Command::Help { .. }
            | Command::Engine { .. }
            | Command::QConfig { .. }
            | Command::Fuse { .. }
            | Command::Equalize { .. }
            | Command::CorrectBias { .. }
            | Command::Diagnose { .. }
            | Command::Prepare
            | Command::PrepareQat
            | Command::Train(_)
            | Command::Calibrate { .. }
            | Command::Check
            | Command::Quantize { .. }
            | Command::QuantizeDynamic { .. }
            | Command::Sensitivity { .. }
            | Command::Search { .. }
            | Command::CompareEngines { .. } => Vec::new(),
        }
    }
}

/// What `search` must reach on its data: top-1 accuracy (a fraction, labelled data) or the
/// model output's SQNR against the float model (dB).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchTarget {
    Accuracy(f64),
    Sqnr(f64),
}

impl SearchTarget {
    /// Reads `accuracy>=X` or `sqnr>=Y`; an accuracy outside 0..=1 or a non-finite number is
    /// refused (no model can meet it).
    pub fn parse(text: &str) -> Result<SearchTarget, String> {
        let usage = "the target is accuracy>=X (a fraction 0..1) or sqnr>=Y (dB)";
        let (name, value) = text
            .split_once(">=")
            .ok_or_else(|| format!("target '{text}': {usage}"))?;
        let v: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("target '{text}': '{value}' is not a number; {usage}"))?;
        match name.trim() {
            "accuracy" if (0.0..=1.0).contains(&v) => Ok(SearchTarget::Accuracy(v)),
            "accuracy" => Err(format!(
                "target '{text}': accuracy is a fraction of samples, 0..1, so {v} can never be met"
            )),
            "sqnr" => Ok(SearchTarget::Sqnr(v)),
            other => Err(format!(
                "target '{text}': unknown metric '{other}'; {usage}"
            )),
        }
    }

    /// The threshold.
    pub fn value(self) -> f64 {
        match self {
            SearchTarget::Accuracy(v) | SearchTarget::Sqnr(v) => v,
        }
    }

    pub fn is_accuracy(self) -> bool {
        matches!(self, SearchTarget::Accuracy(_))
    }
}

impl fmt::Display for SearchTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchTarget::Accuracy(v) => write!(f, "accuracy>={v}"),
            SearchTarget::Sqnr(v) => write!(f, "sqnr>={v}"),
        }
    }
}

/// What `export` writes: one report kind, with the arguments of the verb that prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum Exported {
    /// `export errors DATA out=F [mode=cumulative|isolated]` — per-layer activation error.
    Errors { data: String, mode: ErrorMode },
    /// `export weights out=F [weight=SPEC]` — per-layer weight quantization error.
    Weights { weight: ObserverSpec },
    /// `export compare A B DATA out=F` — `compare engines A B DATA` (never timed: a report must
    /// replay byte for byte).
    Compare { a: Engine, b: Engine, data: String },
    /// `export sensitivity DATA calib=CALIB out=F [batch=N] [batches=N]`.
    Sensitivity {
        data: String,
        calib: String,
        batching: Batching,
    },
    /// `export qparams out=F [data=DATA]` — `show qparams` per module, with the output clip
    /// rate on DATA when given.
    QParams { data: Option<String> },
    /// `export pytorch out=F.py` — `F.json` (the converted model's qparams under PyTorch's
    /// module paths) and `F.py`, whose `apply(prepared)` sets them before PyTorch's `convert`.
    PyTorch,
    /// `export model out=M.onnx` — the converted model as ONNX in QDQ form.
    Model,
}

impl Exported {
    /// The report's `kind`, which is also the word after `export`.
    pub fn kind(&self) -> &'static str {
        match self {
            Exported::Errors { .. } => "errors",
            Exported::Weights { .. } => "weights",
            Exported::Compare { .. } => "compare",
            Exported::Sensitivity { .. } => "sensitivity",
            Exported::QParams { .. } => "qparams",
            Exported::PyTorch => "pytorch",
            Exported::Model => "model",
        }
    }
}

/// The options of `train`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub data: String,
    pub epochs: usize,
    pub lr: f32,
    pub batch: usize,
    pub seed: u64,
    pub freeze: bool,
}

/// Which model a command runs: the float model or the converted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelChoice {
    #[default]
    Float,
    Quantized,
}

impl ModelChoice {
    /// The option value (`model=float`, `model=quantized`).
    pub fn name(self) -> &'static str {
        match self {
            ModelChoice::Float => "float",
            ModelChoice::Quantized => "quantized",
        }
    }

    pub fn parse(text: &str) -> Option<ModelChoice> {
        [ModelChoice::Float, ModelChoice::Quantized]
            .into_iter()
            .find(|m| m.name() == text)
    }
}

/// Calibration batching: samples per forward pass and an optional cap on the batch count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub batch: usize,
    pub batches: Option<usize>,
}

/// PyTorch's tutorials calibrate with data-loader batches of 32; histogram observers depend on
/// the batching, so it is part of the recorded command.
pub const DEFAULT_CALIBRATION_BATCH: usize = 32;

/// What `calibrate DATA` uses when no option is given: every sample, in batches of 32.
impl Default for Batching {
    fn default() -> Batching {
        Batching {
            batch: DEFAULT_CALIBRATION_BATCH,
            batches: None,
        }
    }
}

/// What a `qconfig` line assigns.
#[derive(Debug, Clone, PartialEq)]
pub enum QConfigChoice {
    /// A backend default (`fbgemm`) or a named QConfig preset (`default_qconfig`).
    Preset(String),
    /// Explicit activation and weight specs.
    Custom(QConfig),
    /// One half given (the other `None`): it replaces that half of the key's current qconfig.
    Half {
        activation: Option<QuantizerSpec>,
        weight: Option<QuantizerSpec>,
    },
    /// Keep the module in float.
    None,
}

impl QConfigChoice {
    /// The QConfig this choice stands for (`None` for float), checked: an observer option out
    /// of range (`bins=0`, `p=101`, `quant_min > quant_max`) fails on its own line. A half
    /// replaces its part of `current`, the qconfig the key has now (`None`: kept in float).
    pub fn resolve(&self, current: Option<&QConfig>) -> Result<Option<QConfig>, QConfigError> {
        match self {
            QConfigChoice::Half { activation, weight } => {
                let Some(base) = current else {
                    return Err(QConfigError::Invalid {
                        field: if activation.is_some() { "weight" } else { "activation" },
                        why: "the target is kept in float, so both activation= and weight= are needed"
                            .into(),
                    });
                };
                let q = QConfig {
                    activation: activation
                        .clone()
                        .unwrap_or_else(|| base.activation.clone()),
                    weight: weight.clone().unwrap_or_else(|| base.weight.clone()),
                };
                q.validate().map(|()| Some(q))
            }
            QConfigChoice::Preset(name) => match get_default_qconfig(name) {
                Ok(q) => Ok(Some(q)),
                Err(QConfigError::UnknownBackend { .. }) => name.parse().map(Some),
                Err(e) => Err(e),
            },
            QConfigChoice::Custom(q) => q.validate().map(|()| Some(q.clone())),
            QConfigChoice::None => Ok(None),
        }
    }
}

/// Parses one line; `Ok(None)` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Command>, SessionError> {
    let tokens = tokenize(line)?;
    let Some(((verb, _), rest)) = tokens.split_first() else {
        return Ok(None);
    };
    let verb = verb.to_ascii_lowercase();
    let spec = verb::find(&verb).ok_or_else(|| {
        SessionError::parse(format!(
            "unknown verb '{verb}' ({})",
            super::suggest::listing(&verb, &verb::names(), "verbs")
        ))
    })?;
    let mut args = Args::new(spec, rest);
    let cmd = (spec.parse)(&mut args)?;
    args.done()?;
    Ok(Some(cmd))
}

/// The canonical text, which session files record; its verb's entry writes it.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&verb::print(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_options_out_of_range_are_refused() {
        for (line, key) in [
            ("train test epochs=1e99", "epochs"),
            ("train test batch=1e12", "batch"),
            ("train test lr=5000", "lr"),
            ("train test seed=1e300", "seed"),
        ] {
            let err = parse_line(line).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("limit"), "{line}: {err}");
        }
        assert!(parse_line("train test epochs=3 batch=64 lr=0.1 seed=9").is_ok());
        // A quoted value holding `=` is a positional value, and prints quoted again.
        let cmd = parse_line("load data \"a=b\" \"x=1.npy\" labels=\"y=2.npy\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            cmd,
            Command::LoadData {
                name: "a=b".into(),
                path: "x=1.npy".into(),
                labels: Some("y=2.npy".into()),
            }
        );
        assert_eq!(parse_line(&cmd.to_string()).unwrap().unwrap(), cmd);
        // New canonical forms round-trip too.
        for line in [
            "compare reference ref.npz test qparams=q.json sample=1",
            "convert qparams=q.json",
            "fuse auto add_relu=off",
        ] {
            let cmd = parse_line(line).unwrap().unwrap();
            assert_eq!(cmd.to_string(), line);
        }
    }

    #[test]
    fn canonical_text_round_trips() {
        for line in [
            "load model sample-models/digits_cnn.onnx",
            "load data test x.npy labels=y.npy",
            "load data \"my set\" \"a b.npy\"",
            "show model",
            "show qparams",
            "eval test",
            "predict test out=out.npy",
            "predict test out=q.npy model=quantized",
            "expect accuracy(test) >= 0.98",
            "expect correct(test) == 395",
            "save model m.qlab",
            "save session s.qls",
            "help",
            "help eval",
            "errors weights",
            "errors test",
            "errors test mode=isolated",
            "compare engines fbgemm qnnpack test",
            "compare engines fbgemm qnnpack test timing=on",
            "sensitivity test calib=calib",
            "plot histogram conv1 out=h.svg",
            "plot errors test out=e.svg mode=isolated",
            "sensitivity test calib=calib batches=2",
            "search test calib=calib target=accuracy>=0.99496",
            "search test calib=calib target=sqnr>=35 max_float=3 batch=4",
            "export errors test out=r.html",
            "export errors test out=r.json mode=isolated",
            "export weights out=w.csv",
            "export weights out=w.md weight=\"minmax(dtype=qint8, qscheme=per_tensor_symmetric)\"",
            "export compare fbgemm qnnpack test out=c.html",
            "export sensitivity test calib=calib out=s.json",
            "export sensitivity test calib=calib out=s.md batch=16 batches=2",
            "export pytorch out=apply_qlab.py",
            "errors weights weight=\"minmax(dtype=qint8, qscheme=per_tensor_symmetric)\"",
            "engine qnnpack",
            "engine fbgemm profile=avx2",
            "qconfig * preset=fbgemm",
            "qconfig fc none",
            "qconfig type=Linear preset=default_qconfig",
            "qconfig features.* preset=qnnpack",
            "qconfig conv1 activation=histogram(reduce_range=true) weight=per_channel_minmax",
            "qconfig conv1 activation=\"histogram(reduce_range=true, bins=512)\" weight=per_channel_minmax",
            "qconfig conv1 activation=entropy",
            "qconfig * weight=per_channel_minmax",
            "fuse auto",
            "fuse conv1,bn1,relu1 conv2,relu2",
            "prepare",
            "prepare qat",
            "train train epochs=2 lr=0.01 batch=32 seed=7",
            "train train epochs=1 lr=0.005 batch=16 seed=3 freeze=true",
            "calibrate calib",
            "calibrate calib batch=16 batches=4",
            "check",
            "convert",
            "quantize calib batches=2",
            "quantize dynamic",
            "quantize dynamic dtype=float16",
            "expect quantized_accuracy(test) >= 0.9",
            "expect agreement(test) >= 0.99",
            "expect sqnr(test,conv1) >= 30",
            "expect output_sqnr(test) >= 32",
            "expect saturated(test) <= 100",
            "expect saturated(test,features.0) == 0",
            "plot histogram conv1 out=h.png",
        ] {
            let cmd = parse_line(line).unwrap().unwrap();
            assert_eq!(cmd.to_string(), line);
            assert_eq!(parse_line(&cmd.to_string()).unwrap().unwrap(), cmd);
        }
    }

    /// One command of every variant, built as values (as the TUI builds them) with values that
    /// need quoting or differ from the defaults: each prints through its verb's entry to a line
    /// that parses back to the same command.
    #[test]
    fn every_command_prints_and_parses_back() {
        let spec = |text: &str| text.parse::<QuantizerSpec>().unwrap();
        let observer = |text: &str| text.parse::<ObserverSpec>().unwrap();
        let batching = Batching {
            batch: 8,
            batches: Some(3),
        };
        let commands = [
            Command::LoadModel {
                path: "my models/a.onnx".into(),
            },
            Command::LoadData {
                name: "x=1".into(),
                path: "d#1.npy".into(),
                labels: Some("".into()),
            },
            Command::ShowModel,
            Command::ShowQParams,
            Command::Eval {
                data: "test".into(),
            },
            Command::Predict {
                data: "test".into(),
                out: "o u t.npy".into(),
                model: ModelChoice::Quantized,
            },
            Command::Expect(Expectation {
                metric: Metric::Saturated {
                    data: "test".into(),
                    layer: Some("features.0".into()),
                },
                op: CmpOp::Lt,
                value: 2.5,
            }),
            Command::SaveModel {
                path: "m.qlab".into(),
            },
            Command::SaveSession {
                path: "s s.qls".into(),
            },
            Command::ErrorsWeights {
                weight: observer("minmax(dtype=qint8, qscheme=per_tensor_symmetric)"),
            },
            Command::ErrorsLayers {
                data: "calib".into(),
                mode: ErrorMode::Isolated,
            },
            Command::Help {
                verb: Some("qconfig".into()),
            },
            Command::Engine {
                engine: Engine::X86,
                profile: HostProfile::Exact,
            },
            Command::QConfig {
                key: QConfigKey::Type("Linear".into()),
                choice: QConfigChoice::Custom(QConfig {
                    activation: spec("histogram(reduce_range=true, bins=512)"),
                    weight: spec("per_channel_minmax"),
                }),
            },
            Command::Fuse {
                groups: Some(vec![
                    vec!["conv 1".into(), "bn1".into()],
                    vec!["fc".into(), "relu".into()],
                ]),
                add_relu: true,
            },
            Command::Equalize {
                groups: Some(vec![vec!["conv1".into(), "conv2".into(), "fc".into()]]),
                threshold: 0.5,
            },
            Command::CorrectBias {
                data: "calib".into(),
                batching: Batching {
                    batch: 16,
                    batches: Some(2),
                },
            },
            Command::Diagnose {
                data: "test".into(),
                top: 5,
            },
            Command::Prepare,
            Command::PrepareQat,
            Command::Train(TrainOptions {
                data: "train".into(),
                epochs: 3,
                lr: 0.005,
                batch: 16,
                seed: 11,
                freeze: true,
            }),
            Command::Calibrate {
                data: "calib".into(),
                batching,
            },
            Command::Check,
            Command::Convert {
                qparams: Some("q.json".into()),
            },
            Command::Quantize {
                data: "calib".into(),
                batching: Batching::default(),
            },
            Command::QuantizeDynamic { float16: true },
            Command::Export {
                what: Exported::Errors {
                    data: "test".into(),
                    mode: ErrorMode::Isolated,
                },
                out: "r.md".into(),
            },
            Command::Export {
                what: Exported::Weights {
                    weight: observer("minmax(dtype=qint8, qscheme=per_tensor_symmetric)"),
                },
                out: "w w.csv".into(),
            },
            Command::Export {
                what: Exported::Compare {
                    a: Engine::Qnnpack,
                    b: Engine::Fbgemm,
                    data: "my test".into(),
                },
                out: "c.html".into(),
            },
            Command::Export {
                what: Exported::Sensitivity {
                    data: "test".into(),
                    calib: "calib".into(),
                    batching,
                },
                out: "s.json".into(),
            },
            Command::Export {
                what: Exported::QParams {
                    data: Some("my test".into()),
                },
                out: "q p.json".into(),
            },
            Command::Export {
                what: Exported::PyTorch,
                out: "to torch/apply_qlab.py".into(),
            },
            Command::Export {
                what: Exported::Model,
                out: "m.int8.onnx".into(),
            },
            Command::PlotHistogram {
                layer: "features.*".into(),
                out: "h.png".into(),
                log: true,
            },
            Command::PlotErrors {
                data: "test".into(),
                out: "e.svg".into(),
                mode: ErrorMode::Cumulative,
            },
            Command::Sensitivity {
                data: "test".into(),
                calib: "calib".into(),
                batching,
            },
            Command::Search {
                data: "my test".into(),
                calib: "calib".into(),
                target: SearchTarget::Sqnr(35.5),
                max_float: Some(0),
                batching,
            },
            Command::CompareEngines {
                a: Engine::Qnnpack,
                b: Engine::X86,
                data: "test".into(),
                timing: true,
            },
            Command::CompareReference {
                layers: "ref.npz".into(),
                data: "test".into(),
                qparams: None,
                sample: 4,
            },
        ];
        let mut variants = std::collections::BTreeSet::new();
        for cmd in &commands {
            // Exhaustive: a new variant does not compile here until the list holds one.
            variants.insert(match cmd {
                Command::LoadModel { .. } => "LoadModel",
                Command::LoadData { .. } => "LoadData",
                Command::ShowModel => "ShowModel",
                Command::ShowQParams => "ShowQParams",
                Command::Eval { .. } => "Eval",
                Command::Predict { .. } => "Predict",
                Command::Expect(_) => "Expect",
                Command::SaveModel { .. } => "SaveModel",
                Command::SaveSession { .. } => "SaveSession",
                Command::ErrorsWeights { .. } => "ErrorsWeights",
                Command::ErrorsLayers { .. } => "ErrorsLayers",
                Command::Help { .. } => "Help",
                Command::Engine { .. } => "Engine",
                Command::QConfig { .. } => "QConfig",
                Command::Fuse { .. } => "Fuse",
                Command::Equalize { .. } => "Equalize",
                Command::CorrectBias { .. } => "CorrectBias",
                Command::Diagnose { .. } => "Diagnose",
                Command::Prepare => "Prepare",
                Command::PrepareQat => "PrepareQat",
                Command::Train(_) => "Train",
                Command::Calibrate { .. } => "Calibrate",
                Command::Check => "Check",
                Command::Convert { .. } => "Convert",
                Command::Quantize { .. } => "Quantize",
                Command::QuantizeDynamic { .. } => "QuantizeDynamic",
                Command::Export { what, .. } => match what {
                    Exported::Errors { .. } => "ExportErrors",
                    Exported::Weights { .. } => "ExportWeights",
                    Exported::Compare { .. } => "ExportCompare",
                    Exported::Sensitivity { .. } => "ExportSensitivity",
                    Exported::QParams { .. } => "ExportQParams",
                    Exported::PyTorch => "ExportPyTorch",
                    Exported::Model => "ExportModel",
                },
                Command::PlotHistogram { .. } => "PlotHistogram",
                Command::PlotErrors { .. } => "PlotErrors",
                Command::Sensitivity { .. } => "Sensitivity",
                Command::Search { .. } => "Search",
                Command::CompareEngines { .. } => "CompareEngines",
                Command::CompareReference { .. } => "CompareReference",
            });
            let text = cmd.to_string();
            assert_eq!(parse_line(&text).unwrap().as_ref(), Some(cmd), "{text}");
        }
        assert_eq!(variants.len(), commands.len());
    }

    /// Lines the session fuzzer (`fuzz/fuzz_targets/session_parse.rs`) found that printed back
    /// to another command; each must now print to a line that parses to the same command, or
    /// be refused.
    #[test]
    fn fuzzer_findings_print_back_to_the_same_command() {
        for line in ["fuse\ra\r\"s b\rc\"\rh", "help \"\"", "fuse \"a b,c\" d"] {
            let cmd = parse_line(line).unwrap().unwrap();
            assert_eq!(
                parse_line(&cmd.to_string()).unwrap().unwrap(),
                cmd,
                "{line:?}"
            );
        }
        for refused in [
            "expect \"accuracy(a b)\" > 1",
            "expect \"accuracy(a#b)\" > 1",
        ] {
            let err = parse_line(refused).unwrap_err().to_string();
            assert!(err.contains("names in a metric cannot hold"), "{err}");
        }
    }

    #[test]
    fn comments_blank_lines_and_errors() {
        assert_eq!(parse_line("   # just a comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(
            parse_line("eval test # trailing").unwrap(),
            Some(Command::Eval {
                data: "test".into()
            })
        );
        let e = parse_line("frobnicate").unwrap_err().to_string();
        assert!(
            e.contains("unknown verb 'frobnicate'") && e.contains("eval"),
            "{e}"
        );
        assert!(!e.contains("did you mean"), "{e}");
        let e = parse_line("shwo model").unwrap_err().to_string();
        assert!(
            e.contains("unknown verb 'shwo' (did you mean 'show'? verbs: load, show,"),
            "{e}"
        );
        let e = parse_line("eval").unwrap_err().to_string();
        assert!(e.contains("usage: eval DATA"), "{e}");
        let e = parse_line("predict test").unwrap_err().to_string();
        assert!(e.contains("out=FILE.npy"), "{e}");
        assert_eq!(
            parse_line("predict test out=o.npy model=float")
                .unwrap()
                .unwrap()
                .to_string(),
            "predict test out=o.npy"
        );
        let e = parse_line("predict test out=o.npy model=int8")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'int8'") && e.contains("quantized"), "{e}");
        let e = parse_line("eval test colour=red").unwrap_err().to_string();
        assert!(e.contains("unknown option 'colour'"), "{e}");
        let e = parse_line("expect accuracy(test) ~ 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'~'"), "{e}");
        assert_eq!(
            parse_line("expect saturated(test, conv1) == 0")
                .unwrap()
                .unwrap()
                .to_string(),
            "expect saturated(test,conv1) == 0"
        );
        let e = parse_line("plot errors test out=e.jpg")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'jpg'") && e.contains("svg") && e.contains("png"),
            "{e}"
        );
        let e = parse_line("load model \"unterminated")
            .unwrap_err()
            .to_string();
        assert!(e.contains("quote"), "{e}");
    }
}
