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
    /// An operator qlab does not implement (the only unsupported op type in the model).
    #[error("node '{node}': unsupported op type {op_type}")]
    UnsupportedOp { node: String, op_type: String },
    /// Several op types qlab does not implement, each with the first node that uses it, in
    /// graph order: the whole list at once, so one look tells how far a model is from importing.
    #[error("{} unsupported op types: {}", .ops.len(), list_sites(.ops))]
    UnsupportedOps { ops: Vec<UnsupportedSite> },
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
    /// An initializer's external data file is refused or does not hold the tensor: the location
    /// leaves the model's folder, the file is not a regular file, or offset and length do not fit.
    #[error("tensor '{tensor}': external data '{location}': {detail}")]
    ExternalData {
        tensor: String,
        location: String,
        detail: String,
    },
    /// A tensor of a type or layout qlab cannot read.
    #[error("tensor '{name}': {detail}")]
    BadTensor { name: String, detail: String },
    /// Evaluating constant sub-graphs failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Where an unsupported op type first occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSite {
    /// The op type, `domain::Op` outside the default domain.
    pub op_type: String,
    /// The ONNX node name (or `OpType_index` for an unnamed node).
    pub node: String,
    /// The node's PyTorch module path, when the exporter recorded one.
    pub module: Option<String>,
}

fn list_sites(ops: &[UnsupportedSite]) -> String {
    ops.iter()
        .map(|s| match &s.module {
            Some(m) => format!("{} (first at node '{}', module {m})", s.op_type, s.node),
            None => format!("{} (first at node '{}')", s.op_type, s.node),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
