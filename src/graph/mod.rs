//! The model IR: a DAG of nodes named by PyTorch module path, and its float execution.
//!
//! Node names are module paths (`layer1.0.conv1`) so every report speaks the user's language;
//! functional nodes get stable derived names (`add`, `add_1`). Values flow by name; constants
//! (weights not owned by a module op, folded shape arithmetic) live beside the nodes.

pub mod budget;
mod error;
mod exec;
mod fold;
mod inspect;
mod names;
mod op;
pub mod ops;
pub mod rows;
pub mod train;
pub mod validate;
mod value;

pub use error::GraphError;
pub use exec::{NodeOutputs, run};
pub(crate) use exec::{check_inputs, last_uses};
pub use fold::{BatchFreedom, settle_batch};
pub use inspect::{NodeSummary, summarize};
pub use names::FreshNames;
pub use op::{
    BatchNormParams, Binary, CastTo, ConvParams, LayerNormParams, LinearCall, LinearParams,
    LstmDirection, LstmParams, Op, Param, PoolParams, ReduceParams, Reduction, ResizeMode, Unary,
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

/// A node from string slices: how tests build graphs by hand.
#[cfg(test)]
pub(crate) fn test_node(name: &str, op: Op, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    }
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
    /// Module groups fused by `workflow::fuse_modules`, in the order they were fused.
    pub fusions: Vec<Fusion>,
}

/// A group of modules fused into one (PyTorch's intrinsic modules such as `ConvReLU2d`).
///
/// The first module's node remains (in eval mode with the BatchNorm folded into it and the BN
/// node removed); a fused activation stays as its own node right after it, so `run` is
/// unchanged, and quantization treats the group as one module observed at its last output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fusion {
    /// Module paths in pattern order; the first names the fused module.
    pub modules: Vec<String>,
    /// Each module's PyTorch class before fusion (`Conv2d`, `BatchNorm2d`, `ReLU`, `ReLU6`).
    pub types: Vec<String>,
    /// Training-mode fusion (`fuse_modules_qat`): the BatchNorm node is kept for QAT.
    pub qat: bool,
}

/// Each node's position in `nodes`, by name.
pub fn index_by_name(nodes: &[Node]) -> std::collections::HashMap<&str, usize> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect()
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
