//! ONNX import of models exported by `torch.onnx.export` (opset 11–19).
//!
//! The importer walks the nodes in order with a table of constants (initializers, `Constant`
//! nodes): a node whose operands are all constant is evaluated on the spot (exporters emit
//! Slice/Concat/Unsqueeze chains around LSTM weights), module ops absorb their constant weights,
//! and what remains becomes graph nodes named by PyTorch module path. BatchNormalization stays a
//! BN node: folding it is fusion's job, not import's.

mod attrs;
mod convert;
/// The generated ONNX protobuf types (public so tools and tests can build models).
#[allow(clippy::all, missing_docs)]
pub mod proto;
mod tensor;

use super::{ImportError, module_path};
use crate::graph::{Graph, GraphInput, Node, Op, Value, ops};
use attrs::Attrs;
use convert::{Operands, convert};
use prost::Message;
use proto::{ModelProto, NodeProto};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Reads and imports an ONNX file.
pub fn load_onnx(path: &Path) -> Result<Graph, ImportError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: shown.clone(),
        source,
    })?;
    import_onnx_bytes(&bytes, &shown)
}

/// Imports an ONNX model from memory; `origin` names it in errors.
pub fn import_onnx_bytes(bytes: &[u8], origin: &str) -> Result<Graph, ImportError> {
    let corrupt = |detail: String| ImportError::Corrupt {
        path: origin.to_string(),
        detail,
    };
    let model = ModelProto::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
        .and_then(|o| o.version)
        .ok_or_else(|| corrupt("no default-domain opset".into()))?;
    let g = model.graph.ok_or_else(|| corrupt("no graph".into()))?;

    let mut consts: HashMap<String, Value> = HashMap::new();
    for init in &g.initializer {
        consts.insert(
            init.name.clone().unwrap_or_default(),
            tensor::to_value(init)?,
        );
    }
    let inputs: Vec<GraphInput> = g
        .input
        .iter()
        .filter(|i| !consts.contains_key(i.name.as_deref().unwrap_or("")))
        .map(|i| GraphInput {
            name: i.name.clone().unwrap_or_default(),
            shape: input_shape(i),
        })
        .collect();
    if inputs.is_empty() {
        return Err(corrupt("the graph has no inputs".into()));
    }

    let mut known: HashSet<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut emitted: Vec<(Option<String>, Node)> = Vec::new();
    for (k, node) in g.node.iter().enumerate() {
        let shown = node
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{}_{k}", node.op_type.as_deref().unwrap_or("node")));
        let attrs = Attrs::new(node, &shown);
        if let Some(d) = node
            .domain
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "ai.onnx")
        {
            return Err(ImportError::UnsupportedOp {
                node: shown,
                op_type: format!("{d}::{}", attrs.op_type),
            });
        }
        if attrs.op_type == "Constant" {
            let value = constant_value(&attrs)?;
            consts.insert(node.output.first().cloned().unwrap_or_default(), value);
            continue;
        }
        check_inputs(node, &attrs, &consts, &known)?;
        let c = convert(
            &Operands {
                node,
                attrs: &attrs,
                consts: &consts,
            },
            opset,
        )?;
        let graph_node = Node {
            name: shown.clone(),
            op: c.op,
            inputs: c.inputs,
            outputs: node.output.clone(),
        };
        let foldable = !is_module(&graph_node.op)
            && graph_node
                .inputs
                .iter()
                .all(|i| i.is_empty() || consts.contains_key(i));
        if foldable {
            let args: Vec<Option<&Value>> =
                graph_node.inputs.iter().map(|i| consts.get(i)).collect();
            let outs = ops::eval(&graph_node, &args)?;
            for (name, v) in graph_node.outputs.iter().zip(outs) {
                consts.insert(name.clone(), v);
            }
        } else {
            known.extend(graph_node.outputs.iter().cloned());
            emitted.push((module_path(&shown), graph_node));
        }
    }
    merge_linear_bias(&mut emitted, &consts);
    let nodes = assign_names(emitted);
    let outputs: Vec<String> = g
        .output
        .iter()
        .map(|o| o.name.clone().unwrap_or_default())
        .collect();
    let used: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .chain(outputs.iter().map(String::as_str))
        .collect();
    let constants: BTreeMap<String, Value> = consts
        .into_iter()
        .filter(|(k, _)| used.contains(k.as_str()))
        .collect();
    let graph = Graph {
        inputs,
        outputs,
        nodes,
        constants,
        fusions: Vec::new(),
    };
    Ok(crate::graph::settle_batch(graph).0)
}

