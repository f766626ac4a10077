//! Mapping exporter names back to PyTorch module paths.
//!
//! `torch.onnx.export` names a node by its scope: one segment per module, each segment written
//! as the child's name prefixed by its parent's local name (`/features/features.17/conv/conv.2/Conv`),
//! then the op type. Stripping each parent prefix recovers `features.17.conv.2`, the path PyTorch's
//! `named_modules()` would print; parameters (`features.17.conv.2.weight`) already use it.

/// The module path of an exported node name, or `None` for a root-level (functional) node.
pub fn module_path(node_name: &str) -> Option<String> {
    let segments: Vec<&str> = node_name.strip_prefix('/')?.split('/').collect();
    let scopes = &segments[..segments.len().saturating_sub(1)];
    let mut path: Vec<&str> = Vec::new();
    let mut parent_local: Option<&str> = None;
    for seg in scopes {
        let child = match parent_local
            .and_then(|p| seg.strip_prefix(p))
            .and_then(|r| r.strip_prefix('.'))
        {
            Some(rest) => rest,
            None => seg,
        };
        path.push(child);
        parent_local = Some(seg);
    }
    (!path.is_empty()).then(|| path.join("."))
}

#[cfg(test)]
mod tests {
    use super::module_path;

    #[test]
    fn scopes_become_module_paths() {
        assert_eq!(
            module_path("/layer1/layer1.0/conv1/Conv").as_deref(),
            Some("layer1.0.conv1")
        );
        assert_eq!(
            module_path("/features/features.17/conv/conv.2/Conv").as_deref(),
            Some("features.17.conv.2")
        );
        assert_eq!(
            module_path("/features/features.17/conv/conv.1/conv.1.2/Relu").as_deref(),
            Some("features.17.conv.1.2")
        );
        assert_eq!(
            module_path("/classifier/classifier.1/Gemm").as_deref(),
            Some("classifier.1")
        );
        assert_eq!(module_path("/fc1/MatMul").as_deref(), Some("fc1"));
        assert_eq!(module_path("/Add"), None);
        assert_eq!(module_path("Identity_0"), None);
    }
}
