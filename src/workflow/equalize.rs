//! Cross-layer equalization (Nagel et al. 2019, §4.1), as PyTorch's eager
//! `torch.ao.quantization._equalize.equalize` computes it.
//!
//! For a pair of Conv/Linear modules with only a ReLU between them, output channel `c` of the
//! first is scaled by `1/s[c]` (weights and bias) and input channel `c` of the second by `s[c]`,
//! with `s = sqrt(range1 / (range2 + 1e-9))` and each range the channel's max − min of its
//! weights. ReLU is positively homogeneous, so the float function is unchanged while the two
//! channel ranges meet at their geometric mean: a layer whose channels differ widely (a
//! depthwise conv's, typically) then loses less to per-tensor weight quantization. Every step is
//! one correctly rounded f32 operation, as in PyTorch, so the weights match its bit for bit for
//! the same number of sweeps. Sweeps over all pairs repeat until the summed L2 norm of the
//! weights' change in the last sweep is below the threshold; that sum is a float reduction
//! whose order differs from PyTorch's, so a case within rounding of the threshold could take
//! one sweep more or fewer. Two guards PyTorch lacks: a channel whose range is zero or not
//! finite keeps scale 1 (PyTorch would write NaN), and sweeps stop at [`MAX_SWEEPS`] with an
//! error (PyTorch would loop forever on NaN weights).

use super::WorkflowError;
use crate::graph::{Graph, Op};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis};
use std::collections::BTreeMap;

/// PyTorch's default convergence threshold.
pub const DEFAULT_THRESHOLD: f64 = 1e-4;

/// Sweeps before giving up; real models converge in a handful.
pub const MAX_SWEEPS: usize = 1000;

/// Two modules to equalize: `first`'s output channels feed `second`'s input channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub first: String,
    pub second: String,
}

/// A pair the automatic search saw but cannot equalize, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub first: String,
    pub second: String,
    pub reason: &'static str,
}

/// What [`equalize`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Equalized {
    pub sweeps: usize,
    /// Per pair, the largest ratio between two of `first`'s output-channel ranges, before and
    /// after: how uneven the channels were and are.
    pub spread: Vec<(Pair, f32, f32)>,
    /// Channels left at scale 1 because a range was zero or not finite (`first`, channel).
    pub kept: Vec<(String, usize)>,
}

/// The pairs of a (fused, BatchNorm-folded) graph that equalization applies to: a Conv or
/// Linear whose output goes only to a ReLU whose output goes only to a Conv or Linear, or
/// straight to one, with matching channels. Pairs through other ops are reported as skipped.
pub fn find_pairs(graph: &Graph) -> (Vec<Pair>, Vec<Skipped>) {
    let mut consumers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for input in &n.inputs {
            consumers.entry(input.as_str()).or_default().push(i);
        }
    }
    // The one node reading `value` (as its first operand), unless the graph also returns it.
    let only = |value: &str| match consumers.get(value).map(Vec::as_slice) {
        Some(&[i]) if !graph.outputs.iter().any(|o| o == value) => {
            (graph.nodes[i].inputs.first().map(String::as_str) == Some(value)).then_some(i)
        }
        _ => None,
    };
    let (mut pairs, mut skipped) = (Vec::new(), Vec::new());
    for first in &graph.nodes {
        if !is_weighted(&first.op) || first.outputs.len() != 1 {
            continue;
        }
        let Some(mut next) = only(&first.outputs[0]) else {
            continue;
        };
        let mut clipped = false;
        if matches!(graph.nodes[next].op, Op::Relu | Op::Clip { .. }) {
            clipped = matches!(graph.nodes[next].op, Op::Clip { .. });
            match graph.nodes[next].outputs.first().and_then(|v| only(v)) {
                Some(n) => next = n,
                None => continue,
            }
        }
        let second = &graph.nodes[next];
        if !is_weighted(&second.op) {
            continue;
        }
        let skip = |reason| Skipped {
            first: first.name.clone(),
            second: second.name.clone(),
            reason,
        };
        if clipped {
            // Scaling moves ReLU6's clip point: the float function would change.
            skipped.push(skip("a clip (ReLU6) between them is not scale-invariant"));
        } else if let Err(reason) = check_pair(&first.op, &second.op) {
            skipped.push(skip(reason));
        } else {
            pairs.push(Pair {
                first: first.name.clone(),
                second: second.name.clone(),
            });
        }
    }
    (pairs, skipped)
}

