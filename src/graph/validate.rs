//! Checks a graph before anything runs it, whatever built it (the ONNX importer, the native
//! loader, a fusion): every op's parameters against what its kernel assumes, and the structure
//! (unique names, each value written once, every read produced by an earlier node, fusions
//! naming real modules). A file can hold any value; after these checks no kernel, fold or
//! workflow step meets one it would index out of range, divide by zero or overflow on.

use super::{Graph, GraphError, Node, Op, PoolParams, budget};
use std::collections::{HashMap, HashSet};

/// The largest stride, dilation, pad, pool kernel or LSTM hidden size accepted: far above any
/// exported network (ONNX sets no bound), far below sizes whose arithmetic could overflow.
pub const MAX_GEOMETRY: usize = 1 << 16;

/// What is wrong with one op: the parameter (ONNX attribute or PyTorch parameter name) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: &'static str,
    pub detail: String,
}

fn problem(field: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        field,
        detail: detail.into(),
    }
}

/// A geometry list: `len` entries, each within `low..=MAX_GEOMETRY`.
pub fn geometry_list(
    field: &'static str,
    v: &[usize],
    len: usize,
    low: usize,
) -> Result<(), Problem> {
    if v.len() != len {
        return Err(problem(
            field,
            format!("{v:?} has {} entries, expected {len}", v.len()),
        ));
    }
    match v.iter().find(|&&x| !(low..=MAX_GEOMETRY).contains(&x)) {
        Some(x) => Err(problem(
            field,
            format!("value {x} in {v:?} is outside {low}..={MAX_GEOMETRY}"),
        )),
        None => Ok(()),
    }
}

fn length(field: &'static str, got: usize, want: usize) -> Result<(), Problem> {
    if got == want {
        Ok(())
    } else {
        Err(problem(field, format!("{got} entries, expected {want}")))
    }
}

fn finite(field: &'static str, v: f32) -> Result<(), Problem> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(problem(field, format!("{v} is not finite")))
    }
}

/// Clip bounds `f32::clamp` accepts: no NaN, `min <= max`; an infinite bound only on its open
/// side.
pub fn clip_bounds(min: f32, max: f32) -> Result<(), Problem> {
    if min.is_nan() || max.is_nan() || min > max || min == f32::INFINITY || max == f32::NEG_INFINITY
    {
        return Err(problem(
            "min/max",
            format!("[{min}, {max}] (need min <= max, not NaN, min < inf, max > -inf)"),
        ));
    }
    Ok(())
}

/// Pool geometry: 1 to 3 spatial dims, bounded lists, and no window wholly in the padding (it
/// would have no input: onnxruntime's rule too); average pooling is not dilated.
pub fn pool(p: &PoolParams, max: bool) -> Result<(), Problem> {
    let spatial = p.kernel.len();
    if !(1..=3).contains(&spatial) {
        return Err(problem(
            "kernel_shape",
            "missing, or not 1 to 3 spatial dims",
        ));
    }
    geometry_list("kernel_shape", &p.kernel, spatial, 1)?;
    geometry_list("strides", &p.stride, spatial, 1)?;
    geometry_list("dilations", &p.dilation, spatial, 1)?;
    geometry_list("pads", &p.pad_begin, spatial, 0)?;
    geometry_list("pads", &p.pad_end, spatial, 0)?;
    for d in 0..spatial {
        let span = p.dilation[d] * (p.kernel[d] - 1) + 1;
        if p.pad_begin[d] >= span || p.pad_end[d] >= span {
            return Err(problem(
                "pads",
                format!(
                    "{:?} must each be below the window extent {span} of dim {d}",
                    [p.pad_begin[d], p.pad_end[d]]
                ),
            ));
        }
    }
    if !max && p.dilation.iter().any(|&d| d != 1) {
        return Err(problem("dilations", "dilated average pooling"));
    }
    Ok(())
}

/// How many outputs the op writes: an exact count, or LSTM's 1 to 3 (`Y`, `Y_h`, `Y_c`).
fn output_count(op: &Op) -> std::ops::RangeInclusive<usize> {
    match op {
        Op::Lstm(_) => 1..=3,
        Op::Split { outputs, .. } => *outputs..=*outputs,
        _ => 1..=1,
    }
}

