//! PyTorch's view of a (fused) graph: every module path with its class name, and the
//! `state_dict` keys, as `named_modules()` / `state_dict()` list them after `fuse_modules`.
//!
//! Golden files and users both speak in these names (`ConvReLU2d`, `0.0.weight`), so fusion
//! results are checked and reported through them. Container modules (`Sequential`, user
//! classes) have no node in the graph and are not listed.

use crate::graph::{Fusion, Graph, LinearCall, Node, Op};
use ndarray::ArrayD;
use std::collections::{BTreeMap, HashMap};

/// A module's class name and the Python module defining it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleType {
    pub type_name: String,
    pub module: &'static str,
}

const FUSED: &str = "torch.ao.nn.intrinsic.modules.fused";
const FUNCTIONAL: &str = "torch.ao.nn.quantized.modules.functional_modules";
/// ReLU6 fusions have no PyTorch class; qlab names them in its own namespace.
const QLAB_FUSED: &str = "qlab.workflow.fused";

impl ModuleType {
    fn plain(type_name: &str) -> ModuleType {
        let module = match type_name {
            t if t.starts_with("Conv") => "torch.nn.modules.conv",
            t if t.starts_with("BatchNorm") => "torch.nn.modules.batchnorm",
            t if t.contains("Pool") => "torch.nn.modules.pooling",
            "Linear" | "Identity" => "torch.nn.modules.linear",
            "Flatten" => "torch.nn.modules.flatten",
            "LSTM" => "torch.nn.modules.rnn",
            "QuantStub" | "DeQuantStub" => "torch.ao.quantization.stubs",
            _ => "torch.nn.modules.activation",
        };
        ModuleType {
            type_name: type_name.into(),
            module,
        }
    }
}

/// The index of the node producing each value.
pub(super) fn producers(graph: &Graph) -> HashMap<&str, usize> {
    let mut map = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for o in &n.outputs {
            map.insert(o.as_str(), i);
        }
    }
    map
}

/// Spatial rank a BatchNorm sees, from the module feeding it (`BatchNorm1d` after a Linear or
/// Conv1d); 2 when nothing upstream tells.
fn bn_dims(graph: &Graph, prod: &HashMap<&str, usize>, node: &Node) -> usize {
    let mut cur = node;
    loop {
        let Some(&p) = cur.inputs.first().and_then(|i| prod.get(i.as_str())) else {
            return 2;
        };
        cur = &graph.nodes[p];
        match &cur.op {
            Op::Conv(c) => return c.weight.ndim() - 2,
            Op::Linear(_) | Op::Flatten { .. } => return 1,
            Op::BatchNorm(_) | Op::Relu | Op::Clip { .. } | Op::Identity => {}
            _ => return 2,
        }
    }
}

/// The type name a node answers to besides its class (`qconfig type=...`): its op kind, but
/// `F.linear` for a Linear another module calls functionally, so that `Linear` — PyTorch's
/// `{nn.Linear: qconfig}` — reaches module calls only.
pub(super) fn kind_of(node: &Node) -> &'static str {
    match &node.op {
        Op::Linear(l) if l.call == LinearCall::Functional => "F.linear",
        op => op.kind(),
    }
}

/// The PyTorch class of the module a node stands for; `None` for functional nodes (a
/// functionally called Linear included: no module of its own).
pub(super) fn class_of(graph: &Graph, prod: &HashMap<&str, usize>, node: &Node) -> Option<String> {
    Some(match &node.op {
        Op::Linear(l) if l.call == LinearCall::Functional => return None,
        Op::Conv(c) => format!("Conv{}d", c.weight.ndim() - 2),
        Op::BatchNorm(_) => format!("BatchNorm{}d", bn_dims(graph, prod, node)),
        Op::MaxPool(p) => format!("MaxPool{}d", p.kernel.len()),
        Op::AvgPool(p) => format!("AvgPool{}d", p.kernel.len()),
        Op::Clip { min, max } if *min == 0.0 && *max == 6.0 => "ReLU6".into(),
        Op::Clip { .. } => "Hardtanh".into(),
        Op::GlobalAvgPool => "AdaptiveAvgPool2d".into(),
        // These kinds are spelled as PyTorch's class names.
        Op::Linear(_)
        | Op::Lstm(_)
        | Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::Softmax { .. }
        | Op::Flatten { .. }
        | Op::Identity
        | Op::QuantStub
        | Op::DeQuantStub => node.op.kind().into(),
        _ => return None,
    })
}

fn is_bn(type_name: &str) -> bool {
    type_name.starts_with("BatchNorm")
}

/// Indices of the members that remain modules inside the fused one: all of them in QAT mode;
/// in eval mode a BN that follows a Conv / Linear is folded away (a leading BN stays: BNReLU).
fn kept_members(fusion: &Fusion) -> Vec<usize> {
    (0..fusion.types.len())
        .filter(|&i| fusion.qat || i == 0 || !is_bn(&fusion.types[i]))
        .collect()
}