fn input_shape(i: &proto::ValueInfoProto) -> Vec<Option<usize>> {
    use proto::tensor_shape_proto::dimension::Value as Dim;
    use proto::type_proto::Value as Ty;
    match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Ty::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Dim::DimValue(v)) if v > 0 => Some(v as usize),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn constant_value(a: &Attrs) -> Result<Value, ImportError> {
    use ndarray::{ArrayD, IxDyn};
    if let Some(t) = a.tensor("value")? {
        return Ok(t);
    }
    if let Some(v) = a.ints("value_ints") {
        return Ok(Value::I64(
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-d"),
        ));
    }
    if a.ints("value_int").is_some() || a.string("value_int").is_some() {
        return Ok(Value::I64(ArrayD::from_elem(
            IxDyn(&[]),
            a.int("value_int", 0),
        )));
    }
    Err(a.unsupported(
        "value",
        "Constant without a tensor, value_int or value_ints",
    ))
}

fn check_inputs(
    node: &NodeProto,
    a: &Attrs,
    consts: &HashMap<String, Value>,
    known: &HashSet<String>,
) -> Result<(), ImportError> {
    match node
        .input
        .iter()
        .find(|i| !i.is_empty() && !consts.contains_key(*i) && !known.contains(*i))
    {
        Some(missing) => Err(ImportError::MissingInput {
            node: a.node.clone(),
            op_type: a.op_type.clone(),
            input: missing.clone(),
        }),
        None => Ok(()),
    }
}

/// Ops that own weights: never folded, and the op that names its module scope.
fn is_module(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_) | Op::Lstm(_) | Op::LayerNorm(_)
    )
}

/// `x·W` exported as MatMul + Add (a Linear on a 3-d input) becomes one Linear with its bias.
fn merge_linear_bias(nodes: &mut Vec<(Option<String>, Node)>, consts: &HashMap<String, Value>) {
    let mut i = 0;
    while i < nodes.len() {
        let merged = (|| {
            let (scope, add) = &nodes[i];
            if !matches!(add.op, Op::Add) || add.inputs.len() != 2 {
                return None;
            }
            let (data, bias_name) = if consts.contains_key(&add.inputs[0]) {
                (&add.inputs[1], &add.inputs[0])
            } else {
                (&add.inputs[0], &add.inputs[1])
            };
            let Some(Value::F32(bias)) = consts.get(bias_name) else {
                return None;
            };
            let j = nodes[..i]
                .iter()
                .rposition(|(s, n)| n.outputs.first() == Some(data) && s == scope)?;
            let readers = nodes
                .iter()
                .filter(|(_, n)| n.inputs.contains(data))
                .count();
            match &nodes[j].1.op {
                Op::Linear(l)
                    if l.bias.is_none() && readers == 1 && bias.len() == l.weight.nrows() =>
                {
                    Some((
                        j,
                        bias.iter().copied().collect::<ndarray::Array1<f32>>(),
                        add.outputs.clone(),
                    ))
                }
                _ => None,
            }
        })();
        match merged {
            Some((j, bias, outputs)) => {
                if let Op::Linear(l) = &mut nodes[j].1.op {
                    l.bias = Some(bias);
                }
                nodes[j].1.outputs = outputs;
                nodes.remove(i);
            }
            None => i += 1,
        }
    }
}

/// Names nodes by module path: the module op of a scope takes the path; other nodes in a
/// multi-node scope get `path.op`; root-level nodes get `op`; duplicates get `_1`, `_2`, ...
fn assign_names(nodes: Vec<(Option<String>, Node)>) -> Vec<Node> {
    let mut per_scope: HashMap<String, (usize, bool)> = HashMap::new();
    for (scope, node) in &nodes {
        if let Some(s) = scope {
            let e = per_scope.entry(s.clone()).or_default();
            e.0 += 1;
            e.1 |= is_module(&node.op);
        }
    }
    let mut taken: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(nodes.len());
    for (scope, mut node) in nodes {
        let kind = node.op.kind().to_ascii_lowercase();
        let base = match &scope {
            Some(s) => {
                let (count, has_module) = per_scope[s];
                if count == 1 || (has_module && is_module(&node.op)) {
                    s.clone()
                } else {
                    format!("{s}.{kind}")
                }
            }
            None => kind,
        };
        let mut name = base.clone();
        let mut k = 1;
        while !taken.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        node.name = name;
        out.push(node);
    }
    out
}
