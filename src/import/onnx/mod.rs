//! ONNX import of models exported by `torch.onnx.export` (opset 11–20 tested; 7–28 read),
//! legacy or dynamo.
//!
//! The importer walks the nodes in order with a table of constants (initializers, `Constant`
//! nodes): a node whose operands are all constant is evaluated on the spot (exporters emit
//! Slice/Concat/Unsqueeze chains around LSTM weights), module ops absorb their constant weights,
//! and what remains becomes graph nodes named by PyTorch module path (see [`scope`]).
//! BatchNormalization stays a BN node: folding it is fusion's job, not import's.
//!
//! Initializers may live in external data files beside the model (the dynamo exporter's
//! default); [`load_onnx`] reads them from the model's folder and nowhere else.
//!
//! An op type qlab does not implement does not stop the walk: its outputs count as known (never
//! constant), nodes that fail only because they read such outputs are skipped too, and the
//! import ends with one error listing every unsupported op type. Any other error stops at once.

mod attrs;
mod convert;
mod external;
/// The generated ONNX protobuf types (public so tools and tests can build models).
#[allow(clippy::all, missing_docs)]
pub mod proto;
mod scope;
mod tensor;

pub use convert::SUPPORTED_OPS;
pub use scope::{Site, node_module_path, node_site};

use super::{ImportError, UnsupportedSite};
use crate::graph::{Graph, GraphInput, Node, Op, Value, budget, ops};
use crate::import::naming::{is_param_name, linear_call};
use attrs::Attrs;
use convert::{Operands, convert};
use external::ExternalData;
use prost::Message;
use proto::{ModelProto, NodeProto};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Reads and imports an ONNX file; external data is read from files in the same folder.
pub fn load_onnx(path: &Path) -> Result<Graph, ImportError> {
    let shown = path.display().to_string();
    let bytes = crate::fsutil::read_bounded(path).map_err(|source| ImportError::Io {
        path: shown.clone(),
        source,
    })?;
    // `parent` of a bare file name is the empty path: the current folder.
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    import_onnx_bytes_in(&bytes, &shown, folder)
}

/// Imports an ONNX model from memory; `origin` names it in errors. The model has no folder, so
/// an initializer with external data is an [`ImportError::ExternalData`].
pub fn import_onnx_bytes(bytes: &[u8], origin: &str) -> Result<Graph, ImportError> {
    import(bytes, origin, ExternalData::new(None))
}

/// Imports an ONNX model from memory whose external data files are in `folder` (the folder the
/// model file was read from); locations that leave `folder` are refused.
pub fn import_onnx_bytes_in(
    bytes: &[u8],
    origin: &str,
    folder: &Path,
) -> Result<Graph, ImportError> {
    import(bytes, origin, ExternalData::new(Some(folder)))
}

fn import(bytes: &[u8], origin: &str, mut external: ExternalData) -> Result<Graph, ImportError> {
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
    check_versions(model.ir_version, opset).map_err(corrupt)?;
    let g = model.graph.ok_or_else(|| corrupt("no graph".into()))?;

    let mut consts: HashMap<String, Value> = HashMap::new();
    let mut narrow = HashMap::new();
    for init in &g.initializer {
        if let Some(range) = tensor::narrow_range(init) {
            narrow.insert(init.name.clone().unwrap_or_default(), range);
        }
        consts.insert(
            init.name.clone().unwrap_or_default(),
            tensor::initializer_value(init, &mut external)?,
        );
    }
    // The files' bytes are decoded into the constants; free them before the walk.
    drop(external);
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
    // A declared shape no run could hold is refused now, not at the first probe or batch
    // (dynamic dims count as 1).
    for i in &inputs {
        let dims: Vec<usize> = i.shape.iter().map(|d| d.unwrap_or(1)).collect();
        let what = format!("declared input shape {:?}", i.shape);
        budget::check_bytes(&i.name, &what, budget::bytes_of(&dims, 4))?;
    }

    let mut walk = Walk {
        opset,
        consts,
        narrow,
        known: inputs.iter().map(|i| i.name.clone()).collect(),
        skipped: HashSet::new(),
        unsupported: Vec::new(),
        emitted: Vec::new(),
        origins: HashMap::new(),
        folded_bytes: 0,
    };
    for (k, node) in g.node.iter().enumerate() {
        walk.node(node, k)?;
    }
    let Walk {
        consts,
        mut unsupported,
        mut emitted,
        ..
    } = walk;
    match unsupported.len() {
        0 => {}
        1 => {
            let site = unsupported.remove(0);
            return Err(ImportError::UnsupportedOp {
                node: site.node,
                op_type: site.op_type,
            });
        }
        _ => return Err(ImportError::UnsupportedOps { ops: unsupported }),
    }
    merge_linear_bias(&mut emitted, &consts);
    mark_linear_calls(&mut emitted);
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
    crate::graph::validate::graph(&graph)?;
    Ok(crate::graph::settle_batch(graph)?.0)
}