/// The fused module's class and the member indices that are its children (none when PyTorch
/// leaves a plain module, as for eval-mode Conv+BN).
pub(super) fn fused_class(fusion: &Fusion) -> (ModuleType, Vec<usize>) {
    let types = &fusion.types;
    let kept = kept_members(fusion);
    let first = types[0].as_str();
    // add+ReLU is one method of a FloatFunctional, not a module of its own children.
    if first == "Add" {
        return (
            ModuleType {
                type_name: "FloatFunctional.add_relu".into(),
                module: FUNCTIONAL,
            },
            Vec::new(),
        );
    }
    if kept.len() == 1 {
        return (ModuleType::plain(first), Vec::new());
    }
    let act = types
        .last()
        .filter(|t| t.starts_with("ReLU"))
        .map_or("", String::as_str);
    let (stem, dims) = match first.strip_prefix("Conv") {
        Some(d) => ("Conv", d),
        None if first == "Linear" => ("Linear", ""),
        None => ("BN", first.trim_start_matches("BatchNorm")),
    };
    let bn_kept = stem != "BN" && kept.iter().any(|&i| is_bn(&types[i]));
    let (bn, dims) = match (bn_kept, stem) {
        // PyTorch's one Linear+BN intrinsic is `LinearBn1d`.
        (true, "Linear") => ("Bn", "1d"),
        (true, _) => ("Bn", dims),
        (false, _) => ("", dims),
    };
    // ReLU6 fusions are qlab's own (PyTorch has no such intrinsic module).
    let (sep, module) = match act {
        "ReLU6" if !dims.is_empty() => ("_", QLAB_FUSED),
        "ReLU6" => ("", QLAB_FUSED),
        _ => ("", FUSED),
    };
    let fused = ModuleType {
        type_name: format!("{stem}{bn}{act}{sep}{dims}"),
        module,
    };
    (fused, kept)
}

/// Every module path of the graph with its class, as `named_modules()` lists them after
/// fusion: fused modules with their children (`0`, `0.0`, `0.1`), absorbed ones as `Identity`.
pub fn module_types(graph: &Graph) -> BTreeMap<String, ModuleType> {
    let prod = producers(graph);
    let mut map = BTreeMap::new();
    for node in &graph.nodes {
        if let Some(t) = class_of(graph, &prod, node) {
            map.insert(node.name.clone(), ModuleType::plain(&t));
        }
    }
    for f in &graph.fusions {
        let (fused, children) = fused_class(f);
        for (i, &m) in children.iter().enumerate() {
            map.insert(
                format!("{}.{i}", f.modules[0]),
                ModuleType::plain(&f.types[m]),
            );
        }
        map.insert(f.modules[0].clone(), fused);
        for m in &f.modules[1..] {
            map.insert(m.clone(), ModuleType::plain("Identity"));
        }
    }
    map
}

/// The state-dict prefix of each module: its path, or `first.i` when it became child `i` of a
/// fused module.
fn prefixes(graph: &Graph) -> HashMap<&str, String> {
    let mut map: HashMap<&str, String> = graph
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.name.clone()))
        .collect();
    for f in &graph.fusions {
        let (_, children) = fused_class(f);
        for (i, &m) in children.iter().enumerate() {
            map.insert(f.modules[m].as_str(), format!("{}.{i}", f.modules[0]));
        }
    }
    map
}

/// The float parameters and buffers of Conv, Linear, BatchNorm and LSTM modules under PyTorch's
/// state-dict keys (`0.0.weight`, `5.bias`, `7.0.running_var`); BN's integer
/// `num_batches_tracked` is not kept by qlab and not listed.
pub fn state_dict(graph: &Graph) -> BTreeMap<String, ArrayD<f32>> {
    let prefix = prefixes(graph);
    let mut dict = BTreeMap::new();
    for node in &graph.nodes {
        let p = &prefix[node.name.as_str()];
        let mut put = |key: &str, v: ArrayD<f32>| {
            dict.insert(format!("{p}.{key}"), v);
        };
        match &node.op {
            Op::Conv(c) => {
                put("weight", c.weight.clone());
                if let Some(b) = &c.bias {
                    put("bias", b.clone().into_dyn());
                }
            }
            Op::Linear(l) => {
                put("weight", l.weight.clone().into_dyn());
                if let Some(b) = &l.bias {
                    put("bias", b.clone().into_dyn());
                }
            }
            Op::BatchNorm(b) => {
                put("weight", b.weight.clone().into_dyn());
                put("bias", b.bias.clone().into_dyn());
                put("running_mean", b.running_mean.clone().into_dyn());
                put("running_var", b.running_var.clone().into_dyn());
            }
            Op::Lstm(l) => {
                for (d, dir) in l.directions.iter().enumerate() {
                    let sfx = if d == 0 { "_l0" } else { "_l0_reverse" };
                    put(&format!("weight_ih{sfx}"), dir.w_ih.clone().into_dyn());
                    put(&format!("weight_hh{sfx}"), dir.w_hh.clone().into_dyn());
                    put(&format!("bias_ih{sfx}"), dir.b_ih.clone().into_dyn());
                    put(&format!("bias_hh{sfx}"), dir.b_hh.clone().into_dyn());
                }
            }
            _ => {}
        }
    }
    dict
}
