//! `fuse_modules` over the graph: explicit module lists checked against PyTorch's patterns, and
//! automatic detection of every fusable chain.
//!
//! Eval mode folds the BatchNorm into the Conv / Linear node (which keeps the first module's
//! path, takes over the BN's output value, and the BN node disappears); a ReLU / ReLU6 stays as
//! the node right after it. The [`Fusion`] record on the graph says which modules form one
//! fused module, so `graph::run` is unchanged and quantization can treat the group as one.
//! QAT mode (`fuse_modules_qat`) only records the group: BN stays for training.

use super::FuseError;
use super::fold::{fuse_conv_bn_eval, fuse_linear_bn_eval};
use super::modules::{ModuleType, class_of, fused_class, producers};
use crate::graph::{Fusion, Graph, LinearCall, Op};
use std::collections::HashSet;

/// One fused group: its module paths and the fused module's class.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedGroup {
    pub modules: Vec<String>,
    pub fused_type: ModuleType,
}

/// What automatic detection looks for besides PyTorch's module fusions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuseOptions {
    /// Read an Add of two tensors followed by a ReLU as one `FloatFunctional.add_relu` (how
    /// torchvision's quantizable ResNet adds; the exported graph cannot tell it from `add` then
    /// `nn.ReLU`, which keeps an observer before the ReLU).
    pub add_relu: bool,
}

impl Default for FuseOptions {
    fn default() -> Self {
        FuseOptions { add_relu: true }
    }
}

/// A module's role in a fusion pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Conv,
    Linear,
    Bn,
    Relu,
    /// ReLU6 (Clip to [0, 6]).
    Relu6,
    /// The functional add of two tensors (`FloatFunctional.add`).
    Add,
}

fn role(op: &Op) -> Option<Role> {
    match op {
        Op::Conv(_) => Some(Role::Conv),
        // `F.linear` inside another module has no module for `fuse_modules` to replace.
        Op::Linear(l) if l.call == LinearCall::Functional => None,
        Op::Linear(_) => Some(Role::Linear),
        Op::BatchNorm(_) => Some(Role::Bn),
        Op::Add => Some(Role::Add),
        Op::Relu => Some(Role::Relu),
        Op::Clip { min, max } if *min == 0.0 && *max == 6.0 => Some(Role::Relu6),
        _ => None,
    }
}

/// PyTorch's fusable sequences, plus Conv/Linear(+BN)+ReLU6 and add+ReLU (`add_relu`).
fn supported(roles: &[Role]) -> bool {
    use Role::*;
    matches!(
        roles,
        [Conv, Bn]
            | [Conv, Bn, Relu | Relu6]
            | [Conv, Relu | Relu6]
            | [Linear, Relu | Relu6]
            | [Linear, Bn]
            | [Bn, Relu | Relu6]
            | [Add, Relu]
    )
}

fn is_activation(r: Role) -> bool {
    matches!(r, Role::Relu | Role::Relu6)
}

fn node_index(graph: &Graph, path: &str) -> Result<usize, FuseError> {
    graph
        .nodes
        .iter()
        .position(|n| n.name == path)
        .ok_or_else(|| FuseError::UnknownModule {
            module: path.into(),
        })
}

/// Names of the nodes (and `<model output>`) reading `value`, other than node `except`.
fn other_readers(graph: &Graph, value: &str, except: usize) -> Vec<String> {
    let mut readers: Vec<String> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != except && n.inputs.iter().any(|x| x == value))
        .map(|(_, n)| n.name.clone())
        .collect();
    if graph.outputs.iter().any(|o| o == value) {
        readers.push("<model output>".into());
    }
    readers
}

/// Checks that `path[k]` reads only `path[k-1]`'s single output and is its only reader.
fn check_chain(graph: &Graph, idx: &[usize]) -> Result<(), FuseError> {
    for w in idx.windows(2) {
        let (prev, next) = (&graph.nodes[w[0]], &graph.nodes[w[1]]);
        let data: Vec<String> = next
            .inputs
            .iter()
            .filter(|i| !i.is_empty() && !graph.constants.contains_key(*i))
            .cloned()
            .collect();
        if prev.outputs.len() != 1 || data != prev.outputs {
            return Err(FuseError::NotConsecutive {
                module: next.name.clone(),
                previous: prev.name.clone(),
                reads: data,
            });
        }
        let readers = other_readers(graph, &prev.outputs[0], w[1]);
        if !readers.is_empty() {
            return Err(FuseError::SharedIntermediate {
                module: prev.name.clone(),
                readers,
            });
        }
    }
    Ok(())
}

