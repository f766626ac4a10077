//! qlab's own model format: a directory `NAME.qlab/` holding `graph.json` (structure and
//! attributes, a versioned schema) and `weights.safetensors` (every tensor, keyed like a PyTorch
//! state_dict: `conv1.weight`, `bn1.running_var`, `lstm.weight_ih_l0_reverse`; graph constants
//! as `const/<value name>`). Save → load is lossless, and saving is atomic (see
//! [`crate::fsutil::write_dir_atomic`]): the path holds the old or the new model at every
//! instant, and only a directory recognised as a qlab model is ever replaced.

use crate::graph::{Fusion, Graph, GraphInput, Node, Op, Value};
use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use thiserror::Error;

#[cfg(test)]
mod tests;

const FORMAT: &str = "qlab-graph";
/// `graph.json`'s schema version. Its node entries are [`Op`]'s serde form, so a change there
/// that alters the JSON shape bumps this, and the reader keeps accepting the older versions
/// (`tests/fixtures/native_v1` holds a model written by the version-1 writer).
const VERSION: u32 = 1;

/// What can go wrong saving or loading a native model.
#[derive(Debug, Error)]
pub enum NativeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `graph.json` is malformed or of another format/version.
    #[error("{path}: {detail}")]
    Schema { path: String, detail: String },
    /// A tensor is missing from `weights.safetensors` or has the wrong type or shape.
    #[error("{path}: tensor '{name}': {detail}")]
    Tensor {
        path: String,
        name: String,
        detail: String,
    },
    /// The graph's structure or an op's parameters are invalid (see [`crate::graph::validate`]).
    #[error("{path}: {source}")]
    Graph {
        path: String,
        source: crate::graph::GraphError,
    },
    /// Saving was refused (it would destroy something not a qlab model) or failed.
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeRecord {
    name: String,
    /// The op's attributes beside the name (`"op": "conv", "stride": [1, 1], ...`); its
    /// tensors are in the weights file ([`Op::params_mut`]).
    #[serde(flatten)]
    op: Op,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct InputRecord {
    name: String,
    shape: Vec<Option<usize>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GraphRecord {
    format: String,
    version: u32,
    inputs: Vec<InputRecord>,
    outputs: Vec<String>,
    nodes: Vec<NodeRecord>,
    constants: Vec<String>,
    /// Absent in files written before fusion existed.
    #[serde(default)]
    fusions: Vec<Fusion>,
}

fn value_bytes(v: &Value) -> (Dtype, Vec<usize>, Vec<u8>) {
    match v {
        Value::F32(a) => (
            Dtype::F32,
            a.shape().to_vec(),
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Value::I64(a) => (
            Dtype::I64,
            a.shape().to_vec(),
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    }
}

/// Saves `graph` as the directory `dir` (conventionally `NAME.qlab`), atomically.
pub fn save_native(graph: &Graph, dir: &Path) -> Result<(), NativeError> {
    let (json, weights) = encode_native(graph, &dir.display().to_string())?;
    let files: [(&str, &[u8]); 2] = [
        ("graph.json", json.as_bytes()),
        ("weights.safetensors", &weights),
    ];
    Ok(crate::fsutil::write_dir_atomic(dir, &files, &not_a_model)?)
}

/// The two files of a native model: `graph.json`'s text and `weights.safetensors`' bytes;
/// `origin` names the model in errors.
pub fn encode_native(graph: &Graph, origin: &str) -> Result<(String, Vec<u8>), NativeError> {
    let mut tensors: Vec<(String, Value)> = Vec::new();
    let nodes = graph
        .nodes
        .iter()
        .map(|n| {
            // A copy to move the tensors out of (serde skips them): the weights file gets
            // each tensor under its state_dict key, `graph.json` the rest.
            let mut op = n.op.clone();
            for (param, t) in op.params_mut() {
                tensors.push((format!("{}.{param}", n.name), t.take()));
            }
            NodeRecord {
                op,
                name: n.name.clone(),
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
            }
        })
        .collect();
    for (name, v) in &graph.constants {
        tensors.push((format!("const/{name}"), v.clone()));
    }
    let rec = GraphRecord {
        format: FORMAT.into(),
        version: VERSION,
        inputs: graph
            .inputs
            .iter()
            .map(|i| InputRecord {
                name: i.name.clone(),
                shape: i.shape.clone(),
            })
            .collect(),
        outputs: graph.outputs.clone(),
        nodes,
        constants: graph.constants.keys().cloned().collect(),
        fusions: graph.fusions.clone(),
    };
    let json = serde_json::to_string_pretty(&rec).expect("graph records serialize");
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, v)| {
            let (dt, shape, bytes) = value_bytes(v);
            (k.clone(), dt, shape, bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(k, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes).map(|v| (k.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NativeError::Schema {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
    let weights = safetensors::serialize(views, None).map_err(|e| NativeError::Schema {
        path: origin.to_string(),
        detail: e.to_string(),
    })?;
    Ok((json, weights))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NativeError + '_ {
    move |source| NativeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Why `dir` is not a native model `save_native` may replace: its `graph.json` must carry the
/// format marker (any version: an older or newer qlab model is still qlab's own).
fn not_a_model(dir: &Path) -> Result<(), String> {
    /// Larger than any real graph.json; bounds what a stray huge file costs to check.
    const MAX_GRAPH_JSON: u64 = 1 << 30;
    #[derive(Deserialize)]
    struct Marker {
        format: String,
    }
    let path = dir.join("graph.json");
    let len = std::fs::metadata(&path)
        .map_err(|e| format!("graph.json cannot be read ({e})"))?
        .len();
    if len > MAX_GRAPH_JSON {
        return Err(format!("graph.json is {len} bytes"));
    }
    let text = crate::fsutil::read_bounded(&path)
        .map_err(|e| format!("graph.json cannot be read ({e})"))?;
    match serde_json::from_slice::<Marker>(&text) {
        Ok(m) if m.format == FORMAT => Ok(()),
        _ => Err(format!("its graph.json has no \"format\": \"{FORMAT}\"")),
    }
}

/// Reads the named tensors of a safetensors file, each at most once.
struct Tensors<'a> {
    path: String,
    st: SafeTensors<'a>,
    /// Keys read so far.
    read: HashSet<String>,
}

impl Tensors<'_> {
    fn err(&self, name: &str, detail: impl Into<String>) -> NativeError {
        NativeError::Tensor {
            path: self.path.clone(),
            name: name.into(),
            detail: detail.into(),
        }
    }

    /// The tensor `name`. A second read of one key is refused: it could only come from two
    /// nodes or constants of one name in a hand-edited `graph.json`, and each read copies the
    /// tensor, so refusing keeps what loading allocates within the weights file's size.
    fn value(&mut self, name: &str) -> Result<Value, NativeError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.err(name, "missing"))?;
        if !self.read.insert(name.to_string()) {
            return Err(self.err(name, "claimed twice (two nodes or constants of one name)"));
        }
        let shape = IxDyn(t.shape());
        let data = t.data();
        let v = match t.dtype() {
            Dtype::F32 => Value::F32(
                ArrayD::from_shape_vec(
                    shape,
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                        .collect(),
                )
                .map_err(|e| self.err(name, e.to_string()))?,
            ),
            Dtype::I64 => Value::I64(
                ArrayD::from_shape_vec(
                    shape,
                    data.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8")))
                        .collect(),
                )
                .map_err(|e| self.err(name, e.to_string()))?,
            ),
            other => return Err(self.err(name, format!("dtype {other:?} is not F32 or I64"))),
        };
        Ok(v)
    }
}

/// Fills in the tensors of `node`'s op, which came out of `graph.json` as placeholders.
fn restore(op: &mut Op, node: &str, t: &mut Tensors) -> Result<(), NativeError> {
    for (param, slot) in op.params_mut() {
        let key = format!("{node}.{param}");
        slot.set(t.value(&key)?)
            .map_err(|detail| t.err(&key, detail))?;
    }
    Ok(())
}

/// Loads a model saved by [`save_native`].
pub fn load_native(dir: &Path) -> Result<Graph, NativeError> {
    let json_path = dir.join("graph.json");
    let text = crate::fsutil::read_text_bounded(&json_path).map_err(io(&json_path))?;
    let shown = json_path.display().to_string();
    // The format is checked before the (large) weights file is read.
    let rec = parse_record(&text, &shown)?;
    let weights_path = dir.join("weights.safetensors");
    let bytes = crate::fsutil::read_bounded(&weights_path).map_err(io(&weights_path))?;
    build(rec, &bytes, shown, &weights_path.display().to_string())
}

/// Decodes a native model from its two files' contents ([`encode_native`]'s output);
/// `json_origin` and `weights_origin` name them in errors. Every op and the structure are
/// checked ([`crate::graph::validate`]).
pub fn decode_native(
    text: &str,
    bytes: &[u8],
    json_origin: &str,
    weights_origin: &str,
) -> Result<Graph, NativeError> {
    let rec = parse_record(text, json_origin)?;
    build(rec, bytes, json_origin.to_string(), weights_origin)
}

/// `graph.json`'s record, refused unless it is this format and version.
fn parse_record(text: &str, origin: &str) -> Result<GraphRecord, NativeError> {
    /// What every version has: read first, so a file of another version is refused for its
    /// version rather than for a node this reader does not know.
    #[derive(Deserialize)]
    struct Header {
        format: String,
        version: u32,
    }
    let schema = |e: serde_json::Error| NativeError::Schema {
        path: origin.to_string(),
        detail: e.to_string(),
    };
    let head: Header = serde_json::from_str(text).map_err(schema)?;
    if head.format != FORMAT || head.version != VERSION {
        return Err(NativeError::Schema {
            path: origin.to_string(),
            detail: format!(
                "format {} v{} is not {FORMAT} v{VERSION}",
                head.format, head.version
            ),
        });
    }
    serde_json::from_str(text).map_err(schema)
}

/// The graph a checked record and its weights describe; `shown` names `graph.json` in errors.
fn build(
    rec: GraphRecord,
    bytes: &[u8],
    shown: String,
    weights_origin: &str,
) -> Result<Graph, NativeError> {
    let wshown = weights_origin.to_string();
    let st = SafeTensors::deserialize(bytes).map_err(|e| NativeError::Schema {
        path: wshown.clone(),
        detail: e.to_string(),
    })?;
    let mut t = Tensors {
        path: wshown,
        st,
        read: HashSet::new(),
    };
    let nodes = rec
        .nodes
        .into_iter()
        .map(|mut n| {
            restore(&mut n.op, &n.name, &mut t)?;
            Ok(Node {
                op: n.op,
                name: n.name,
                inputs: n.inputs,
                outputs: n.outputs,
            })
        })
        .collect::<Result<Vec<_>, NativeError>>()?;
    let constants: BTreeMap<String, Value> = rec
        .constants
        .iter()
        .map(|c| Ok((c.clone(), t.value(&format!("const/{c}"))?)))
        .collect::<Result<_, NativeError>>()?;
    let graph = Graph {
        inputs: rec
            .inputs
            .into_iter()
            .map(|i| GraphInput {
                name: i.name,
                shape: i.shape,
            })
            .collect(),
        outputs: rec.outputs,
        nodes,
        constants,
        fusions: rec.fusions,
    };
    crate::graph::validate::graph(&graph).map_err(|source| NativeError::Graph {
        path: shown,
        source,
    })?;
    Ok(graph)
}
