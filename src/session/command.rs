//! Parsing one line of the session language into a `Command`, and printing it back in canonical
//! form (`Display`), which is what session files record.
//!
//! Grammar: `VERB [OBJECT] ARG... [key=value]...`; `#` starts a comment; tokens with spaces are
//! written in double quotes.

use super::SessionError;
use crate::analysis::ErrorMode;
use crate::engine::{Engine, HostProfile};
use crate::observer::ObserverSpec;
use crate::qconfig::presets::get_default_qconfig;
use crate::qconfig::{QConfig, QConfigError, QuantizerSpec};
use crate::report::PlotFormat;
use crate::workflow::QConfigKey;
// `errors weights` defaults to fbgemm's weight observer (per-channel symmetric qint8 min/max).
use crate::qconfig::presets::default_per_channel_weight_observer;
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
    const ALL: [(CmpOp, &'static str); 5] = [
        (CmpOp::Ge, ">="),
        (CmpOp::Gt, ">"),
        (CmpOp::Le, "<="),
        (CmpOp::Lt, "<"),
        (CmpOp::Eq, "=="),
    ];

    fn parse(s: &str) -> Option<CmpOp> {
        CmpOp::ALL.iter().find(|(_, t)| *t == s).map(|(op, _)| *op)
    }

    fn symbol(self) -> &'static str {
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
    /// Pair sums the engine saturated to int16 on `data` (cumulative run): in one layer, or in
    /// all of them when `layer` is `None`.
    Saturated { data: String, layer: Option<String> },
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
    /// `export errors DATA out=FILE.{json,csv,md,html} [mode=cumulative|isolated]`.
    Export {
        data: String,
        out: String,
        mode: ErrorMode,
    },
    /// `plot histogram LAYER out=FILE.svg|png` — the layer's observer histogram with the
    /// quantization range and grid.
    PlotHistogram { layer: String, out: String },
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
        )
    }
}

/// Upper bounds of `train`'s options.
const MAX_EPOCHS: f64 = 100_000.0;
const MAX_BATCH: f64 = 1_048_576.0;
/// Seeds are integers exactly representable in the f64 they are parsed as.
const MAX_SEED: f64 = 9_007_199_254_740_992.0;
const MAX_LR: f64 = 1_000.0;

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

impl fmt::Display for TrainOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "train {} epochs={} lr={} batch={} seed={}",
            quote(&self.data),
            self.epochs,
            self.lr,
            self.batch,
            self.seed
        )?;
        if self.freeze {
            write!(f, " freeze=true")?;
        }
        Ok(())
    }
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

impl fmt::Display for Batching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.batch != DEFAULT_CALIBRATION_BATCH {
            write!(f, " batch={}", self.batch)?;
        }
        self.batches.map_or(Ok(()), |n| write!(f, " batches={n}"))
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