fn is_weighted(op: &Op) -> bool {
    matches!(op, Op::Linear(_)) || matches!(op, Op::Conv(c) if c.weight.ndim() <= 4)
}

/// Why PyTorch's `cross_layer_equalization` would refuse the pair, if it would.
fn check_pair(first: &Op, second: &Op) -> Result<(), &'static str> {
    let (out1, in2) = match (weight_shape(first), weight_shape(second)) {
        (Some(a), Some(b)) if b.len() >= 2 => (a[0], b[1]),
        _ => return Err("only Conv1d/Conv2d and Linear modules are equalized"),
    };
    // A Linear's features are its output's last axis, a conv's channels axis 1: a mixed pair
    // would scale unrelated channels even when the counts match.
    if matches!(first, Op::Conv(_)) != matches!(second, Op::Conv(_)) {
        return Err("a Conv pairs with a Conv and a Linear with a Linear");
    }
    if out1 != in2 {
        // A grouped (depthwise) second module reads one channel per group.
        return Err("the second module is grouped: its weight's input channels do not match");
    }
    Ok(())
}

fn weight_shape(op: &Op) -> Option<&[usize]> {
    match op {
        Op::Conv(c) if c.weight.ndim() <= 4 => Some(c.weight.shape()),
        Op::Linear(l) => Some(l.weight.shape()),
        _ => None,
    }
}

/// Equalizes `pairs` in order, sweeping until converged (`threshold`: PyTorch's, on the summed
/// L2 norm of the last sweep's weight changes). Pairs may chain (`a,b` then `b,c`), as PyTorch
/// expands a group of three.
pub fn equalize(
    graph: &mut Graph,
    pairs: &[Pair],
    threshold: f64,
) -> Result<Equalized, WorkflowError> {
    let invalid = |module: &str, problem: String| WorkflowError::Check {
        module: module.to_string(),
        problem,
        fix: "equalize pairs of Conv1d/Conv2d/Linear modules with only a ReLU between them".into(),
    };
    let index = |name: &str| -> Result<usize, WorkflowError> {
        graph
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| invalid(name, "no such module".into()))
    };
    let mut at = Vec::with_capacity(pairs.len());
    for p in pairs {
        let (a, b) = (index(&p.first)?, index(&p.second)?);
        if a == b {
            return Err(invalid(&p.first, "a module cannot pair with itself".into()));
        }
        check_pair(&graph.nodes[a].op, &graph.nodes[b].op).map_err(|e| {
            invalid(
                &p.first,
                format!("cannot equalize with '{}': {e}", p.second),
            )
        })?;
        for i in [a, b] {
            if weight_of(&graph.nodes[i].op).iter().any(|w| !w.is_finite()) {
                return Err(invalid(
                    &graph.nodes[i].name,
                    "a weight is NaN or infinite".into(),
                ));
            }
        }
        at.push((a, b));
    }
    let spread_before: Vec<f32> = at
        .iter()
        .map(|&(a, _)| spread(&graph.nodes[a].op))
        .collect();

    // The weights before each module's latest equalization (PyTorch's `previous_name_to_module`).
    let mut previous: BTreeMap<usize, ArrayD<f32>> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut sweeps = 0;
    while !converged(graph, &at, &previous, threshold) {
        if sweeps == MAX_SWEEPS {
            return Err(invalid(
                &graph.nodes[at[0].0].name,
                format!("equalization did not converge in {MAX_SWEEPS} sweeps"),
            ));
        }
        kept.clear();
        for &(a, b) in &at {
            previous.insert(a, weight_of(&graph.nodes[a].op).to_owned());
            previous.insert(b, weight_of(&graph.nodes[b].op).to_owned());
            let (first, second) = two_mut(&mut graph.nodes, a, b);
            for c in equalize_pair(&mut first.op, &mut second.op) {
                kept.push((first.name.clone(), c));
            }
        }
        sweeps += 1;
    }
    let spread = pairs
        .iter()
        .zip(&at)
        .zip(spread_before)
        .map(|((p, &(a, _)), before)| (p.clone(), before, spread(&graph.nodes[a].op)))
        .collect();
    Ok(Equalized {
        sweeps,
        spread,
        kept,
    })
}

