//! Mapping exporter names back to PyTorch module paths.
//!
//! The legacy `torch.onnx.export` names a node by its scope: one segment per module, each
//! segment written as the child's name prefixed by its parent's local name
//! (`/features/features.17/conv/conv.2/Conv`), then the op type. Stripping each parent prefix
//! recovers `features.17.conv.2`, the path PyTorch's `named_modules()` would print; parameters
//! (`features.17.conv.2.weight`) already use it.
//!
//! The dynamo exporter (PyTorch 2.x's default) names nodes `node_view_3` and keeps the scope in
//! node metadata instead: `pkg.torch.onnx.name_scopes` is a Python list literal of module paths,
//! outermost first, root `''`, then the op instance (`['', 'stage2', 'stage2.0', 'relu_1']`);
//! `pkg.torch.onnx.class_hierarchy` lists the matching classes; `namespace` carries both as
//! `path: class` segments joined by `/`. The metadata is untrusted text, so every parser here
//! returns `None` on anything it does not recognise and the caller falls back to the next source.

use crate::graph::LinearCall;

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

/// One module scope around a node: its path and, when the exporter recorded it, its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The module path (`stage2.0.branch1`).
    pub path: String,
    /// The module's class (`torch.nn.modules.batchnorm.BatchNorm2d`).
    pub class: Option<String>,
}

/// The module scopes of a dynamo-exported node, outermost first, root excluded (empty for a
/// root-level node); `None` when neither `name_scopes` nor `namespace` parses.
pub fn dynamo_scopes(
    name_scopes: Option<&str>,
    class_hierarchy: Option<&str>,
    namespace: Option<&str>,
) -> Option<Vec<Scope>> {
    let from_namespace = namespace.and_then(parse_namespace);
    // The last element is the op instance (`relu_1`), not a module.
    let listed = name_scopes.and_then(parse_str_list).and_then(|mut l| {
        l.pop()?;
        Some(l)
    });
    let scoped = match listed {
        Some(paths) => {
            // Classes pair with paths only when the lists line up (they share the op's slot).
            let classes = class_hierarchy
                .and_then(parse_str_list)
                .filter(|c| c.len() == paths.len() + 1)
                .or_else(|| {
                    from_namespace
                        .as_ref()
                        .filter(|ns| ns.iter().map(|s| &s.path).eq(paths.iter()))
                        .map(|ns| ns.iter().filter_map(|s| s.class.clone()).collect())
                });
            paths
                .into_iter()
                .enumerate()
                .map(|(i, path)| Scope {
                    path,
                    class: classes.as_ref().and_then(|c| c.get(i).cloned()),
                })
                .collect()
        }
        None => from_namespace?,
    };
    Some(scoped.into_iter().filter(|s| !s.path.is_empty()).collect())
}

/// The module path of a Conv whose BatchNorm the exporter's optimiser folded into it: the fused
/// node keeps the BatchNorm's scope (`features.0.1`) while the legacy exporter, like eager
/// PyTorch, names the conv (`features.0.0`). The conv's weight keeps its parameter name
/// (`features.0.0.weight`), so that names the conv when it is a sibling of the BatchNorm.
pub fn folded_conv_path(bn_path: &str, weight: &str) -> Option<String> {
    let conv = weight.strip_suffix(".weight")?;
    let parent = |p: &str| p.rsplit_once('.').map_or("", |(head, _)| head).to_string();
    (!conv.is_empty() && parent(conv) == parent(bn_path)).then(|| conv.to_string())
}

/// The class `quantize_dynamic(model, {nn.Linear})` and module-type qconfigs match exactly.
const LINEAR_CLASS: &str = "torch.nn.modules.linear.Linear";