/// The verbs and their one-line help, in the order `help` lists them.
pub const VERBS: &[(&str, &str, &str)] = &[
    (
        "load",
        "load model PATH | load data NAME PATH [labels=PATH]",
        "load an ONNX or .qlab model, or a .npy dataset",
    ),
    (
        "show",
        "show model | show qparams",
        "list the model's layers, or the observers' statistics and qparams (after prepare / convert)",
    ),
    (
        "eval",
        "eval DATA",
        "top-1 accuracy of the float model on a labelled dataset",
    ),
    (
        "predict",
        "predict DATA out=FILE.npy | predict DATA out=FILE.npy model=float|quantized",
        "run the float model (or the converted one: model=quantized) on a dataset and write its outputs (dequantized) as .npy",
    ),
    (
        "expect",
        "expect accuracy(DATA) >= 0.98 | correct(DATA) | quantized_accuracy(DATA) | quantized_correct(DATA) | agreement(DATA) | sqnr(DATA,LAYER) | saturated(DATA[,LAYER])",
        "fail the replay unless the comparison holds",
    ),
    (
        "errors",
        "errors weights [weight=SPEC] | errors DATA [mode=cumulative|isolated]",
        "per-layer error, worst first: of the weights, or of the converted model's activations",
    ),
    (
        "save",
        "save model PATH.qlab | save session FILE.qls",
        "save the model natively, or the session as a script",
    ),
    (
        "engine",
        "engine fbgemm|qnnpack|x86 [profile=vnni|avx2|exact]",
        "the quantized engine (and host profile) convert targets",
    ),
    (
        "qconfig",
        "qconfig *|PATH|GLOB|type=CLASS preset=NAME | [activation=SPEC] [weight=SPEC] | none",
        "assign a qconfig globally, to modules by path or glob, or by type; none keeps float",
    ),
    (
        "fuse",
        "fuse auto [add_relu=off] | fuse conv1,bn1,relu1 conv2,relu2",
        "fuse Conv/Linear+BN+ReLU(6) patterns (BN folded bit-exactly) and add+ReLU as FloatFunctional.add_relu (add_relu=off keeps them apart)",
    ),
    (
        "prepare",
        "prepare | prepare qat",
        "place observers for static quantization, or fake-quants for quantization-aware training",
    ),
    (
        "train",
        "train DATA [epochs=1] [lr=0.01] [batch=32] [seed=7] [freeze=true]",
        "QAT epochs (SGD, cross-entropy); freeze disables observers and BN statistics first",
    ),
    (
        "calibrate",
        "calibrate DATA [batch=32] [batches=N]",
        "run a dataset through the observers",
    ),
    (
        "check",
        "check",
        "the pre-convert check: unobserved or NaN observers, unfused patterns, unsupported qconfigs",
    ),
    (
        "convert",
        "convert [qparams=Q.json]",
        "build the quantized model for the engine from the calibrated observers (qparams=: take the output scale / zero point of every module a reference file names, e.g. PyTorch's converted model)",
    ),
    (
        "quantize",
        "quantize DATA [batch=32] [batches=N] | quantize dynamic [dtype=qint8|float16]",
        "one call: fuse auto, prepare, calibrate on DATA, convert; or dynamic quantization \
         of nn.Linear modules and LSTM (F.linear calls only when a qconfig path names them)",
    ),
    (
        "export",
        "export errors DATA out=FILE.json|csv|md|html [mode=cumulative|isolated]",
        "write the per-layer error report (versioned JSON, CSV, Markdown, or HTML with a chart)",
    ),
    (
        "plot",
        "plot histogram LAYER out=FILE.svg|png | plot errors DATA out=FILE.svg|png [mode=cumulative|isolated]",
        "draw an observer's histogram with its quantization range, or per-layer SQNR, as SVG or PNG",
    ),
    (
        "sensitivity",
        "sensitivity DATA calib=CALIB [batch=32] [batches=N]",
        "rank modules by how much quantizing them alone / leaving them out changes accuracy (or SQNR)",
    ),
    (
        "compare",
        "compare engines fbgemm qnnpack DATA [timing=on] | compare reference LAYERS.npz DATA [qparams=Q.json] [sample=N]",
        "convert the calibrated model for two engines and compare them layer by layer (timing=on adds per-layer latency, batch 1, one thread, median of 20, against fp32); or compare the converted model's per-module int8 outputs and qparams on one sample with a reference dump (PyTorch's: PATH int_repr, PATH:scale, PATH:zero_point) and name the first module that differs",
    ),
    ("help", "help [VERB]", "this list, or one verb's usage"),
];

