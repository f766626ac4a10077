//! The PyTorch module path of an ONNX node, from whichever record its exporter left: dynamo
//! metadata (`pkg.torch.onnx.name_scopes`, then `namespace`), else the legacy scoped node name.
//!
//! The innermost module scope is the path, with one correction: the dynamo exporter's optimiser
//! folds BatchNorm into the preceding Conv and the fused node keeps the BatchNorm's scope, so a
//! Conv scoped to a BatchNorm module takes the conv's own path from its weight's parameter name —
//! the name the legacy exporter and eager PyTorch give that layer.

use super::proto::NodeProto;
use crate::import::naming::{dynamo_scopes, folded_conv_path, module_path};

/// The module path of `node` (`None` for a root-level node); `shown` is its display name, used
/// for the legacy rule when the node carries no dynamo metadata.
pub fn node_module_path(node: &NodeProto, shown: &str) -> Option<String> {
    let scope = scope_path(node, shown)?;
    Some(submodule_by_weight(node, &scope).unwrap_or(scope))
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

fn scope_path(node: &NodeProto, shown: &str) -> Option<String> {
    let meta = |key: &str| {
        node.metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some(key))
            .and_then(|p| p.value.as_deref())
    };
    let Some(scopes) = dynamo_scopes(
        meta("pkg.torch.onnx.name_scopes"),
        meta("pkg.torch.onnx.class_hierarchy"),
        meta("namespace"),
    ) else {
        return module_path(shown);
    };
    let inner = scopes.last()?;
    let folded_bn = node.op_type.as_deref() == Some("Conv")
        && inner
            .class
            .as_deref()
            .is_some_and(|c| c.contains("BatchNorm"));
    if folded_bn
        && let Some(conv) = node
            .input
            .get(1)
            .and_then(|w| folded_conv_path(&inner.path, w))
    {
        return Some(conv);
    }
    Some(inner.path.clone())
}