/// The default-domain opsets qlab reads: from 7 (numpy broadcasting replaced the `broadcast`
/// attribute) to the newest the ONNX release qlab was checked against defines.
const OPSETS: std::ops::RangeInclusive<i64> = 7..=28;
/// The IR versions qlab reads: 3 introduced `opset_import`; 14 is that release's newest.
const IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=14;

/// Refuses a file whose IR version or default-domain opset qlab does not know: a newer one may
/// change an operator's meaning, and reading it as the old one would give silently wrong results.
fn check_versions(ir_version: Option<i64>, opset: i64) -> Result<(), String> {
    match ir_version {
        Some(v) if IR_VERSIONS.contains(&v) => {}
        Some(v) => {
            return Err(format!(
                "ir_version {v} is outside the supported {}..={}",
                IR_VERSIONS.start(),
                IR_VERSIONS.end()
            ));
        }
        None => return Err("ir_version is missing".into()),
    }
    if !OPSETS.contains(&opset) {
        return Err(format!(
            "opset {opset} (default domain) is outside the supported {}..={}",
            OPSETS.start(),
            OPSETS.end()
        ));
    }
    Ok(())
}

/// The state of the node walk.
struct Walk {
    opset: i64,
    /// Values known at import time.
    consts: HashMap<String, Value>,
    /// The integer range of the 8-bit constants (QuantizeLinear's zero points).
    narrow: HashMap<String, (i64, i64)>,
    /// Values computed at run time.
    known: HashSet<String>,
    /// Run-time values from nodes that were not imported (unsupported, or downstream of one).
    skipped: HashSet<String>,
    /// The first node of each unsupported op type, in graph order.
    unsupported: Vec<UnsupportedSite>,
    /// Graph nodes with where they sit.
    emitted: Vec<Emitted>,
    /// The parameter each folded constant was computed from (a transposed weight keeps its
    /// parameter's name here), by value name.
    origins: HashMap<String, String>,
    /// Bytes of constants computed so far: together, not only one by one, within the budget.
    folded_bytes: u64,
}

/// A graph node with what naming and the Linear rule need of its ONNX node.
struct Emitted {
    site: Site,
    /// The constants it reads, by the parameter they came from (weight first).
    params: Vec<String>,
    node: Node,
}