/// Whether an unquoted token reads as a `key=value` option.
fn looks_like_option(t: &str) -> bool {
    t.split_once('=').is_some_and(|(k, _)| {
        k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn quote(s: &str) -> String {
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('#') || looks_like_option(s) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::LoadModel { path } => write!(f, "load model {}", quote(path)),
            Command::LoadData { name, path, labels } => {
                write!(f, "load data {} {}", quote(name), quote(path))?;
                labels
                    .as_ref()
                    .map_or(Ok(()), |l| write!(f, " labels={}", quote(l)))
            }
            Command::ShowModel => write!(f, "show model"),
            Command::ShowQParams => write!(f, "show qparams"),
            Command::Eval { data } => write!(f, "eval {}", quote(data)),
            Command::Predict { data, out, model } => {
                write!(f, "predict {} out={}", quote(data), quote(out))?;
                // The default is left out, so scripts written before `model=` read the same.
                if *model != ModelChoice::Float {
                    write!(f, " model={}", model.name())?;
                }
                Ok(())
            }
            Command::Expect(e) => write!(f, "expect {e}"),
            Command::SaveModel { path } => write!(f, "save model {}", quote(path)),
            Command::SaveSession { path } => write!(f, "save session {}", quote(path)),
            Command::ErrorsWeights { weight }
                if *weight == default_per_channel_weight_observer() =>
            {
                write!(f, "errors weights")
            }
            Command::ErrorsWeights { weight } => {
                write!(f, "errors weights weight={}", quote(&weight.to_string()))
            }
            Command::Engine { engine, profile } if *profile == HostProfile::default() => {
                write!(f, "engine {engine}")
            }
            Command::Engine { engine, profile } => {
                write!(f, "engine {engine} profile={}", profile.name())
            }
            Command::QConfig { key, choice } => {
                match key {
                    QConfigKey::Global => write!(f, "qconfig *")?,
                    QConfigKey::Type(t) => write!(f, "qconfig type={}", quote(t))?,
                    QConfigKey::Path(p) => write!(f, "qconfig {}", quote(p))?,
                }
                match choice {
                    QConfigChoice::Preset(name) => write!(f, " preset={}", quote(name)),
                    QConfigChoice::Custom(q) => write!(
                        f,
                        " activation={} weight={}",
                        quote(&q.activation.to_string()),
                        quote(&q.weight.to_string())
                    ),
                    QConfigChoice::Half { activation, weight } => {
                        if let Some(a) = activation {
                            write!(f, " activation={}", quote(&a.to_string()))?;
                        }
                        if let Some(w) = weight {
                            write!(f, " weight={}", quote(&w.to_string()))?;
                        }
                        Ok(())
                    }
                    QConfigChoice::None => write!(f, " none"),
                }
            }
            Command::Fuse {
                groups: None,
                add_relu,
            } => {
                write!(f, "fuse auto")?;
                if !add_relu {
                    write!(f, " add_relu=off")?;
                }
                Ok(())
            }
            Command::Fuse {
                groups: Some(g), ..
            } => {
                let groups: Vec<String> = g.iter().map(|m| quote(&m.join(","))).collect();
                write!(f, "fuse {}", groups.join(" "))
            }
            Command::Prepare => write!(f, "prepare"),
            Command::PrepareQat => write!(f, "prepare qat"),
            Command::Train(t) => write!(f, "{t}"),
            Command::Calibrate { data, batching } => {
                write!(f, "calibrate {}{batching}", quote(data))
            }
            Command::Check => write!(f, "check"),
            Command::Convert { qparams: None } => write!(f, "convert"),
            Command::Convert { qparams: Some(q) } => write!(f, "convert qparams={}", quote(q)),
            Command::Quantize { data, batching } => write!(f, "quantize {}{batching}", quote(data)),
            Command::QuantizeDynamic { float16: false } => write!(f, "quantize dynamic"),
            Command::QuantizeDynamic { float16: true } => {
                write!(f, "quantize dynamic dtype=float16")
            }
            Command::ErrorsLayers {
                data,
                mode: ErrorMode::Cumulative,
            } => write!(f, "errors {}", quote(data)),
            Command::ErrorsLayers { data, mode } => {
                write!(f, "errors {} mode={}", quote(data), mode.name())
            }
            Command::Export { data, out, mode } => {
                write!(f, "export errors {} out={}", quote(data), quote(out))?;
                if *mode != ErrorMode::Cumulative {
                    write!(f, " mode={}", mode.name())?;
                }
                Ok(())
            }
            Command::PlotHistogram { layer, out } => {
                write!(f, "plot histogram {} out={}", quote(layer), quote(out))
            }
            Command::PlotErrors { data, out, mode } => {
                write!(f, "plot errors {} out={}", quote(data), quote(out))?;
                if *mode != ErrorMode::Cumulative {
                    write!(f, " mode={}", mode.name())?;
                }
                Ok(())
            }
            Command::Sensitivity {
                data,
                calib,
                batching,
            } => write!(
                f,
                "sensitivity {} calib={}{batching}",
                quote(data),
                quote(calib)
            ),
            Command::CompareEngines { a, b, data, timing } => {
                write!(f, "compare engines {a} {b} {}", quote(data))?;
                if *timing {
                    write!(f, " timing=on")?;
                }
                Ok(())
            }
            Command::CompareReference {
                layers,
                data,
                qparams,
                sample,
            } => {
                write!(f, "compare reference {} {}", quote(layers), quote(data))?;
                if let Some(q) = qparams {
                    write!(f, " qparams={}", quote(q))?;
                }
                if *sample != 0 {
                    write!(f, " sample={sample}")?;
                }
                Ok(())
            }
            Command::Help { verb: None } => write!(f, "help"),
            Command::Help { verb: Some(v) } => write!(f, "help {}", quote(v)),
        }
    }
}

/// Splits a line into tokens, honouring double quotes and stopping at an unquoted `#`. Each
/// token says whether it began with a quote: `"a=b.npy"` is a positional value, never an option.
fn tokenize(line: &str) -> Result<Vec<(String, bool)>, SessionError> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_token = false;
    let mut starts_quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                if !has_token {
                    starts_quoted = true;
                }
                in_quotes = !in_quotes;
                has_token = true;
            }
            '#' if !in_quotes => break,
            c if c.is_whitespace() && !in_quotes => {
                if has_token {
                    tokens.push((std::mem::take(&mut cur), starts_quoted));
                    has_token = false;
                    starts_quoted = false;
                }
            }
            c => {
                cur.push(c);
                has_token = true;
            }
        }
    }
    if in_quotes {
        return Err(SessionError::parse("unterminated double quote"));
    }
    if has_token {
        tokens.push((cur, starts_quoted));
    }
    Ok(tokens)
}

