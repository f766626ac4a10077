//! `--against FILE.json` for `qlab bench` and `qlab bench model`: peer figures (PyTorch's, as
//! `tools/torch_bench.py` writes them) that a user measured on this host, and the host check that
//! decides whether a ratio against them may be printed at all.
//!
//! A ratio is only honest when both sides ran on the same machine: the file names the CPU it was
//! measured on (`/proc/cpuinfo`'s "model name", read the same way here) and the thread count, and
//! ratios are computed only when the CPU matches this host's and the peer ran on one thread, as
//! qlab's latencies do. Otherwise the file's figures are still reported (JSON), with a warning
//! line and no ratio. A file that cannot be trusted to mean what it says — malformed JSON, another
//! schema version, a figure that is not a positive finite number, a shape `qlab bench` does not
//! measure, an engine it does not know — is an [`AgainstError`] naming the field.
//!
//! Schema version 1:
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "host": { "cpu": "AMD EPYC 9R14", "threads": 1 },
//!   "torch_version": "2.5.1+cpu",
//!   "linear_gops": { "1024x1024x1024": { "fbgemm": 478.0, "fbgemm_dynamic": 310.0, "fp32": 136.0 } },
//!   "conv_gops": { "64x56x56->64 3x3": { "fbgemm": 248.0, "fp32": 120.0 } },
//!   "models_ms": { "mobilenet_v2": { "fp32": 40.0, "fbgemm": 9.3, "qnnpack": 35.8,
//!                                     "calibration_per_image": 128.0 } }
//! }
//! ```
//!
//! Units are in the section names: GOPS (GFLOPS for `fp32`, the same 2·M·N·K count) for linear
//! and conv shapes, milliseconds for models (batch-1 latency; calibration per image). Every
//! section and every entry is optional.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The peer-file schema version this qlab reads.
pub const SCHEMA_VERSION: u64 = 1;

/// What [`host_cpu`] returns where the CPU model cannot be read.
pub const UNKNOWN_CPU: &str = "unknown";

/// Engines a `linear_gops` entry may name: PyTorch's static and dynamic quantized Linear (fbgemm
/// engine) and its float Linear.
pub const LINEAR_ENGINES: [&str; 3] = ["fbgemm", "fbgemm_dynamic", "fp32"];
/// Engines a `conv_gops` entry may name.
pub const CONV_ENGINES: [&str; 2] = ["fbgemm", "fp32"];
/// Engines a `models_ms` entry may name (`calibration_per_image`: ms per calibration image).
pub const MODEL_ENGINES: [&str; 4] = ["fp32", "fbgemm", "qnnpack", "calibration_per_image"];

/// Why a peer file was refused; every variant names the file and the offending field.
#[derive(Debug, thiserror::Error)]
pub enum AgainstError {
    #[error("--against {file}: cannot read it: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("--against {file}: not valid JSON: {message}")]
    Json { file: PathBuf, message: String },
    /// A field missing, of the wrong type, or not in the schema (serde's message names it).
    #[error("--against {file}: {message}")]
    Field { file: PathBuf, message: String },
    #[error(
        "--against {file}: field `schema_version` is {found}, this qlab reads version {SCHEMA_VERSION}"
    )]
    SchemaVersion { file: PathBuf, found: String },
    #[error(
        "--against {file}: field `{field}` is {value}, a figure must be a positive finite number"
    )]
    BadFigure {
        file: PathBuf,
        field: String,
        value: f64,
    },
    #[error("--against {file}: field `{field}`: `{key}` is not {what}; known: {known}")]
    Unknown {
        file: PathBuf,
        field: String,
        key: String,
        what: &'static str,
        known: String,
    },
    #[error("--against {file}: field `host.threads` is 0, at least one thread ran")]
    NoThreads { file: PathBuf },
}

/// The peer file's host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerHost {
    /// CPU model string, as `/proc/cpuinfo`'s "model name" gives it.
    pub cpu: String,
    /// Threads PyTorch ran on (`torch.get_num_threads()`).
    pub threads: usize,
}

/// Figures keyed by shape (or model) name, then engine.
pub type Figures = BTreeMap<String, BTreeMap<String, f64>>;

/// A peer file, as read (schema version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    pub schema_version: u64,
    pub host: PeerHost,
    pub torch_version: String,
    #[serde(default)]
    pub linear_gops: Figures,
    #[serde(default)]
    pub conv_gops: Figures,
    #[serde(default)]
    pub models_ms: Figures,
}

/// A validated peer file and whether its figures may be compared with this run's.
#[derive(Debug, Clone)]
pub struct Against {
    pub file: PathBuf,
    pub peer: PeerFile,
    /// This host's CPU model, read now.
    pub host_cpu: String,
    /// Why no ratio is printed, when none is (another CPU, more than one thread).
    pub warning: Option<String>,
}