/// Whether a Linear node is an `nn.Linear` module's own forward or `F.linear` called by its
/// runner (the innermost module that ran it) — PyTorch swaps only the former.
///
/// The runner's class decides when the exporter recorded it (dynamo): only `nn.Linear` itself
/// counts. Otherwise the parameters the node reads (`params`, weight first, as named in the
/// state dict; exporter-made names such as `onnx::MatMul_7` or `/a/Transpose_output_0` are
/// ignored) decide: the runner's own `weight` or `bias` means its own forward, any other
/// parameter under the runner (`self_attn.in_proj_weight`, `self_attn.out_proj.weight`) a
/// functional call. A parameter outside the runner proves nothing (tied weights keep one
/// name), and with no evidence at all the node stays a module call.
pub fn linear_call(runner: Option<&Scope>, params: &[&str]) -> LinearCall {
    if let Some(class) = runner.and_then(|r| r.class.as_deref()) {
        return if class == LINEAR_CLASS {
            LinearCall::Module
        } else {
            LinearCall::Functional
        };
    }
    let local = |p: &&str| -> Option<String> {
        let local = match runner {
            Some(r) => p.strip_prefix(r.path.as_str())?.strip_prefix('.')?,
            None => p,
        };
        is_param_name(p).then(|| local.to_string())
    };
    match params.iter().find_map(local).as_deref() {
        Some("weight" | "bias") | None => LinearCall::Module,
        Some(_) => LinearCall::Functional,
    }
}