/// Positional arguments and `key=value` options of one command.
struct Args {
    verb: String,
    positional: Vec<String>,
    options: Vec<(String, String)>,
}

impl Args {
    fn usage(&self) -> &'static str {
        VERBS
            .iter()
            .find(|(v, _, _)| *v == self.verb)
            .map_or("", |(_, u, _)| u)
    }

    fn error(&self, what: impl fmt::Display) -> SessionError {
        SessionError::parse(format!("{what} (usage: {})", self.usage()))
    }

    fn exactly<const N: usize>(&self) -> Result<[String; N], SessionError> {
        <[String; N]>::try_from(self.positional.clone()).map_err(|got| {
            self.error(format!(
                "'{}' takes {N} argument(s), got {}",
                self.verb,
                got.len()
            ))
        })
    }

    /// Takes option `key`; unknown options are rejected by [`Args::done`].
    fn option(&mut self, key: &str) -> Option<String> {
        let i = self.options.iter().position(|(k, _)| k == key)?;
        Some(self.options.remove(i).1)
    }

    fn done(&self) -> Result<(), SessionError> {
        match self.options.first() {
            Some((k, _)) => Err(self.error(format!("unknown option '{k}'"))),
            None => Ok(()),
        }
    }
}

fn parse_expect(args: &Args) -> Result<Expectation, SessionError> {
    let n = args.positional.len();
    if n < 3 {
        return Err(args.error(format!(
            "'expect' takes METRIC OP NUMBER, got {n} argument(s)"
        )));
    }
    // Spaces inside a metric's parentheses are insignificant: `saturated(test, conv1)`.
    let metric = args.positional[..n - 2].concat();
    let (op, value) = (&args.positional[n - 2], &args.positional[n - 1]);
    let (name, inner) = metric
        .as_str()
        .strip_suffix(')')
        .and_then(|m| m.split_once('('))
        .ok_or_else(|| args.error(format!("'{metric}' is not METRIC(DATA)")))?;
    // The metric is written back as one unquoted token, so its names must survive that.
    if let Some(c) = inner
        .chars()
        .find(|c| c.is_whitespace() || "()#\"".contains(*c))
    {
        return Err(args.error(format!(
            "'{metric}': names in a metric cannot hold {c:?} (spaces, parentheses, '#')"
        )));
    }
    let data = inner.to_string();
    let metric = match name {
        "accuracy" => Metric::Accuracy { data },
        "correct" => Metric::Correct { data },
        "quantized_accuracy" => Metric::QuantizedAccuracy { data },
        "quantized_correct" => Metric::QuantizedCorrect { data },
        "agreement" => Metric::Agreement { data },
        "sqnr" => {
            let (data, layer) = data
                .split_once(',')
                .ok_or_else(|| args.error("sqnr takes (DATA,LAYER)"))?;
            Metric::Sqnr {
                data: data.into(),
                layer: layer.into(),
            }
        }
        "saturated" => {
            let (data, layer) = match data.split_once(',') {
                Some((d, l)) => (d.into(), Some(l.into())),
                None => (data, None),
            };
            Metric::Saturated { data, layer }
        }
        other => {
            return Err(args.error(format!(
                "unknown metric '{other}' (accuracy, correct, quantized_accuracy, \
                 quantized_correct, agreement, sqnr, saturated)"
            )));
        }
    };
    let op =
        CmpOp::parse(op).ok_or_else(|| args.error(format!("'{op}' is not one of >= > <= < ==")))?;
    let value = value
        .parse()
        .map_err(|_| args.error(format!("'{value}' is not a number")))?;
    Ok(Expectation { metric, op, value })
}