/// The `against` block of a report's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct AgainstInfo {
    pub file: PathBuf,
    pub peer_cpu: String,
    pub peer_threads: usize,
    pub torch_version: String,
    /// False when ratios were withheld; `warning` says why.
    pub comparable: bool,
    pub warning: Option<String>,
}

impl AgainstInfo {
    /// The line a report prints about the file: where its figures come from, or the warning
    /// that withholds its ratios.
    pub fn line(&self) -> String {
        match &self.warning {
            Some(w) => format!("warning: --against {}: {w}\n", self.file.display()),
            None => format!(
                "against {}: torch {} measured on this CPU, {} thread; \"torch ENGINE FIGURE (Nx)\": qlab is N times faster\n",
                self.file.display(),
                self.torch_version,
                self.peer_threads
            ),
        }
    }
}

/// One peer figure beside one of ours.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerRatio {
    /// The peer's engine (`fbgemm`, `fbgemm_dynamic`, `fp32`, `qnnpack`, ...).
    pub engine: String,
    /// The peer's figure, in the unit of its section (GOPS or ms).
    pub figure: f64,
    /// How many times faster qlab is (above 1: qlab faster), or `None` when not comparable.
    pub ratio: Option<f64>,
}

/// This host's CPU model: `/proc/cpuinfo`'s first "model name" on Linux, else [`UNKNOWN_CPU`]
/// (other OSes, and Linux hosts whose cpuinfo has no model name, as many aarch64 ones).
pub fn host_cpu() -> String {
    #[cfg(target_os = "linux")]
    if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") {
        return cpu_model_from_cpuinfo(&text);
    }
    UNKNOWN_CPU.into()
}

/// The first "model name" of a cpuinfo text, whitespace collapsed, or [`UNKNOWN_CPU`].
pub fn cpu_model_from_cpuinfo(text: &str) -> String {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "model name")
        .map(|(_, v)| normalize(v))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| UNKNOWN_CPU.into())
}

/// Runs of whitespace as one space, trimmed: cpuinfo pads some model names.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The shapes `qlab bench` measures, by name: a peer figure for any other shape is refused.
pub struct Known<'a> {
    pub linear: &'a [String],
    pub conv: &'a [String],
}

impl Against {
    /// Reads and validates `file`, checking it against this host's CPU.
    pub fn load(file: &Path, known: &Known) -> Result<Self, AgainstError> {
        let text = std::fs::read_to_string(file).map_err(|source| AgainstError::Io {
            file: file.into(),
            source,
        })?;
        Self::parse(&text, file, &host_cpu(), known)
    }

    /// Validates the text of a peer file named `file`, for a host whose CPU model is `host_cpu`.
    pub fn parse(
        text: &str,
        file: &Path,
        host_cpu: &str,
        known: &Known,
    ) -> Result<Self, AgainstError> {
        let json = |message: String| AgainstError::Json {
            file: file.into(),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            // Python's json.dump writes NaN and Infinity unless told not to; JSON has neither.
            let hint = if ["NaN", "Infinity"].iter().any(|t| text.contains(t)) {
                " (JSON has no NaN or Infinity: a figure must be a positive finite number)"
            } else {
                ""
            };
            json(format!("{e}{hint}"))
        })?;
        // The version first: a file of another version is refused as such, not by a field
        // that version happens to add or drop.
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(AgainstError::SchemaVersion {
                    file: file.into(),
                    found: v.to_string(),
                });
            }
            None => {
                return Err(AgainstError::SchemaVersion {
                    file: file.into(),
                    found: "missing".into(),
                });
            }
        }
        let peer: PeerFile = serde_json::from_value(value).map_err(|e| AgainstError::Field {
            file: file.into(),
            message: e.to_string(),
        })?;
        if peer.host.threads == 0 {
            return Err(AgainstError::NoThreads { file: file.into() });
        }
        let (linear, conv) = (known.linear, known.conv);
        check_section(
            file,
            "linear_gops",
            &peer.linear_gops,
            Some(linear),
            &LINEAR_ENGINES,
        )?;
        check_section(
            file,
            "conv_gops",
            &peer.conv_gops,
            Some(conv),
            &CONV_ENGINES,
        )?;
        check_section(file, "models_ms", &peer.models_ms, None, &MODEL_ENGINES)?;
        let warning = comparability_warning(&peer.host, host_cpu);
        Ok(Against {
            file: file.into(),
            peer,
            host_cpu: host_cpu.into(),
            warning,
        })
    }

    /// Whether ratios against the file may be printed.
    pub fn comparable(&self) -> bool {
        self.warning.is_none()
    }

    /// The JSON block describing the file.
    pub fn info(&self) -> AgainstInfo {
        AgainstInfo {
            file: self.file.clone(),
            peer_cpu: self.peer.host.cpu.clone(),
            peer_threads: self.peer.host.threads,
            torch_version: self.peer.torch_version.clone(),
            comparable: self.comparable(),
            warning: self.warning.clone(),
        }
    }

    /// Ratios of our throughput `ours` (GOPS) against every engine of `engines` the
    /// file has for `shape` in `section`.
    pub fn throughput(
        &self,
        section: &Figures,
        shape: &str,
        engines: &[&str],
        ours: f64,
    ) -> Vec<PeerRatio> {
        self.pairs(section, shape, engines, |peer| ours / peer)
    }

    /// Speedups of our latency `ours_ms` against every engine of `engines` the file has for
    /// `model` (exactly, else the longest model name `model` begins with: `mobilenet_v2_224`
    /// takes `mobilenet_v2`'s figures).
    pub fn latency(&self, model: &str, engines: &[&str], ours_ms: f64) -> Vec<PeerRatio> {
        match self.model_key(model) {
            Some(key) => self.pairs(&self.peer.models_ms, key, engines, |peer| peer / ours_ms),
            None => Vec::new(),
        }
    }

    /// The `models_ms` key figures for `model` are read under.
    pub fn model_key(&self, model: &str) -> Option<&str> {
        let models = &self.peer.models_ms;
        if models.contains_key(model) {
            return models.get_key_value(model).map(|(k, _)| k.as_str());
        }
        models
            .keys()
            .filter(|k| model.starts_with(k.as_str()))
            .max_by_key(|k| k.len())
            .map(String::as_str)
    }

    fn pairs(
        &self,
        section: &Figures,
        key: &str,
        engines: &[&str],
        ratio: impl Fn(f64) -> f64,
    ) -> Vec<PeerRatio> {
        let Some(by_engine) = section.get(key) else {
            return Vec::new();
        };
        engines
            .iter()
            .filter_map(|&e| by_engine.get(e).map(|&figure| (e, figure)))
            .map(|(engine, figure)| PeerRatio {
                engine: engine.into(),
                figure,
                ratio: self.comparable().then(|| ratio(figure)),
            })
            .collect()
    }
}