/// Whether `name` reads as a state-dict key (`encoder.layers.0.linear1.weight`: dotted
/// identifiers and indices) rather than an exporter-made value name (`onnx::MatMul_7`,
/// `/encoder/layers.0/linear1/Transpose_output_0`).
pub fn is_param_name(name: &str) -> bool {
    name.split('.')
        .all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// `namespace` metadata (`: Net/stage2: Sequential/relu_1: aten.relu.default`) as scopes, the
/// trailing op segment dropped, root kept (its path is empty).
fn parse_namespace(ns: &str) -> Option<Vec<Scope>> {
    let mut scopes = ns
        .split('/')
        .map(|seg| {
            seg.split_once(": ").map(|(path, class)| Scope {
                path: path.trim().to_string(),
                class: Some(class.trim().to_string()),
            })
        })
        .collect::<Option<Vec<Scope>>>()?;
    scopes.pop()?;
    Some(scopes)
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_ws(chars: &mut Chars<'_>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

/// Parses a list of Python string literals as `repr(list)` prints it (`['', "it's", 'a\\b']`):
/// single or double quotes, backslash escapes, an optional trailing comma. `None` for anything
/// else, including non-string elements.
pub fn parse_str_list(s: &str) -> Option<Vec<String>> {
    let mut chars = s.trim().chars().peekable();
    if chars.next()? != '[' {
        return None;
    }
    let mut items = Vec::new();
    loop {
        skip_ws(&mut chars);
        let quote = match chars.next()? {
            ']' => break,
            q @ ('\'' | '"') => q,
            _ => return None,
        };
        let mut item = String::new();
        loop {
            match chars.next()? {
                c if c == quote => break,
                '\\' => item.push(unescape(&mut chars)?),
                c => item.push(c),
            }
        }
        items.push(item);
        skip_ws(&mut chars);
        match chars.next()? {
            ',' => {}
            ']' => break,
            _ => return None,
        }
    }
    chars.all(char::is_whitespace).then_some(items)
}

/// The character after a backslash inside a Python string literal (`repr` emits `\\`, `\'`,
/// `\n`, `\t`, `\r`, `\xHH`, `\uHHHH`, `\UHHHHHHHH`). A backslash before anything else is
/// kept literally, as Python does; here only the backslash itself is returned and the next
/// character is read as ordinary text.
fn unescape(chars: &mut Chars<'_>) -> Option<char> {
    let hex = |chars: &mut Chars<'_>, n: usize| {
        let digits: String = (0..n).map_while(|_| chars.next()).collect();
        // Exactly `n` hex digits: `from_str_radix` alone would also take a sign.
        (digits.len() == n && digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(&digits, 16).ok())
            .flatten()
            .and_then(char::from_u32)
    };
    match chars.peek()? {
        '\\' | '\'' | '"' => chars.next(),
        'n' | 't' | 'r' => {
            let c = chars.next()?;
            Some(match c {
                'n' => '\n',
                't' => '\t',
                _ => '\r',
            })
        }
        'x' | 'u' | 'U' => {
            let width = match chars.next()? {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            hex(chars, width)
        }
        _ => Some('\\'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn python_string_lists() {
        assert_eq!(
            parse_str_list("['', 'stage2', 'stage2.0', 'stage2.0.branch1', 'relu_1']"),
            Some(vec![
                String::new(),
                "stage2".into(),
                "stage2.0".into(),
                "stage2.0.branch1".into(),
                "relu_1".into()
            ])
        );
        assert_eq!(parse_str_list("[]"), Some(vec![]));
        assert_eq!(parse_str_list("  [ 'a' , ]  "), Some(vec!["a".into()]));
        // Commas, brackets and the other quote inside a literal are text.
        assert_eq!(
            parse_str_list(r#"["it's, [odd]", 'say "hi"', 'a\'b']"#),
            Some(vec![
                "it's, [odd]".into(),
                "say \"hi\"".into(),
                "a'b".into()
            ])
        );
        assert_eq!(
            parse_str_list(r"['back\\slash', 'tab\t', '\x41\u00e9\U0001F600', 'keep\q']"),
            Some(vec![
                "back\\slash".into(),
                "tab\t".into(),
                "Aé😀".into(),
                "keep\\q".into()
            ])
        );
        for bad in [
            "",
            "[",
            "['a'",
            "['a' 'b']",
            "['a',, 'b']",
            "[1, 'a']",
            "['unterminated]",
            "['a'] trailing",
            "('a',)",
            "['\\x4']",
            "['\\",
            "['\\uD800']",
            "['\\x+4']",
            "[None]",
        ] {
            assert_eq!(parse_str_list(bad), None, "{bad}");
        }
    }

    /// Metadata of real nodes from the dynamo exports in the zoo.
    #[test]
    fn dynamo_metadata_gives_module_scopes() {
        let relu = dynamo_scopes(
            Some("['', 'stage2', 'stage2.0', 'stage2.0.branch1', 'stage2.0.branch1.4', 'relu_1']"),
            Some(
                "['torchvision.models.quantization.shufflenetv2.QuantizableShuffleNetV2', \
                 'torch.nn.modules.container.Sequential', \
                 'torchvision.models.quantization.shufflenetv2.QuantizableInvertedResidual', \
                 'torch.nn.modules.container.Sequential', 'torch.nn.modules.activation.ReLU', \
                 'aten.relu.default']",
            ),
            None,
        )
        .unwrap();
        let paths: Vec<&str> = relu.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "stage2",
                "stage2.0",
                "stage2.0.branch1",
                "stage2.0.branch1.4"
            ]
        );
        assert_eq!(
            relu.last().unwrap().class.as_deref(),
            Some("torch.nn.modules.activation.ReLU")
        );

        let ns = ": torchvision.models.quantization.mobilenetv3.QuantizableMobileNetV3/\
                  features: torch.nn.modules.container.Sequential/\
                  features.0: torchvision.ops.misc.Conv2dNormActivation/\
                  features.0.1: torch.nn.modules.batchnorm.BatchNorm2d/\
                  _native_batch_norm_legit_no_training: \
                  aten._native_batch_norm_legit_no_training.default";
        let bn_scopes = "['', 'features', 'features.0', 'features.0.1', \
                         '_native_batch_norm_legit_no_training']";
        // Classes come from `namespace` when the hierarchy is missing; the namespace alone
        // gives the same scopes when `name_scopes` is missing or malformed.
        let from_both = dynamo_scopes(Some(bn_scopes), None, Some(ns)).unwrap();
        let from_ns = dynamo_scopes(Some("['features', oops]"), None, Some(ns)).unwrap();
        assert_eq!(from_both, from_ns);
        assert_eq!(
            from_both.last(),
            Some(&Scope {
                path: "features.0.1".into(),
                class: Some("torch.nn.modules.batchnorm.BatchNorm2d".into())
            })
        );

        // A root-level op: no module scope at all.
        let view = dynamo_scopes(
            Some("['', 'view']"),
            None,
            Some(
                ": torchvision.models.quantization.mobilenetv3.QuantizableMobileNetV3/view: aten.view.default",
            ),
        );
        assert_eq!(view, Some(vec![]));
        // Nothing usable: the caller falls back to the node name.
        assert_eq!(dynamo_scopes(None, None, None), None);
        assert_eq!(dynamo_scopes(Some("[]"), None, Some("no colon")), None);
        // A hierarchy of the wrong length is ignored, not misaligned.
        let short = dynamo_scopes(Some("['', 'fc', 'linear']"), Some("['Net']"), None).unwrap();
        assert_eq!(
            short,
            vec![Scope {
                path: "fc".into(),
                class: None
            }]
        );
    }

    /// The five Linear nodes of an `nn.TransformerEncoderLayer` and its classifier head, as
    /// the legacy, folded legacy and dynamo exports of the zoo's text model record them.
    #[test]
    fn only_nn_linear_forwards_are_module_calls() {
        use LinearCall::{Functional, Module};
        let legacy = |path: &str| Scope {
            path: path.into(),
            class: None,
        };
        let attn = legacy("encoder.layers.0.self_attn");
        let linear1 = legacy("encoder.layers.0.linear1");
        // Legacy export: parameter names survive (the MatMul weight through its Transpose).
        let cases: [(&Scope, &[&str], LinearCall); 9] = [
            (
                &attn,
                &["encoder.layers.0.self_attn.in_proj_weight"],
                Functional,
            ),
            (
                &attn,
                &[
                    "encoder.layers.0.self_attn.out_proj.weight",
                    "encoder.layers.0.self_attn.out_proj.bias",
                ],
                Functional,
            ),
            (&linear1, &["encoder.layers.0.linear1.weight"], Module),
            // Constant folding renames the weight; the bias the MatMul's Add reads still tells.
            (
                &attn,
                &[
                    "onnx::MatMul_333",
                    "encoder.layers.0.self_attn.in_proj_bias",
                ],
                Functional,
            ),
            (
                &linear1,
                &["onnx::MatMul_372", "encoder.layers.0.linear1.bias"],
                Module,
            ),
            // Nothing to go by: a module call, as before the rule existed.
            (&linear1, &["onnx::MatMul_372"], Module),
            (
                &attn,
                &["/encoder/layers.0/self_attn/Transpose_output_0"],
                Module,
            ),
            // A weight tied to another module's parameter proves nothing.
            (&legacy("head"), &["embed.weight"], Module),
            // A sibling-named parameter is not the runner's own.
            (&linear1, &["encoder.layers.0.linear1_extra.weight"], Module),
        ];
        for (runner, params, want) in cases {
            assert_eq!(linear_call(Some(runner), params), want, "{params:?}");
        }
        // At the root, the root's own `weight` is a module call, a child's a functional one.
        assert_eq!(linear_call(None, &["weight", "bias"]), Module);
        assert_eq!(linear_call(None, &["embed.weight"]), Functional);

        // Dynamo export: the class decides, whatever the (renamed) weight.
        let dynamo = |class: &str| Scope {
            path: "encoder.layers.0.x".into(),
            class: Some(class.into()),
        };
        let mha = dynamo("torch.nn.modules.activation.MultiheadAttention");
        let lin = dynamo("torch.nn.modules.linear.Linear");
        let sub = dynamo("torch.nn.modules.linear.NonDynamicallyQuantizableLinear");
        assert_eq!(linear_call(Some(&mha), &["val_0"]), Functional);
        assert_eq!(linear_call(Some(&lin), &["val_86"]), Module);
        assert_eq!(
            linear_call(Some(&sub), &["encoder.layers.0.x.weight"]),
            Functional
        );
    }

    #[test]
    fn folded_conv_takes_its_weight_name() {
        assert_eq!(
            folded_conv_path("features.0.1", "features.0.0.weight").as_deref(),
            Some("features.0.0")
        );
        assert_eq!(
            folded_conv_path("conv1.1", "conv1.0.weight").as_deref(),
            Some("conv1.0")
        );
        assert_eq!(
            folded_conv_path("bn", "conv.weight").as_deref(),
            Some("conv")
        );
        // Not a sibling, or not a parameter name: keep the BatchNorm's scope.
        assert_eq!(folded_conv_path("block.1", "other.0.weight"), None);
        assert_eq!(folded_conv_path("features.0.1", "val_126"), None);
        assert_eq!(folded_conv_path("bn", ".weight"), None);
    }
}
