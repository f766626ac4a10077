//! The PyTorch module path of an ONNX node, from whichever record its exporter left: dynamo
//! metadata (`pkg.torch.onnx.name_scopes`, then `namespace`), else the legacy scoped node name.
//!
//! The innermost module scope is the module whose forward ran the node (its *runner*) and
//! names it, with two corrections: the dynamo exporter's optimiser folds BatchNorm into the
//! preceding Conv and the fused node keeps the BatchNorm's scope, so a Conv scoped to a
//! BatchNorm module takes the conv's own path from its weight's parameter name — the name the
//! legacy exporter and eager PyTorch give that layer; and a weight op a module calls
//! functionally with a child's weight is named after that child (see [`submodule_by_weight`]).

use super::proto::NodeProto;
use crate::import::naming::{Scope, dynamo_scopes, folded_conv_path, module_path};

/// Where a node sits in the module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The module path that names the node (`None` for a root-level node).
    pub path: Option<String>,
    /// The innermost module whose forward ran the node, with its class when the exporter
    /// recorded it (`None` at the root).
    pub runner: Option<Scope>,
}

/// The module path of `node` (`None` for a root-level node); `shown` is its display name, used
/// for the legacy rule when the node carries no dynamo metadata.
pub fn node_module_path(node: &NodeProto, shown: &str) -> Option<String> {
    node_site(node, shown).path
}

/// The node's path and runner (see [`Site`]).
pub fn node_site(node: &NodeProto, shown: &str) -> Site {
    let runner = runner(node, shown);
    let path = runner.as_ref().map(|r| {
        folded_conv(node, r)
            .or_else(|| submodule_by_weight(node, &r.path))
            .unwrap_or_else(|| r.path.clone())
    });
    Site { path, runner }
}

/// A weight-owning op called functionally inside its parent's forward (MultiheadAttention
/// calls `F.linear(x, self.out_proj.weight, ...)`) is scoped to the parent by both exporters;
/// its weight's parameter name (`self_attn.out_proj.weight`) names the module PyTorch has.
fn submodule_by_weight(node: &NodeProto, scope: &str) -> Option<String> {
    let weighted = matches!(
        node.op_type.as_deref(),
        Some("Conv" | "Gemm" | "MatMul" | "LayerNormalization")
    );
    let module = node.input.get(1)?.strip_suffix(".weight")?;
    let inside = module
        .strip_prefix(scope)
        .is_some_and(|rest| rest.starts_with('.'));
    (weighted && inside).then(|| module.to_string())
}

/// The conv path of a Conv the dynamo optimiser merged into its BatchNorm's scope.
fn folded_conv(node: &NodeProto, runner: &Scope) -> Option<String> {
    let folded_bn = node.op_type.as_deref() == Some("Conv")
        && runner
            .class
            .as_deref()
            .is_some_and(|c| c.contains("BatchNorm"));
    folded_bn
        .then(|| folded_conv_path(&runner.path, node.input.get(1)?))
        .flatten()
}

fn runner(node: &NodeProto, shown: &str) -> Option<Scope> {
    let meta = |key: &str| {
        node.metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some(key))
            .and_then(|p| p.value.as_deref())
    };
    match dynamo_scopes(
        meta("pkg.torch.onnx.name_scopes"),
        meta("pkg.torch.onnx.class_hierarchy"),
        meta("namespace"),
    ) {
        Some(mut scopes) => scopes.pop(),
        None => module_path(shown).map(|path| Scope { path, class: None }),
    }
}