/// Checks one op's parameters and its output count.
pub fn op(op: &Op, outputs: usize) -> Result<(), Problem> {
    let range = output_count(op);
    if !range.contains(&outputs) {
        return Err(problem(
            "outputs",
            format!("{outputs} outputs, expected {range:?}"),
        ));
    }
    match op {
        Op::Conv(c) => {
            let shape = c.weight.shape();
            if !(3..=5).contains(&shape.len()) || shape.contains(&0) {
                return Err(problem(
                    "weight",
                    format!(
                        "shape {shape:?} (need [out, in/groups, k...] with 1 to 3 spatial dims, none empty)"
                    ),
                ));
            }
            let spatial = shape.len() - 2;
            geometry_list("strides", &c.stride, spatial, 1)?;
            geometry_list("dilations", &c.dilation, spatial, 1)?;
            geometry_list("pads", &c.pad_begin, spatial, 0)?;
            geometry_list("pads", &c.pad_end, spatial, 0)?;
            geometry_list("kernel_shape", &shape[2..], spatial, 1)?;
            if c.groups == 0 || !shape[0].is_multiple_of(c.groups) {
                return Err(problem(
                    "group",
                    format!("{} does not divide {} output channels", c.groups, shape[0]),
                ));
            }
            if let Some(b) = &c.bias {
                length("bias", b.len(), shape[0])?;
            }
        }
        Op::Linear(l) => {
            if l.weight.is_empty() {
                return Err(problem(
                    "weight",
                    format!("empty shape {:?}", l.weight.shape()),
                ));
            }
            if let Some(b) = &l.bias {
                length("bias", b.len(), l.weight.nrows())?;
            }
        }
        Op::BatchNorm(b) => {
            let c = b.weight.len();
            length("bias", b.bias.len(), c)?;
            length("running_mean", b.running_mean.len(), c)?;
            length("running_var", b.running_var.len(), c)?;
            finite("epsilon", b.eps)?;
            finite("momentum", b.momentum)?;
            if b.eps < 0.0 {
                return Err(problem("epsilon", format!("{} is negative", b.eps)));
            }
        }
        Op::Lstm(l) => {
            let h = l.hidden_size;
            if !(1..=MAX_GEOMETRY).contains(&h) {
                return Err(problem(
                    "hidden_size",
                    format!("{h} is outside 1..={MAX_GEOMETRY}"),
                ));
            }
            if !(1..=2).contains(&l.directions.len()) {
                return Err(problem("direction", "1 (forward) or 2 (bidirectional)"));
            }
            let input = l.directions[0].w_ih.ncols();
            for d in &l.directions {
                if d.w_ih.shape() != [4 * h, input] || input == 0 {
                    return Err(problem(
                        "W",
                        format!(
                            "weight_ih of shape {:?}, expected [{}, {input}]",
                            d.w_ih.shape(),
                            4 * h
                        ),
                    ));
                }
                if d.w_hh.shape() != [4 * h, h] {
                    return Err(problem(
                        "R",
                        format!(
                            "weight_hh of shape {:?}, expected [{}, {h}]",
                            d.w_hh.shape(),
                            4 * h
                        ),
                    ));
                }
                length("B", d.b_ih.len(), 4 * h)?;
                length("B", d.b_hh.len(), 4 * h)?;
            }
        }
        Op::Clip { min, max } => clip_bounds(*min, *max)?,
        Op::MaxPool(p) => pool(p, true)?,
        Op::AvgPool(p) => pool(p, false)?,
        Op::LayerNorm(n) => {
            finite("epsilon", n.eps)?;
            if let Some(b) = n.bias.as_ref().filter(|b| b.shape() != n.weight.shape()) {
                return Err(problem(
                    "bias",
                    format!(
                        "shape {:?}, the scale's is {:?}",
                        b.shape(),
                        n.weight.shape()
                    ),
                ));
            }
        }
        Op::Transpose { perm } => {
            let mut seen = vec![false; perm.len()];
            for &p in perm {
                match seen.get_mut(p) {
                    Some(s) if !*s => *s = true,
                    _ => return Err(problem("perm", format!("{perm:?} is not a permutation"))),
                }
            }
        }
        Op::Split { sizes, outputs, .. } => {
            if *outputs == 0 {
                return Err(problem("outputs", "a Split needs at least one output"));
            }
            if let Some(s) = sizes {
                length("split", s.len(), *outputs)?;
            }
        }
        Op::ConstantOfShape { value } if value.shape().iter().product::<usize>() != 1 => {
            return Err(problem(
                "value",
                format!("shape {:?}, expected one element", value.shape()),
            ));
        }
        Op::Unary(super::Unary::HardSigmoid { alpha, beta }) => {
            finite("alpha", *alpha)?;
            finite("beta", *beta)?;
        }
        _ => {}
    }
    Ok(())
}