fn parse_count(args: &Args, key: &str, text: &str) -> Result<usize, SessionError> {
    text.parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| args.error(format!("{key}={text} is not a positive integer")))
}

fn parse_mode(args: &mut Args) -> Result<ErrorMode, SessionError> {
    match args.option("mode") {
        Some(m) => ErrorMode::parse(&m)
            .ok_or_else(|| args.error(format!("mode '{m}' (cumulative or isolated)"))),
        None => Ok(ErrorMode::Cumulative),
    }
}

fn parse_batching(args: &mut Args) -> Result<Batching, SessionError> {
    let batch = match args.option("batch") {
        Some(t) => parse_count(args, "batch", &t)?,
        None => DEFAULT_CALIBRATION_BATCH,
    };
    let batches = match args.option("batches") {
        Some(t) => Some(parse_count(args, "batches", &t)?),
        None => None,
    };
    Ok(Batching { batch, batches })
}

fn parse_qconfig(args: &mut Args) -> Result<Command, SessionError> {
    let type_key = args.option("type");
    let preset = args.option("preset");
    let activation = args.option("activation");
    let weight = args.option("weight");
    let mut positional = args.positional.clone();
    let key = match type_key {
        Some(t) => QConfigKey::Type(t),
        None if positional.is_empty() => {
            return Err(
                args.error("qconfig needs a target: *, a module path or glob, or type=CLASS")
            );
        }
        None => match positional.remove(0) {
            star if star == "*" => QConfigKey::Global,
            path => QConfigKey::Path(path),
        },
    };
    let choice = match (preset, activation, weight, positional.as_slice()) {
        (Some(p), None, None, []) => QConfigChoice::Preset(p),
        (None, Some(a), Some(w), []) => QConfigChoice::Custom(
            format!("activation={a} weight={w}")
                .parse::<QConfig>()
                .map_err(|e| args.error(e))?,
        ),
        (None, Some(a), None, []) => QConfigChoice::Half {
            activation: Some(half(args, "activation", &a)?),
            weight: None,
        },
        (None, None, Some(w), []) => QConfigChoice::Half {
            activation: None,
            weight: Some(half(args, "weight", &w)?),
        },
        (None, None, None, [none]) if none == "none" => QConfigChoice::None,
        _ => {
            return Err(args
                .error("qconfig takes preset=NAME, activation=SPEC and/or weight=SPEC, or none"));
        }
    };
    // Presets are resolved now so a typo fails on its own line (a half is checked by `half`).
    if !matches!(choice, QConfigChoice::Half { .. }) {
        choice.resolve(None).map_err(|e| args.error(e))?;
    }
    Ok(Command::QConfig { key, choice })
}

/// One half of a qconfig (`activation=SPEC` or `weight=SPEC`), parsed and checked.
fn half(args: &Args, field: &'static str, text: &str) -> Result<QuantizerSpec, SessionError> {
    let spec: QuantizerSpec = text
        .parse()
        .map_err(|e| args.error(format!("{field}: {e}")))?;
    spec.validate()
        .map_err(|e| args.error(format!("invalid qconfig {field}: {e}")))?;
    Ok(spec)
}

