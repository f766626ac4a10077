//! The model IR: a DAG of nodes named by PyTorch module path, and its float execution.
//!
//! Node names are module paths (`layer1.0.conv1`) so every report speaks the user's language;
//! functional nodes get stable derived names (`add`, `add_1`). Values flow by name; constants
//! (weights not owned by a module op, folded shape arithmetic) live beside the nodes.

mod error;
mod exec;
mod inspect;
mod op;
pub mod ops;
pub mod train;
mod value;

pub use error::GraphError;
pub use exec::{NodeOutputs, run};
pub use inspect::{NodeSummary, summarize};
pub use op::{
    BatchNormParams, ConvParams, LinearParams, LstmDirection, LstmParams, Op, PoolParams,
    ResizeMode,
};
pub use value::Value;

use std::collections::BTreeMap;

/// A graph input: its name and shape, `None` where the dim is dynamic (the batch).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInput {
    pub name: String,
    pub shape: Vec<Option<usize>>,
}

/// One operation: a module (named by its path) or a functional op (a derived name).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// Value names read, in the op's operand order; "" marks an absent optional operand.
    pub inputs: Vec<String>,
    /// Value names written.
    pub outputs: Vec<String>,
}

/// A float model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub inputs: Vec<GraphInput>,
    pub outputs: Vec<String>,
    /// Topologically ordered.
    pub nodes: Vec<Node>,
    /// Values known before execution.
    pub constants: BTreeMap<String, Value>,
}

impl Graph {
    /// The node with this module path or derived name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Total parameter count of all module ops.
    pub fn param_count(&self) -> usize {
        self.nodes.iter().map(|n| n.op.param_count()).sum()
    }
}
