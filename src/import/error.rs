//! The typed errors of the import layer: each names the file, node, op type or attribute.

use crate::graph::GraphError;
use thiserror::Error;

/// Everything that can go wrong reading a model.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf (truncated or corrupt).
    #[error("{path} is not a valid ONNX model: {detail}")]
    Corrupt { path: String, detail: String },
    /// An operator qlab does not implement.
    #[error("node '{node}': unsupported op type {op_type}")]
    UnsupportedOp { node: String, op_type: String },
    /// An attribute value qlab does not implement.
    #[error("node '{node}' ({op_type}): unsupported attribute {attribute}: {detail}")]
    UnsupportedAttribute {
        node: String,
        op_type: String,
        attribute: String,
        detail: String,
    },
    /// A node refers to a tensor that is neither an initializer, a graph input nor produced.
    #[error("node '{node}' ({op_type}): input '{input}' is missing")]
    MissingInput {
        node: String,
        op_type: String,
        input: String,
    },
    /// An operand that must be known at import time (a weight) is computed at run time.
    #[error(
        "node '{node}' ({op_type}): operand '{input}' must be a constant (weights cannot be computed at run time)"
    )]
    NotConstant {
        node: String,
        op_type: String,
        input: String,
    },
    /// A tensor of a type or layout qlab cannot read.
    #[error("tensor '{name}': {detail}")]
    BadTensor { name: String, detail: String },
    /// Evaluating constant sub-graphs failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}
