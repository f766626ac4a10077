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
