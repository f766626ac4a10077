//! The typed errors of the session layer; each says what was wrong and what is accepted.

use crate::graph::GraphError;
use crate::import::native::NativeError;
use crate::import::npy::NpyError;
use crate::import::{DatasetError, ImportError};
use thiserror::Error;

/// Everything a command can fail with.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The line does not parse; `detail` names the token and what would be accepted.
    #[error("{detail}")]
    Parse { detail: String },
    /// A command that needs a model ran before `load model`.
    #[error("no model is loaded (use: load model PATH)")]
    NoModel,
    /// A dataset name that was never loaded.
    #[error("no dataset named '{name}' ({known})")]
    UnknownData { name: String, known: String },
    /// A layer path that is not a row of the converted model's error table.
    #[error("no quantized layer '{layer}' ({known})")]
    UnknownLayer { layer: String, known: String },
    /// A metric that needs labels on a dataset without them.
    #[error("dataset '{0}' has no labels (load it with labels=PATH)")]
    NoLabels(String),
    /// `eval` on unlabelled data before there is a converted model to compare with.
    #[error(
        "dataset '{0}' has no labels and no model is converted: eval needs labels (load it with labels=PATH) or a converted model to compare with the float one"
    )]
    NothingToEval(String),
    /// An `expect` line that does not hold.
    #[error("expectation failed: {expectation} (actual {actual})")]
    ExpectationFailed { expectation: String, actual: String },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The user cancelled the command (Ctrl-C); nothing changed.
    #[error("cancelled; the workbench is as it was before the command")]
    Cancelled,
    /// `train` before `prepare qat`.
    #[error("nothing is prepared for training (use: prepare qat)")]
    NotPreparedForQat,
    /// A static-quantization command while the workbench holds a QAT model.
    #[error("{command} applies to static quantization, not a QAT model")]
    QatModel { command: &'static str },
    /// The command cannot handle what the session holds (`reason` says what and why).
    #[error("{command}: {reason}")]
    Unsupported {
        command: &'static str,
        reason: String,
    },
    /// `help VERB` for a verb that does not exist.
    #[error("no verb '{verb}' ({known})")]
    UnknownVerb { verb: String, known: String },
    /// An output file whose extension names no format qlab writes.
    #[error("'{path}': unknown report format (accepted: {accepted})")]
    UnknownFormat {
        path: String,
        accepted: &'static str,
    },
    /// `calibrate` / `convert` / `check` before `prepare`.
    #[error("nothing is prepared for static quantization (use: prepare, or quantize DATA)")]
    NotPrepared,
    /// A quantized-model metric before `convert` / `quantize`.
    #[error("no quantized model yet (use: convert, quantize DATA or quantize dynamic)")]
    NotConverted,
    /// A view of a layer that cannot be shown: no quantized per-tensor output, or a sample
    /// past the end of the dataset.
    #[error("{layer}: {detail}")]
    NoView { layer: String, detail: String },
    /// `search` found no configuration meeting its target; the workbench is unchanged.
    #[error("{detail}")]
    SearchUnmet { detail: String },
    /// A bug in qlab: the command panicked. The replay stops here; the workbench may be
    /// inconsistent, so a front end should not go on with it.
    #[error("internal error (a bug in qlab, please report it): {detail}")]
    Internal { detail: String },
    #[error(transparent)]
    QConfig(#[from] crate::qconfig::QConfigError),
    /// QAT failures other than the workflow and graph errors it wraps.
    #[error(transparent)]
    Qat(crate::workflow::QatError),
    #[error(transparent)]
    Workflow(#[from] crate::workflow::WorkflowError),
    #[error(transparent)]
    Fuse(#[from] crate::workflow::FuseError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Native(#[from] NativeError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    #[error(transparent)]
    Plot(#[from] crate::report::PlotError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

impl SessionError {
    pub(crate) fn parse(detail: impl Into<String>) -> Self {
        SessionError::Parse {
            detail: detail.into(),
        }
    }
}