/// Checks one section of a peer file: its shape names are among `known_shapes` (any name, for
/// models: they are the user's), its engines among `engines`, its figures positive and finite.
fn check_section(
    file: &Path,
    section: &str,
    figures: &Figures,
    known_shapes: Option<&[String]>,
    engines: &[&str],
) -> Result<(), AgainstError> {
    for (name, by_engine) in figures {
        if let Some(known) = known_shapes
            && !known.contains(name)
        {
            return Err(AgainstError::Unknown {
                file: file.into(),
                field: section.into(),
                key: name.clone(),
                what: "a shape qlab bench measures",
                known: known.join(", "),
            });
        }
        for (engine, &value) in by_engine {
            if !engines.contains(&engine.as_str()) {
                return Err(AgainstError::Unknown {
                    file: file.into(),
                    field: format!("{section}.{name}"),
                    key: engine.clone(),
                    what: "an engine of this section",
                    known: engines.join(", "),
                });
            }
            if !(value.is_finite() && value > 0.0) {
                return Err(AgainstError::BadFigure {
                    file: file.into(),
                    field: format!("{section}.{name}.{engine}"),
                    value,
                });
            }
        }
    }
    Ok(())
}

/// Why ratios against a file measured on `peer` must not be printed on a host whose CPU model is
/// `host_cpu`, if they must not.
fn comparability_warning(peer: &PeerHost, host_cpu: &str) -> Option<String> {
    let (theirs, ours) = (normalize(&peer.cpu), normalize(host_cpu));
    if ours == UNKNOWN_CPU || theirs == UNKNOWN_CPU {
        return Some(format!(
            "cannot tell whether the peer figures were measured on this CPU (file: '{theirs}', this host: '{ours}'); no ratios against them"
        ));
    }
    if theirs != ours {
        return Some(format!(
            "the peer figures were measured on another CPU ('{theirs}'; this host: '{ours}'): not comparable, no ratios against them"
        ));
    }
    if peer.threads != 1 {
        return Some(format!(
            "the peer figures were measured on {} threads, qlab's on one: not comparable, no ratios against them",
            peer.threads
        ));
    }
    None
}

/// Renders peer ratios as a row's trailing text: `  torch fbgemm 478.0 (0.95x), fp32 136.0 (1.10x)`;
/// empty without any, and figures without ratios when not comparable are left out (the warning
/// line says why).
pub fn trailing(peers: &[PeerRatio]) -> String {
    let parts: Vec<String> = peers
        .iter()
        .filter_map(|p| {
            p.ratio
                .map(|r| format!("{} {} ({r:.2}x)", p.engine, fmt_figure(p.figure)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("  torch {}", parts.join(", "))
    }
}

/// A figure with as many decimals as its size needs.
fn fmt_figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