fn invalid(node: &str, detail: impl Into<String>) -> GraphError {
    GraphError::Invalid {
        node: node.to_string(),
        detail: detail.into(),
    }
}

/// Checks every op and the graph's structure; the first problem is returned, naming its node
/// (or the graph input, output or fusion it concerns).
pub fn graph(g: &Graph) -> Result<(), GraphError> {
    // Values known before any node runs.
    let mut defined: HashSet<&str> = g.constants.keys().map(String::as_str).collect();
    for i in &g.inputs {
        if i.name.is_empty() || !defined.insert(i.name.as_str()) {
            return Err(GraphError::BadInput {
                input: i.name.clone(),
                detail: "empty or duplicate input name".into(),
            });
        }
        let dims: Vec<usize> = i.shape.iter().map(|d| d.unwrap_or(1)).collect();
        let what = format!("declared input shape {:?}", i.shape);
        budget::check_bytes(&i.name, &what, budget::bytes_of(&dims, 4))?;
    }
    // Where each node output is written, so a read of a later one is reported as such.
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (k, n) in g.nodes.iter().enumerate() {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            writer.entry(o.as_str()).or_insert(k);
        }
    }
    let mut names: HashSet<&str> = HashSet::new();
    for (k, n) in g.nodes.iter().enumerate() {
        check_node(n)?;
        if !names.insert(n.name.as_str()) {
            return Err(invalid(&n.name, "two nodes have this name"));
        }
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            if defined.contains(i.as_str()) {
                continue;
            }
            return Err(match writer.get(i.as_str()) {
                Some(&w) if w >= k => invalid(
                    &n.name,
                    format!(
                        "reads '{i}', written by node '{}' at or after it (a cycle, or nodes out of order)",
                        g.nodes[w].name
                    ),
                ),
                _ => GraphError::Dangling {
                    node: n.name.clone(),
                    value: i.clone(),
                },
            });
        }
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            if !defined.insert(o.as_str()) {
                return Err(invalid(
                    &n.name,
                    format!("writes '{o}', which is already a constant, input or node output"),
                ));
            }
        }
    }
    if g.outputs.is_empty() {
        return Err(invalid("<graph output>", "the graph has no outputs"));
    }
    if let Some(o) = g.outputs.iter().find(|o| !defined.contains(o.as_str())) {
        return Err(GraphError::Dangling {
            node: "<graph output>".into(),
            value: o.clone(),
        });
    }
    check_fusions(g, &names)
}

fn check_node(n: &Node) -> Result<(), GraphError> {
    if n.name.is_empty() {
        return Err(invalid(
            "<unnamed>",
            format!("a {} node has no name", n.op.kind()),
        ));
    }
    if n.outputs.first().is_none_or(String::is_empty) {
        return Err(invalid(&n.name, "the node has no output"));
    }
    op(&n.op, n.outputs.len()).map_err(|p| invalid(&n.name, format!("{}: {}", p.field, p.detail)))
}

/// Every fusion lists two or more modules with one class each, none in two fusions; its first
/// module is a node, and the others are nodes too except a BatchNorm an eval fusion folded away.
fn check_fusions(g: &Graph, names: &HashSet<&str>) -> Result<(), GraphError> {
    let mut fused: HashSet<&str> = HashSet::new();
    for f in &g.fusions {
        let at = format!("<fusion [{}]>", f.modules.join(", "));
        if f.modules.len() < 2 || f.types.len() != f.modules.len() {
            return Err(invalid(
                &at,
                format!(
                    "{} modules and {} classes (a fusion joins two or more modules, one class each)",
                    f.modules.len(),
                    f.types.len()
                ),
            ));
        }
        for (i, (m, t)) in f.modules.iter().zip(&f.types).enumerate() {
            let folded = i > 0 && !f.qat && t.starts_with("BatchNorm");
            if !names.contains(m.as_str()) && !folded {
                return Err(invalid(
                    &at,
                    format!("names module '{m}' ({t}), which is not in the graph"),
                ));
            }
            if !fused.insert(m.as_str()) {
                return Err(invalid(&at, format!("module '{m}' is in two fusions")));
            }
        }
    }
    Ok(())
}
