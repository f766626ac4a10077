//! Comparison with a reference int8 model: PyTorch's per-module outputs (int_repr, scale, zero
//! point) and output qparams, as `../shared/zoo/gen.py`-style dumps hold them, against the
//! converted model's own on the same sample — to find the first layer where qlab and the
//! reference part, and by how much.
//!
//! Names: a dump names PyTorch modules. qlab's nodes carry module paths, so most match
//! exactly; a `FloatFunctional` (`features.1.skip_add`, `stage2.0.cat`) is a method call the
//! exporter names after its parent (`features.1.add`, or `features.1` itself), so a reference
//! functional with no node of its own is matched to the next unmatched quantized add / mul /
//! cat named so, in execution order (the order a dump's forward hooks fired). Its observer's
//! output is dumped as `PATH.activation_post_process`, which names `PATH`.

use super::AnalysisError;
use crate::graph::{Graph, Value};
use crate::import::npz::read_npz;
use crate::tensor::QTensor;
use crate::workflow::{QOp, QValue, QuantizedModel};
use ndarray::ArrayD;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One module's output in the reference dump.
#[derive(Debug, Clone)]
pub struct RefOutput {
    pub module: String,
    pub ints: ArrayD<i64>,
    pub scale: f64,
    pub zero_point: i64,
}

/// One module's output qparams in the reference (a `NAME_qparams.json` entry).
#[derive(Debug, Clone)]
pub struct RefQParams {
    pub module: String,
    pub type_name: String,
    pub scale: f64,
    pub zero_point: i64,
}

impl RefQParams {
    /// Whether the reference module is a functional wrapper (PyTorch's `FloatFunctional`, or
    /// the `QFunctional` it converts to).
    pub fn is_functional(&self) -> bool {
        self.type_name.ends_with("Functional")
    }
}

/// How one reference module compares.
#[derive(Debug, Clone, PartialEq)]
pub struct RefRow {
    /// The reference module path.
    pub module: String,
    /// The qlab node it matched, with that node's quantized op.
    pub node: Option<(String, &'static str)>,
    pub ref_scale: f64,
    pub ref_zero_point: i64,
    /// qlab's output qparams, when the node's output is quantized.
    pub scale: Option<f64>,
    pub zero_point: Option<i64>,
    /// Elements compared (0 when the reference holds qparams only, or shapes differ).
    pub count: u64,
    pub differing: u64,
    /// Largest integer difference.
    pub max_lsb: i64,
    /// Why the outputs were not compared, if they were not.
    pub note: Option<String>,
}

impl RefRow {
    /// True when qlab's qparams and integers are the reference's.
    pub fn agrees(&self) -> bool {
        self.node.is_some()
            && self.note.is_none()
            && self.scale.map(f64::to_bits) == Some(self.ref_scale.to_bits())
            && self.zero_point == Some(self.ref_zero_point)
            && self.differing == 0
    }

