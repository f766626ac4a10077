//! The typed errors of fusion; each names the module path it concerns and why it was refused.

use thiserror::Error;

/// Why a fusion request was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FuseError {
    /// A listed module path names no node of the graph.
    #[error("module '{module}' is not in the model")]
    UnknownModule { module: String },
    /// The listed modules do not form a pattern PyTorch (or qlab's ReLU6 extension) can fuse.
    #[error("cannot fuse {modules:?}: {reason}")]
    Unsupported {
        modules: Vec<String>,
        reason: String,
    },
    /// A module does not read the output of the module listed before it.
    #[error("module '{module}' does not directly follow '{previous}' (it reads {reads:?})")]
    NotConsecutive {
        module: String,
        previous: String,
        reads: Vec<String>,
    },
    /// An intermediate value of the group is also read elsewhere, so folding would change it.
    #[error(
        "the output of '{module}' is also read by {readers:?}; fusing would change what they see"
    )]
    SharedIntermediate {
        module: String,
        readers: Vec<String>,
    },
    /// The BatchNorm's channel count differs from the output channels it would be folded into.
    #[error(
        "'{bn}' normalises {bn_channels} channels but '{module}' has {channels} at the folding axis"
    )]
    ChannelMismatch {
        module: String,
        bn: String,
        channels: usize,
        bn_channels: usize,
    },
    /// A module appears in two groups (or twice in one).
    #[error("module '{module}' is listed in more than one fusion")]
    FusedTwice { module: String },
}

/// Why a prepare / calibrate / convert / quantized-run step failed; each names the module.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Fuse(#[from] FuseError),
    /// A qconfig entry keyed by a module path or glob that names no module.
    #[error("qconfig entry '{pattern}' matches no module of the model (modules: {known})")]
    NoMatch { pattern: String, known: String },
    /// A qconfig entry keyed by an op type the model does not contain.
    #[error("qconfig entry for type '{type_name}' matches no module of the model")]
    NoTypeMatch { type_name: String },
    /// A qconfig that cannot be used for this module.
    #[error("module '{module}': {source}")]
    QConfig {
        module: String,
        source: crate::qconfig::QConfigError,
    },
    /// The pre-convert check found a problem that makes conversion impossible.
    #[error("module '{module}': {problem} (fix: {fix})")]
    Check {
        module: String,
        problem: String,
        fix: String,
    },
    /// An observer rejected what it was shown or could not derive qparams.
    #[error("observer of '{module}': {source}")]
    Observer {
        module: String,
        source: crate::observer::ObserverError,
    },
    /// A quantized module could not be built or run.
    #[error("module '{module}': {source}")]
    Module {
        module: String,
        source: crate::qnn::QnnError,
    },
    /// A calibration batch failed to run through the float model.
    #[error("calibration batch {batch}: {source}")]
    Calibration {
        batch: usize,
        source: crate::graph::GraphError,
    },
    /// The float part of a model failed.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
}