/// PyTorch's `converged`: every module has a previous state and the summed L2 norms of the
/// differences are below the threshold.
fn converged(
    graph: &Graph,
    at: &[(usize, usize)],
    previous: &BTreeMap<usize, ArrayD<f32>>,
    threshold: f64,
) -> bool {
    let mut sum = 0.0f64;
    for i in at
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .collect::<std::collections::BTreeSet<_>>()
    {
        let Some(prev) = previous.get(&i) else {
            return false;
        };
        let now = weight_of(&graph.nodes[i].op);
        sum += now
            .iter()
            .zip(prev)
            .map(|(&x, &y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt();
    }
    sum < threshold
}

/// One `cross_layer_equalization`; returns the channels left unscaled.
fn equalize_pair(first: &mut Op, second: &mut Op) -> Vec<usize> {
    let range1 = channel_range(&weight_of(first), 0);
    let range2 = channel_range(&weight_of(second), 1);
    let mut kept = Vec::new();
    let scale: Vec<f32> = range1
        .iter()
        .zip(&range2)
        .enumerate()
        .map(|(c, (&r1, &r2))| {
            let s = (r1 / (r2 + 1e-9f32)).sqrt();
            if s > 0.0 && s.is_finite() && (1.0 / s).is_finite() {
                s
            } else {
                kept.push(c);
                1.0
            }
        })
        .collect();
    let inverse: Vec<f32> = scale.iter().map(|s| 1.0 / s).collect();
    let (w1, bias) = weight_mut(first);
    scale_along(w1, 0, &inverse);
    if let Some(b) = bias {
        b.iter_mut().zip(&inverse).for_each(|(b, i)| *b *= i);
    }
    scale_along(weight_mut(second).0, 1, &scale);
    kept
}

fn scale_along(mut w: ArrayViewMutD<f32>, axis: usize, by: &[f32]) {
    for (mut lane, &s) in w.axis_iter_mut(Axis(axis)).zip(by) {
        lane.mapv_inplace(|v| v * s);
    }
}

/// Max − min of each channel along `axis`.
fn channel_range(w: &ArrayViewD<f32>, axis: usize) -> Vec<f32> {
    w.axis_iter(Axis(axis))
        .map(|lane| {
            let (lo, hi) = lane
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            hi - lo
        })
        .collect()
}

/// The largest over the smallest nonzero output-channel range: 1 when channels are even.
fn spread(op: &Op) -> f32 {
    let r = channel_range(&weight_of(op), 0);
    let max = r.iter().copied().fold(0.0f32, f32::max);
    let min = r
        .iter()
        .copied()
        .filter(|&v| v > 0.0)
        .fold(f32::INFINITY, f32::min);
    if min.is_finite() { max / min } else { 1.0 }
}

/// The module's weight, borrowed (empty for an op without one).
fn weight_of(op: &Op) -> ArrayViewD<'_, f32> {
    match op {
        Op::Conv(c) => c.weight.view(),
        Op::Linear(l) => l.weight.view().into_dyn(),
        _ => ArrayViewD::from_shape(vec![0], &[]).expect("an empty view"),
    }
}

fn weight_mut(op: &mut Op) -> (ArrayViewMutD<'_, f32>, Option<&mut ndarray::Array1<f32>>) {
    match op {
        Op::Conv(c) => (c.weight.view_mut(), c.bias.as_mut()),
        Op::Linear(l) => (l.weight.view_mut().into_dyn(), l.bias.as_mut()),
        _ => unreachable!("check_pair admits only Conv and Linear"),
    }
}

/// Two distinct elements of a slice, mutably.
fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b, "a module cannot pair with itself");
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}