    /// True when the module has no quantized counterpart in qlab's graph.
    pub fn unmatched(&self) -> bool {
        self.node.is_none()
    }
}

fn bad(path: &Path, detail: impl Into<String>) -> AnalysisError {
    AnalysisError::Reference {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Reads a layer dump (`.npz`: `PATH` int_repr, `PATH:scale`, `PATH:zero_point`), in order.
pub fn read_layer_dump(path: &Path) -> Result<Vec<RefOutput>, AnalysisError> {
    let members = read_npz(path).map_err(|e| bad(path, e.to_string()))?;
    let by_name: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.as_str(), i))
        .collect();
    let scalar = |name: &str| -> Result<f64, AnalysisError> {
        let m = &members[*by_name
            .get(name)
            .ok_or_else(|| bad(path, format!("member '{name}' is missing")))?];
        let a = m.f64().map_err(|e| bad(path, e.to_string()))?;
        match a.iter().next() {
            Some(v) if a.len() == 1 => Ok(*v),
            _ => Err(bad(path, format!("member '{name}' is not a scalar"))),
        }
    };
    let mut out = Vec::new();
    for m in members.iter().filter(|m| !m.name.contains(':')) {
        let ints = match m.value().map_err(|e| bad(path, e.to_string()))? {
            Value::I64(a) => a,
            Value::F32(_) => {
                return Err(bad(
                    path,
                    format!("member '{}' is float, not an int_repr", m.name),
                ));
            }
        };
        let scale = scalar(&format!("{}:scale", m.name))?;
        let zp = scalar(&format!("{}:zero_point", m.name))?;
        if !(scale.is_finite() && scale > 0.0) || zp.fract() != 0.0 {
            return Err(bad(
                path,
                format!("member '{}' has qparams ({scale}, {zp})", m.name),
            ));
        }
        out.push(RefOutput {
            module: m.name.clone(),
            ints,
            scale,
            zero_point: zp as i64,
        });
    }
    Ok(out)
}

/// Reads a qparams file: a JSON object `{module: {type, scale, zero_point}}`.
pub fn read_qparams(path: &Path) -> Result<Vec<RefQParams>, AnalysisError> {
    let text = crate::fsutil::read_text_bounded(path).map_err(|e| bad(path, e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(path, format!("not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad(path, "expected an object of modules"))?;
    obj.iter()
        .map(|(module, v)| {
            let scale = v["scale"].as_f64().filter(|s| s.is_finite() && *s > 0.0);
            let zp = v["zero_point"].as_i64();
            match (scale, zp) {
                (Some(scale), Some(zero_point)) => Ok(RefQParams {
                    module: module.clone(),
                    type_name: v["type"].as_str().unwrap_or("?").to_string(),
                    scale,
                    zero_point,
                }),
                _ => Err(bad(
                    path,
                    format!("module '{module}': needs a positive scale and an integer zero_point"),
                )),
            }
        })
        .collect()
}

/// The child a dump names a `FloatFunctional`'s output by (its observer).
const OBSERVER_SUFFIX: &str = ".activation_post_process";

/// Strips the observer suffix a dump gives a `FloatFunctional`'s output.
fn module_of(name: &str) -> &str {
    name.strip_suffix(OBSERVER_SUFFIX).unwrap_or(name)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(p, _)| p)
}

/// Matches reference module names (in order; each with whether the reference says it is a
/// `FloatFunctional`) to node indices of `graph` (module docs): `quantized(i)` says whether node
/// `i` has a quantized output, `functional(i)` whether it is a quantized add / mul / cat a
/// reference `FloatFunctional` can stand for. Other modules match by exact path only (a BN that
/// fusion folded away has no node, and must not take a neighbour's).
pub fn match_modules(
    graph: &Graph,
    names: &[(&str, bool)],
    quantized: impl Fn(usize) -> bool,
    functional: impl Fn(usize) -> bool,
) -> Vec<Option<usize>> {
    let index: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| quantized(*i))
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut taken: HashSet<usize> = HashSet::new();
    // Exact names first, so a functional is never matched to a node another name owns.
    let mut out: Vec<Option<usize>> = names
        .iter()
        .map(|(n, _)| {
            let i = index.get(module_of(n)).copied()?;
            taken.insert(i).then_some(i)
        })
        .collect();
    for (k, &(name, is_functional)) in names.iter().enumerate() {
        if out[k].is_some() || !is_functional {
            continue;
        }
        let scope = parent(module_of(name));
        // The exporter names a method call after its parent module: `P.add`, or `P` itself.
        let under = |n: &str| n == scope || parent(n) == scope;
        let hit = (0..graph.nodes.len())
            .find(|&i| functional(i) && under(&graph.nodes[i].name) && !taken.contains(&i));
        if let Some(i) = hit {
            taken.insert(i);
            out[k] = Some(i);
        }
    }
    out
}

/// [`match_modules`] on a converted model.
fn match_nodes(model: &QuantizedModel, names: &[(&str, bool)]) -> Vec<Option<usize>> {
    match_modules(
        &model.graph,
        names,
        |i| !matches!(model.ops[i], QOp::Float | QOp::DeQuantize),
        |i| {
            matches!(
                model.ops[i],
                QOp::Add(_) | QOp::AddRelu(_) | QOp::Mul(_) | QOp::Cat(_)
            )
        },
    )
}

fn per_tensor(q: &QTensor) -> Option<(f64, i64)> {
    Some((q.q_scale().ok()?, q.q_zero_point().ok()?))
}

/// Runs `model` on `x` (one sample) and compares every reference module: the dump's outputs
/// in its order, then the qparams-only modules (functionals a leaf-module dump cannot hold).
pub fn compare_reference(
    model: &QuantizedModel,
    x: Value,
    outputs: &[RefOutput],
    qparams: &[RefQParams],
) -> Result<Vec<RefRow>, AnalysisError> {
    let mut ours: HashMap<usize, QTensor> = HashMap::new();
    let index: HashMap<&str, usize> = model
        .graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    model
        .run(vec![x], |node, values| {
            if let Some(QValue::Quant(q)) = values.first() {
                ours.insert(index[node.name.as_str()], q.clone());
            }
        })
        .map_err(|e| AnalysisError::Model {
            detail: e.to_string(),
        })?;
    let dumped: HashSet<&str> = outputs.iter().map(|o| module_of(&o.module)).collect();
    let extra: Vec<&RefQParams> = qparams
        .iter()
        .filter(|q| !dumped.contains(q.module.as_str()))
        .collect();
    let names: Vec<(&str, bool)> = outputs
        .iter()
        .map(|o| (o.module.as_str(), o.module.ends_with(OBSERVER_SUFFIX)))
        .chain(extra.iter().map(|q| (q.module.as_str(), q.is_functional())))
        .collect();
    let matched = match_nodes(model, &names);
    let row =
        |module: &str, slot: Option<usize>, scale: f64, zp: i64, ints: Option<&ArrayD<i64>>| {
            let mut r = RefRow {
                module: module.to_string(),
                node: slot.map(|i| (model.graph.nodes[i].name.clone(), model.ops[i].kind())),
                ref_scale: scale,
                ref_zero_point: zp,
                scale: None,
                zero_point: None,
                count: 0,
                differing: 0,
                max_lsb: 0,
                note: None,
            };
            let Some(i) = slot else {
                r.note = Some("no quantized node in qlab's graph (folded or fused away?)".into());
                return r;
            };
            let Some(q) = ours.get(&i) else {
                r.note = Some("qlab's node output is not quantized".into());
                return r;
            };
            if let Some((s, z)) = per_tensor(q) {
                r.scale = Some(s);
                r.zero_point = Some(z);
            }
            if let Some(want) = ints {
                if want.shape() != q.shape() {
                    r.note = Some(format!(
                        "shape {:?}, reference {:?}",
                        q.shape(),
                        want.shape()
                    ));
                    return r;
                }
                for (a, b) in q.int_values().iter().zip(want.iter()) {
                    let d = (*a as i64 - b).abs();
                    r.count += 1;
                    r.differing += (d != 0) as u64;
                    r.max_lsb = r.max_lsb.max(d);
                }
            }
            r
        };
    let mut rows: Vec<RefRow> = outputs
        .iter()
        .zip(&matched)
        .map(|(o, &m)| {
            row(
                module_of(&o.module),
                m,
                o.scale,
                o.zero_point,
                Some(&o.ints),
            )
        })
        .collect();
    rows.extend(
        extra
            .iter()
            .zip(&matched[outputs.len()..])
            .map(|(q, &m)| row(&q.module, m, q.scale, q.zero_point, None)),
    );
    Ok(rows)
}

/// The first row (in reference order) whose qparams or integers differ from qlab's.
pub fn first_divergence(rows: &[RefRow]) -> Option<&RefRow> {
    rows.iter().find(|r| !r.unmatched() && !r.agrees())
}