/// Output channels at the BN's axis, and the BN's channel count.
fn channels(graph: &Graph, module: usize, bn: usize) -> (usize, usize) {
    let c = match &graph.nodes[module].op {
        Op::Conv(p) => p.weight.shape()[0],
        Op::Linear(p) => p.weight.nrows(),
        _ => 0,
    };
    let b = match &graph.nodes[bn].op {
        Op::BatchNorm(p) => p.weight.len(),
        _ => 0,
    };
    (c, b)
}

/// Validates one group against the graph and returns its node indices and PyTorch classes.
fn validate(graph: &Graph, group: &[String]) -> Result<(Vec<usize>, Vec<String>), FuseError> {
    let idx = group
        .iter()
        .map(|p| node_index(graph, p))
        .collect::<Result<Vec<_>, _>>()?;
    let roles: Option<Vec<Role>> = idx.iter().map(|&i| role(&graph.nodes[i].op)).collect();
    if !roles.as_deref().is_some_and(supported) {
        let kinds: Vec<&str> = idx.iter().map(|&i| graph.nodes[i].op.kind()).collect();
        return Err(FuseError::Unsupported {
            modules: group.to_vec(),
            reason: format!(
                "{kinds:?} is not a fusable pattern (Conv+BN[+ReLU], Conv+ReLU, Linear+ReLU, \
                 Linear+BN, BN+ReLU; ReLU6 where ReLU is allowed; Add+ReLU as add_relu)"
            ),
        });
    }
    check_chain(graph, &idx)?;
    if let [m, bn, ..] = idx[..]
        && matches!(graph.nodes[bn].op, Op::BatchNorm(_))
        && !matches!(graph.nodes[m].op, Op::BatchNorm(_))
    {
        let (c, b) = channels(graph, m, bn);
        if c != b {
            return Err(FuseError::ChannelMismatch {
                module: group[0].clone(),
                bn: group[1].clone(),
                channels: c,
                bn_channels: b,
            });
        }
    }
    let prod = producers(graph);
    let types = idx
        .iter()
        .map(|&i| {
            let n = &graph.nodes[i];
            class_of(graph, &prod, n).unwrap_or_else(|| n.op.kind().into())
        })
        .collect();
    Ok((idx, types))
}

/// Folds a BN at node `bn` into the Conv / Linear at node `m` (nothing to do otherwise, as for
/// BN+ReLU): the module takes over the BN's output value and the BN node is removed.
pub(super) fn fold_into(graph: &mut Graph, m: usize, bn: usize) -> Result<(), FuseError> {
    let folded = match (&graph.nodes[m].op, &graph.nodes[bn].op) {
        (Op::Conv(c), Op::BatchNorm(b)) => Op::Conv(fuse_conv_bn_eval(c, b)?),
        (Op::Linear(l), Op::BatchNorm(b)) => Op::Linear(fuse_linear_bn_eval(l, b)?),
        _ => return Ok(()),
    };
    let out = std::mem::take(&mut graph.nodes[bn].outputs);
    graph.nodes[m].op = folded;
    graph.nodes[m].outputs = out;
    graph.nodes.remove(bn);
    Ok(())
}

fn fuse(graph: &Graph, groups: &[Vec<String>], qat: bool) -> Result<Graph, FuseError> {
    let mut seen: HashSet<&str> = graph
        .fusions
        .iter()
        .flat_map(|f| f.modules.iter().map(String::as_str))
        .collect();
    for m in groups.iter().flatten() {
        if !seen.insert(m) {
            return Err(FuseError::FusedTwice { module: m.clone() });
        }
    }
    let mut out = graph.clone();
    for group in groups {
        let (idx, types) = validate(&out, group)?;
        if !qat && let [m, second, ..] = idx[..] {
            fold_into(&mut out, m, second)?;
        }
        out.fusions.push(Fusion {
            modules: group.clone(),
            types,
            qat,
        });
    }
    Ok(out)
}

/// PyTorch's `fuse_modules` on an eval model: each list (`["conv1", "bn1", "relu1"]`) must be a
/// supported pattern of consecutive modules whose intermediate values nothing else reads.
/// BN is folded bit-exactly (NUMERICS §5.2).
pub fn fuse_modules(graph: &Graph, groups: &[Vec<String>]) -> Result<Graph, FuseError> {
    fuse(graph, groups, false)
}

