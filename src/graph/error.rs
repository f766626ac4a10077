//! The typed errors of the graph layer; each names the node (module path) it concerns.

use thiserror::Error;

/// Everything that can go wrong building or running a graph.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    /// A node received a tensor of the wrong element type.
    #[error("node '{node}': expected a {expected} tensor, got {got}")]
    WrongType {
        node: String,
        expected: &'static str,
        got: &'static str,
    },
    /// A node received tensors whose shapes it cannot combine.
    #[error("node '{node}': {detail}")]
    Shape { node: String, detail: String },
    /// A node's inputs or attributes are inconsistent.
    #[error("node '{node}': {detail}")]
    Invalid { node: String, detail: String },
    /// The caller supplied the wrong number of graph inputs or a wrong input shape.
    #[error("model input '{input}': {detail}")]
    BadInput { input: String, detail: String },
    /// A tensor larger than the memory budget (see [`crate::graph::budget`]) was asked for.
    #[error(
        "node '{node}': {what} needs {bytes} bytes, over the memory budget of {budget} bytes (set QLAB_MAX_MEMORY to change it)"
    )]
    OverBudget {
        node: String,
        what: String,
        bytes: String,
        budget: u64,
    },
    /// The run stopped at a cancel request (see [`crate::cancel`]).
    #[error("cancelled")]
    Cancelled,
    /// A value was used before any node produced it (a malformed graph).
    #[error("node '{node}' reads '{value}', which nothing produces")]
    Dangling { node: String, value: String },
}