impl Walk {
    /// Imports one node. An unsupported op is recorded and skipped; so is a node whose weight
    /// only a skipped node computes (it would otherwise report "not a constant", a consequence
    /// rather than a cause). Other failures end the import.
    fn node(&mut self, node: &NodeProto, k: usize) -> Result<(), ImportError> {
        let shown = node
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{}_{k}", node.op_type.as_deref().unwrap_or("node")));
        let site = node_site(node, &shown);
        let module = site.path.clone();
        match self.convert(node, &shown, site) {
            Ok(()) => Ok(()),
            Err(ImportError::UnsupportedOp { node: at, op_type }) => {
                if !self.unsupported.iter().any(|s| s.op_type == op_type) {
                    self.unsupported.push(UnsupportedSite {
                        op_type,
                        node: at,
                        module,
                    });
                }
                self.skip(node);
                Ok(())
            }
            // A weight that only a skipped node computes is not missing, just not imported.
            Err(ImportError::NotConstant { ref input, .. }) if self.skipped.contains(input) => {
                self.skip(node);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn skip(&mut self, node: &NodeProto) {
        self.known.extend(node.output.iter().cloned());
        self.skipped.extend(node.output.iter().cloned());
    }

    fn convert(&mut self, node: &NodeProto, shown: &str, site: Site) -> Result<(), ImportError> {
        let attrs = Attrs::new(node, shown);
        if let Some(d) = node
            .domain
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "ai.onnx")
        {
            return Err(ImportError::UnsupportedOp {
                node: shown.to_string(),
                op_type: format!("{d}::{}", attrs.op_type),
            });
        }
        if attrs.op_type == "Constant" {
            let value = constant_value(&attrs)?;
            let out = node.output.first().cloned().unwrap_or_default();
            let tensor = node
                .attribute
                .iter()
                .find(|a| a.name.as_deref() == Some("value"));
            if let Some(range) = tensor
                .and_then(|a| a.t.as_ref())
                .and_then(tensor::narrow_range)
            {
                self.narrow.insert(out.clone(), range);
            }
            self.consts.insert(out, value);
            return Ok(());
        }
        check_inputs(node, &attrs, &self.consts, &self.known)?;
        let c = convert(
            &Operands {
                node,
                attrs: &attrs,
                consts: &self.consts,
                narrow: &self.narrow,
            },
            self.opset,
        )?;
        let graph_node = Node {
            name: shown.to_string(),
            op: c.op,
            inputs: c.inputs,
            outputs: node.output.clone(),
        };
        let foldable = !graph_node.op.owns_weights()
            && graph_node
                .inputs
                .iter()
                .all(|i| i.is_empty() || self.consts.contains_key(i));
        if foldable {
            let args: Vec<Option<&Value>> = graph_node
                .inputs
                .iter()
                .map(|i| self.consts.get(i))
                .collect();
            let outs = ops::eval(&graph_node, &args)?;
            let bytes = outs.iter().map(Value::bytes).sum::<u64>();
            self.folded_bytes = budget::check_bytes(
                shown,
                "folding constants",
                self.folded_bytes.checked_add(bytes),
            )?;
            // Layout ops on a weight (Transpose, Reshape, Slice) keep its parameter's name,
            // unless the result has one of its own (the legacy exporter writes a repeated
            // layer's identical weights as `Identity` of the first layer's, named as its own).
            let origin = node.input.first().map(|i| self.origin(i).to_string());
            for (name, v) in graph_node.outputs.iter().zip(outs) {
                self.consts.insert(name.clone(), v);
                if let Some(o) = origin.as_ref().filter(|_| !is_param_name(name)) {
                    self.origins.insert(name.clone(), o.clone());
                }
            }
        } else {
            self.known.extend(graph_node.outputs.iter().cloned());
            let params = node
                .input
                .iter()
                .filter(|i| self.consts.contains_key(*i))
                .map(|i| self.origin(i).to_string())
                .collect();
            self.emitted.push(Emitted {
                site,
                params,
                node: graph_node,
            });
        }
        Ok(())
    }

    /// The parameter a constant was computed from, or its own name.
    fn origin<'a>(&'a self, value: &'a str) -> &'a str {
        self.origins.get(value).map_or(value, String::as_str)
    }
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

/// `x·W` exported as MatMul + Add (a Linear on a 3-d input) becomes one Linear with its bias;
/// the Linear then reads the Add's parameters too.
fn merge_linear_bias(nodes: &mut Vec<Emitted>, consts: &HashMap<String, Value>) {
    let mut i = 0;
    while i < nodes.len() {
        let merged = (|| {
            let Emitted {
                site, node: add, ..
            } = &nodes[i];
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
                .rposition(|e| e.node.outputs.first() == Some(data) && e.site.path == site.path)?;
            let readers = nodes
                .iter()
                .filter(|e| e.node.inputs.contains(data))
                .count();
            match &nodes[j].node.op {
                Op::Linear(l)
                    if l.bias.is_none() && readers == 1 && bias.len() == l.weight.nrows() =>
                {
                    Some((j, bias.iter().copied().collect::<ndarray::Array1<f32>>()))
                }
                _ => None,
            }
        })();
        match merged {
            Some((j, bias)) => {
                let add = nodes.remove(i);
                let linear = &mut nodes[j];
                if let Op::Linear(l) = &mut linear.node.op {
                    l.bias = Some(bias);
                }
                linear.node.outputs = add.node.outputs;
                linear.params.extend(add.params);
            }
            None => i += 1,
        }
    }
}

/// Records on each Linear whether its runner's own `nn.Linear` forward ran it (see
/// [`linear_call`]).
fn mark_linear_calls(nodes: &mut [Emitted]) {
    for e in nodes {
        if let Op::Linear(l) = &mut e.node.op {
            let params: Vec<&str> = e.params.iter().map(String::as_str).collect();
            l.call = linear_call(e.site.runner.as_ref(), &params);
        }
    }
}

/// Names nodes by module path: the module op of a scope takes the path; other nodes in a
/// multi-node scope get `path.op`; root-level nodes get `op`; duplicates get `_1`, `_2`, ...
fn assign_names(nodes: Vec<Emitted>) -> Vec<Node> {
    let mut per_scope: HashMap<String, (usize, bool)> = HashMap::new();
    for Emitted {
        site: Site { path: scope, .. },
        node,
        ..
    } in &nodes
    {
        if let Some(s) = scope {
            let e = per_scope.entry(s.clone()).or_default();
            e.0 += 1;
            e.1 |= node.op.owns_weights();
        }
    }
    let mut names = crate::graph::FreshNames::default();
    let mut out = Vec::with_capacity(nodes.len());
    for Emitted {
        site: Site { path: scope, .. },
        mut node,
        ..
    } in nodes
    {
        let kind = node.op.kind().to_ascii_lowercase();
        let base = match &scope {
            Some(s) => {
                let (count, has_module) = per_scope[s];
                if count == 1 || (has_module && node.op.owns_weights()) {
                    s.clone()
                } else {
                    format!("{s}.{kind}")
                }
            }
            None => kind,
        };
        node.name = names.claim(&base);
        out.push(node);
    }
    out
}