/// Parses one line; `Ok(None)` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Command>, SessionError> {
    let tokens = tokenize(line)?;
    let Some(((verb, _), rest)) = tokens.split_first() else {
        return Ok(None);
    };
    let is_option = |(t, quoted): &&(String, bool)| !*quoted && looks_like_option(t);
    let (options, positional): (Vec<_>, Vec<_>) = rest.iter().partition(is_option);
    let mut args = Args {
        verb: verb.to_ascii_lowercase(),
        positional: positional.into_iter().map(|(t, _)| t.clone()).collect(),
        options: options
            .into_iter()
            .filter_map(|(t, _)| {
                t.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
    };
    let object = args.positional.first().cloned().unwrap_or_default();
    let cmd = match (args.verb.as_str(), object.as_str()) {
        ("load", "model") => {
            let [_, path] = args.exactly::<2>()?;
            Command::LoadModel { path }
        }
        ("load", "data") => {
            let labels = args.option("labels");
            let [_, name, path] = args.exactly::<3>()?;
            Command::LoadData { name, path, labels }
        }
        ("show", "model") => {
            args.exactly::<1>()?;
            Command::ShowModel
        }
        ("show", "qparams") => {
            args.exactly::<1>()?;
            Command::ShowQParams
        }
        ("eval", _) => {
            let [data] = args.exactly::<1>()?;
            Command::Eval { data }
        }
        ("predict", _) => {
            let out = args
                .option("out")
                .ok_or_else(|| args.error("predict needs out=FILE.npy"))?;
            let model = match args.option("model") {
                Some(m) => ModelChoice::parse(&m)
                    .ok_or_else(|| args.error(format!("model '{m}' (float or quantized)")))?,
                None => ModelChoice::Float,
            };
            let [data] = args.exactly::<1>()?;
            Command::Predict { data, out, model }
        }
        ("expect", _) => Command::Expect(parse_expect(&args)?),
        ("save", "model") => {
            let [_, path] = args.exactly::<2>()?;
            Command::SaveModel { path }
        }
        ("save", "session") => {
            let [_, path] = args.exactly::<2>()?;
            Command::SaveSession { path }
        }
        ("errors", "weights") => {
            let weight = match args.option("weight") {
                Some(text) => text.parse::<ObserverSpec>().map_err(|e| args.error(e))?,
                None => default_per_channel_weight_observer(),
            };
            args.exactly::<1>()?;
            Command::ErrorsWeights { weight }
        }
        ("errors", _) if !object.is_empty() => {
            let mode = parse_mode(&mut args)?;
            let [data] = args.exactly::<1>()?;
            Command::ErrorsLayers { data, mode }
        }
        ("export", "errors") => {
            let mode = parse_mode(&mut args)?;
            let out = args
                .option("out")
                .ok_or_else(|| args.error("export needs out=FILE.json|csv|md|html"))?;
            if crate::report::Format::from_path(&out).is_none() {
                return Err(args.error(format!(
                    "'{out}': the extension must be .json, .csv, .md or .html"
                )));
            }
            let [_, data] = args.exactly::<2>()?;
            Command::Export { data, out, mode }
        }
        ("plot", what @ ("histogram" | "errors")) => {
            let mode = parse_mode(&mut args)?;
            let out = args
                .option("out")
                .ok_or_else(|| args.error("plot needs out=FILE.svg or out=FILE.png"))?;
            PlotFormat::from_path(&out).map_err(|e| args.error(e))?;
            let [_, target] = args.exactly::<2>()?;
            if what == "histogram" {
                Command::PlotHistogram { layer: target, out }
            } else {
                Command::PlotErrors {
                    data: target,
                    out,
                    mode,
                }
            }
        }
        ("sensitivity", _) => {
            let batching = parse_batching(&mut args)?;
            let calib = args
                .option("calib")
                .ok_or_else(|| args.error("sensitivity needs calib=DATA"))?;
            let [data] = args.exactly::<1>()?;
            Command::Sensitivity {
                data,
                calib,
                batching,
            }
        }
        ("compare", "engines") => {
            let timing = match args.option("timing").as_deref() {
                None | Some("off") => false,
                Some("on") => true,
                Some(other) => return Err(args.error(format!("timing '{other}' (on or off)"))),
            };
            let [_, a, b, data] = args.exactly::<4>()?;
            let engine = |n: &str| Engine::parse(n).map_err(|e| args.error(e));
            Command::CompareEngines {
                a: engine(&a)?,
                b: engine(&b)?,
                data,
                timing,
            }
        }
        ("compare", "reference") => {
            let qparams = args.option("qparams");
            let sample = match args.option("sample") {
                Some(t) => t
                    .parse()
                    .map_err(|_| args.error(format!("sample '{t}' is not a sample index")))?,
                None => 0,
            };
            let [_, layers, data] = args.exactly::<3>()?;
            Command::CompareReference {
                layers,
                data,
                qparams,
                sample,
            }
        }
        ("help", _) => Command::Help {
            verb: args.positional.first().cloned(),
        },
        ("engine", _) => {
            let profile = match args.option("profile") {
                Some(p) => HostProfile::parse(&p).map_err(|e| args.error(e))?,
                None => HostProfile::default(),
            };
            let [name] = args.exactly::<1>()?;
            let engine = Engine::parse(&name).map_err(|e| args.error(e))?;
            Command::Engine { engine, profile }
        }
        ("qconfig", _) => parse_qconfig(&mut args)?,
        ("fuse", "auto") => {
            let add_relu = match args.option("add_relu").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => return Err(args.error(format!("add_relu '{other}' (on or off)"))),
            };
            args.exactly::<1>()?;
            Command::Fuse {
                groups: None,
                add_relu,
            }
        }
        ("fuse", _) => {
            if args.positional.is_empty() {
                return Err(args.error("fuse needs `auto` or module groups"));
            }
            let groups = args
                .positional
                .iter()
                .map(|g| g.split(',').map(str::to_string).collect())
                .collect();
            Command::Fuse {
                groups: Some(groups),
                add_relu: true,
            }
        }
        ("prepare", "qat") => {
            args.exactly::<1>()?;
            Command::PrepareQat
        }
        ("prepare", _) => {
            args.exactly::<0>()?;
            Command::Prepare
        }
        ("train", _) => {
            let number = |args: &mut Args, key: &str, default: f64| -> Result<f64, SessionError> {
                match args.option(key) {
                    Some(t) => t
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .ok_or_else(|| args.error(format!("{key}={t} is not a positive number"))),
                    None => Ok(default),
                }
            };
            let epochs = number(&mut args, "epochs", 1.0)?;
            let lr = number(&mut args, "lr", 0.01)?;
            let batch = number(&mut args, "batch", 32.0)?;
            let seed = number(&mut args, "seed", 7.0)?;
            let freeze = match args.option("freeze").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(args.error(format!("freeze={other} (true or false)"))),
            };
            if epochs.fract() != 0.0 || batch.fract() != 0.0 || seed.fract() != 0.0 {
                return Err(args.error("epochs, batch and seed are integers"));
            }
            // Bounds a run can meet: beyond them a typo (epochs=1e99) would run forever or
            // wrap when converted.
            for (key, value, max) in [
                ("epochs", epochs, MAX_EPOCHS),
                ("batch", batch, MAX_BATCH),
                ("seed", seed, MAX_SEED),
                ("lr", lr, MAX_LR),
            ] {
                if value > max {
                    return Err(args.error(format!("{key}={value} is above the limit {max}")));
                }
            }
            let [data] = args.exactly::<1>()?;
            Command::Train(TrainOptions {
                data,
                epochs: epochs as usize,
                lr: lr as f32,
                batch: batch as usize,
                seed: seed as u64,
                freeze,
            })
        }
        ("check", _) => {
            args.exactly::<0>()?;
            Command::Check
        }
        ("convert", _) => {
            let qparams = args.option("qparams");
            args.exactly::<0>()?;
            Command::Convert { qparams }
        }
        ("quantize", "dynamic") => {
            let float16 = match args.option("dtype").as_deref() {
                None | Some("qint8") => false,
                Some("float16") => true,
                Some(other) => {
                    return Err(args.error(format!("dtype '{other}' (qint8 or float16)")));
                }
            };
            args.exactly::<1>()?;
            Command::QuantizeDynamic { float16 }
        }
        ("calibrate" | "quantize", _) => {
            let batching = parse_batching(&mut args)?;
            let [data] = args.exactly::<1>()?;
            if args.verb == "calibrate" {
                Command::Calibrate { data, batching }
            } else {
                Command::Quantize { data, batching }
            }
        }
        (v @ ("load" | "show" | "save" | "errors" | "compare" | "export" | "plot"), o) => {
            return Err(args.error(format!("'{v} {o}': unknown object")));
        }
        (v, _) => {
            let verbs: Vec<&str> = VERBS.iter().map(|(v, _, _)| *v).collect();
            return Err(SessionError::parse(format!(
                "unknown verb '{v}' (verbs: {})",
                verbs.join(", ")
            )));
        }
    };
    args.done()?;
    Ok(Some(cmd))
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
            "export errors test out=r.html",
            "export errors test out=r.json mode=isolated",
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
            "expect saturated(test) <= 100",
            "expect saturated(test,features.0) == 0",
            "plot histogram conv1 out=h.png",
        ] {
            let cmd = parse_line(line).unwrap().unwrap();
            assert_eq!(cmd.to_string(), line);
            assert_eq!(parse_line(&cmd.to_string()).unwrap().unwrap(), cmd);
        }
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