/// PyTorch's `fuse_modules_qat`: the same checks, BN kept (`ConvBn2d`, `ConvBnReLU2d`,
/// `LinearBn1d`). Only the grouping is recorded; `prepare_qat` gives Conv+BN groups their QAT
/// forward.
pub fn fuse_modules_qat(graph: &Graph, groups: &[Vec<String>]) -> Result<Graph, FuseError> {
    fuse(graph, groups, true)
}

/// The node reading node `i`'s single output, when it is the only reader and reads nothing else.
fn sole_follower(graph: &Graph, i: usize) -> Option<usize> {
    let n = &graph.nodes[i];
    let [out] = &n.outputs[..] else { return None };
    let readers: Vec<usize> = (0..graph.nodes.len())
        .filter(|&j| graph.nodes[j].inputs.contains(out))
        .collect();
    match readers[..] {
        [j] if !graph.outputs.contains(out) && check_chain(graph, &[i, j]).is_ok() => Some(j),
        _ => None,
    }
}

/// Whether node `i` is an add of two runtime tensors (an add of a constant is `add_scalar`).
fn adds_two_tensors(graph: &Graph, i: usize) -> bool {
    let n = &graph.nodes[i];
    n.inputs
        .iter()
        .filter(|x| !x.is_empty() && !graph.constants.contains_key(*x))
        .count()
        == 2
}

/// Finds every fusable chain, greedily extended from each Conv / Linear / BN (and add, with
/// `options.add_relu`) in graph order (every prefix of a module pattern is itself a pattern, so
/// greedy finds the longest). Modules already fused are skipped, so detection on a fused graph
/// finds only what is left.
pub(super) fn detect(graph: &Graph, options: FuseOptions) -> Vec<Vec<String>> {
    let fused: HashSet<&str> = graph
        .fusions
        .iter()
        .flat_map(|f| f.modules.iter().map(String::as_str))
        .collect();
    let mut claimed: Vec<bool> = graph
        .nodes
        .iter()
        .map(|n| fused.contains(n.name.as_str()))
        .collect();
    let mut groups = Vec::new();
    for i in 0..graph.nodes.len() {
        let Some(first) = role(&graph.nodes[i].op).filter(|r| !is_activation(*r)) else {
            continue;
        };
        if first == Role::Add && !(options.add_relu && adds_two_tensors(graph, i)) {
            continue;
        }
        if claimed[i] {
            continue;
        }
        let mut idx = vec![i];
        let mut roles = vec![first];
        while let Some(j) = sole_follower(graph, idx[idx.len() - 1]) {
            let Some(r) = role(&graph.nodes[j].op) else {
                break;
            };
            let mut longer = roles.clone();
            longer.push(r);
            let fits = supported(&longer)
                && !(r == Role::Bn && {
                    let (c, b) = channels(graph, i, j);
                    c != b
                });
            if !fits {
                break;
            }
            idx.push(j);
            roles = longer;
        }
        if idx.len() > 1 {
            for &k in &idx {
                claimed[k] = true;
            }
            groups.push(idx.iter().map(|&k| graph.nodes[k].name.clone()).collect());
        }
    }
    groups
}

/// Detects and fuses (eval mode) every Conv+BN(+ReLU), Conv+ReLU, Linear+ReLU, Linear+BN,
/// BN+ReLU, Conv/Linear(+BN)+ReLU6 and add+ReLU chain, and lists the groups with their fused
/// classes.
pub fn fuse_auto(graph: &Graph) -> Result<(Graph, Vec<FusedGroup>), FuseError> {
    fuse_auto_with(graph, FuseOptions::default())
}

/// [`fuse_auto`] with the choices of [`FuseOptions`].
pub fn fuse_auto_with(
    graph: &Graph,
    options: FuseOptions,
) -> Result<(Graph, Vec<FusedGroup>), FuseError> {
    let fused = fuse_modules(graph, &detect(graph, options))?;
    let groups = fused.fusions[graph.fusions.len()..]
        .iter()
        .map(|f| FusedGroup {
            modules: f.modules.clone(),
            fused_type: fused_class(f).0,
        })
        .collect();
    Ok((fused, groups))
}
