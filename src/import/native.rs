//! qlab's own model format: a directory `NAME.qlab/` holding `graph.json` (structure and
//! attributes, a versioned schema) and `weights.safetensors` (every tensor, keyed like a PyTorch
//! state_dict: `conv1.weight`, `bn1.running_var`, `lstm.weight_ih_l0_reverse`; graph constants
//! as `const/<value name>`). Save → load is lossless, and saving is atomic (see
//! [`crate::fsutil::write_dir_atomic`]): the path holds the old or the new model at every
//! instant, and only a directory recognised as a qlab model is ever replaced.
//!
//! Version 2 adds an optional `quantized` section: the converted model (its prepared graph, one
//! quantized op per node, the engine and profile, each layer's qconfig text), its int8 weights
//! in the same safetensors file under `qop/…` (see [`quantized`]). A float-only model is still
//! written as version 1, so older qlab builds keep reading what they can run.

use crate::graph::{Fusion, Graph, GraphInput, Node, Op, Value};
use crate::workflow::QuantizedModel;
use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use thiserror::Error;

mod quantized;
#[cfg(test)]
mod tests;

pub use quantized::SavedQuantized;

const FORMAT: &str = "qlab-graph";
/// `graph.json`'s schema version. Its node entries are [`Op`]'s serde form, so a change there
/// that alters the JSON shape bumps this, and the reader keeps accepting the older versions
/// (`tests/fixtures/native_v1` holds a model written by the version-1 writer). Version 2 adds
/// the `quantized` section; a model without one is still written as version 1.
const VERSION: u32 = 2;
/// The version a float-only model is written as (module docs).
const FLOAT_VERSION: u32 = 1;

/// What can go wrong saving or loading a native model.
#[derive(Debug, Error)]
pub enum NativeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `graph.json` is malformed or of another format.
    #[error("{path}: {detail}")]
    Schema { path: String, detail: String },
    /// `graph.json` was written by a newer qlab, in a schema version this reader does not know.
    #[error(
        "{path}: schema version {found} is newer than this qlab reads (up to version {supported}); upgrade qlab"
    )]
    NewerVersion {
        path: String,
        found: u32,
        supported: u32,
    },
    /// A field of the quantized model is invalid (a scale, a zero point, an op's parameters).
    #[error("{path}: quantized node '{node}': {field}: {detail}")]
    Quantized {
        path: String,
        node: String,
        field: String,
        detail: String,
    },
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

/// A graph's structure: what `graph.json` holds of the model, and of the quantized model's
/// prepared graph (whose tensors are keyed under a prefix).
#[derive(Debug, Serialize, Deserialize)]
struct GraphBody {
    inputs: Vec<InputRecord>,
    outputs: Vec<String>,
    nodes: Vec<NodeRecord>,
    constants: Vec<String>,
    /// Absent in files written before fusion existed.
    #[serde(default)]
    fusions: Vec<Fusion>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GraphRecord {
    format: String,
    version: u32,
    #[serde(flatten)]
    body: GraphBody,
    /// The converted model (version 2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quantized: Option<quantized::QuantizedRecord>,
}

/// One tensor of the weights file: key, dtype, shape, little-endian bytes.
type Encoded = (String, Dtype, Vec<usize>, Vec<u8>);

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

/// A model as the native format holds it: the float graph and, once converted, the quantized
/// model.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeModel {
    pub graph: Graph,
    pub quantized: Option<SavedQuantized>,
}

/// Saves `graph` as the directory `dir` (conventionally `NAME.qlab`), atomically.
pub fn save_native(graph: &Graph, dir: &Path) -> Result<(), NativeError> {
    save_native_model(graph, None, dir)
}

/// A converted model to save and each layer's qconfig text (see [`SavedQuantized`]).
pub type QuantizedToSave<'a> = (&'a QuantizedModel, &'a BTreeMap<String, String>);

/// Saves `graph` and, when given, the converted model beside it, atomically.
pub fn save_native_model(
    graph: &Graph,
    quantized: Option<QuantizedToSave>,
    dir: &Path,
) -> Result<(), NativeError> {
    let (json, weights) = encode_native_model(graph, quantized, &dir.display().to_string())?;
    let files: [(&str, &[u8]); 2] = [
        ("graph.json", json.as_bytes()),
        ("weights.safetensors", &weights),
    ];
    Ok(crate::fsutil::write_dir_atomic(dir, &files, &not_a_model)?)
}

/// The two files of a native model: `graph.json`'s text and `weights.safetensors`' bytes;
/// `origin` names the model in errors.
pub fn encode_native(graph: &Graph, origin: &str) -> Result<(String, Vec<u8>), NativeError> {
    encode_native_model(graph, None, origin)
}

/// [`encode_native`] with the converted model: version 2 when there is one.
pub fn encode_native_model(
    graph: &Graph,
    quantized: Option<QuantizedToSave>,
    origin: &str,
) -> Result<(String, Vec<u8>), NativeError> {
    let mut tensors: Vec<Encoded> = Vec::new();
    let body = encode_graph(graph, "", &mut tensors);
    let rec = GraphRecord {
        format: FORMAT.into(),
        version: if quantized.is_some() {
            VERSION
        } else {
            FLOAT_VERSION
        },
        body,
        quantized: quantized.map(|(m, qconfigs)| quantized::encode(m, qconfigs, &mut tensors)),
    };
    let json = serde_json::to_string_pretty(&rec).expect("graph records serialize");
    let views = tensors
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

/// `graph`'s structure, its tensors pushed onto `tensors` keyed `{prefix}{node}.{param}` and
/// `{prefix}const/{name}`.
fn encode_graph(graph: &Graph, prefix: &str, tensors: &mut Vec<Encoded>) -> GraphBody {
    let mut push = |key: String, v: &Value| {
        let (dt, shape, bytes) = value_bytes(v);
        tensors.push((key, dt, shape, bytes));
    };
    let nodes = graph
        .nodes
        .iter()
        .map(|n| {
            // A copy to move the tensors out of (serde skips them): the weights file gets
            // each tensor under its state_dict key, `graph.json` the rest.
            let mut op = n.op.clone();
            for (param, t) in op.params_mut() {
                push(format!("{prefix}{}.{param}", n.name), &t.take());
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
        push(format!("{prefix}const/{name}"), v);
    }
    GraphBody {
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
    }
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

impl<'a> Tensors<'a> {
    fn err(&self, name: &str, detail: impl Into<String>) -> NativeError {
        NativeError::Tensor {
            path: self.path.clone(),
            name: name.into(),
            detail: detail.into(),
        }
    }

    /// The tensor `name`'s shape and bytes, checked to be of `dtype`. A second read of one key
    /// is refused: it could only come from two nodes or constants of one name in a hand-edited
    /// `graph.json`, and each read copies the tensor, so refusing keeps what loading allocates
    /// within the weights file's size.
    fn raw(
        &mut self,
        name: &str,
        dtypes: &[Dtype],
    ) -> Result<(Dtype, Vec<usize>, &'a [u8]), NativeError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.err(name, "missing"))?;
        if !self.read.insert(name.to_string()) {
            return Err(self.err(name, "claimed twice (two nodes or constants of one name)"));
        }
        if !dtypes.contains(&t.dtype()) {
            let want: Vec<String> = dtypes.iter().map(|d| format!("{d:?}")).collect();
            return Err(self.err(
                name,
                format!("dtype {:?} is not {}", t.dtype(), want.join(" or ")),
            ));
        }
        Ok((t.dtype(), t.shape().to_vec(), t.data()))
    }

    /// The tensor `name` as a graph value (F32 or I64).
    fn value(&mut self, name: &str) -> Result<Value, NativeError> {
        let (dtype, shape, data) = self.raw(name, &[Dtype::F32, Dtype::I64])?;
        let shape = IxDyn(&shape);
        let v = match dtype {
            Dtype::F32 => {
                ArrayD::from_shape_vec(shape, le_values(data, f32::from_le_bytes)).map(Value::F32)
            }
            _ => ArrayD::from_shape_vec(shape, le_values(data, i64::from_le_bytes)).map(Value::I64),
        };
        v.map_err(|e| self.err(name, e.to_string()))
    }
}

/// Little-endian values of `N` bytes each (safetensors has checked the length).
fn le_values<T, const N: usize>(data: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| from(c.try_into().expect("N bytes")))
        .collect()
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

/// Loads a model saved by [`save_native`]: its float graph (a quantized section is checked but
/// set aside; [`load_native_model`] keeps it).
pub fn load_native(dir: &Path) -> Result<Graph, NativeError> {
    Ok(load_native_model(dir)?.graph)
}

/// Loads a model saved by [`save_native_model`], with its converted model if it has one.
pub fn load_native_model(dir: &Path) -> Result<NativeModel, NativeError> {
    let json_path = dir.join("graph.json");
    let text = crate::fsutil::read_text_bounded(&json_path).map_err(io(&json_path))?;
    let shown = json_path.display().to_string();
    // The format is checked before the (large) weights file is read.
    let rec = parse_record(&text, &shown)?;
    let weights_path = dir.join("weights.safetensors");
    let bytes = crate::fsutil::read_bounded(&weights_path).map_err(io(&weights_path))?;
    build(rec, &bytes, shown, &weights_path.display().to_string())
}

/// Decodes a native model's float graph from its two files' contents ([`encode_native`]'s
/// output); `json_origin` and `weights_origin` name them in errors. Every op and the structure
/// are checked ([`crate::graph::validate`]).
pub fn decode_native(
    text: &str,
    bytes: &[u8],
    json_origin: &str,
    weights_origin: &str,
) -> Result<Graph, NativeError> {
    Ok(decode_native_model(text, bytes, json_origin, weights_origin)?.graph)
}

/// [`decode_native`] with the converted model, if the file has one.
pub fn decode_native_model(
    text: &str,
    bytes: &[u8],
    json_origin: &str,
    weights_origin: &str,
) -> Result<NativeModel, NativeError> {
    let rec = parse_record(text, json_origin)?;
    build(rec, bytes, json_origin.to_string(), weights_origin)
}

/// `graph.json`'s record, refused unless it is this format and a version this reader knows.
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
    if head.format != FORMAT || head.version == 0 {
        return Err(NativeError::Schema {
            path: origin.to_string(),
            detail: format!(
                "format {} v{} is not {FORMAT} v1 to v{VERSION}",
                head.format, head.version
            ),
        });
    }
    if head.version > VERSION {
        return Err(NativeError::NewerVersion {
            path: origin.to_string(),
            found: head.version,
            supported: VERSION,
        });
    }
    let rec: GraphRecord = serde_json::from_str(text).map_err(schema)?;
    if rec.version < VERSION && rec.quantized.is_some() {
        return Err(NativeError::Schema {
            path: origin.to_string(),
            detail: format!("a quantized section in a version-{} file", rec.version),
        });
    }
    Ok(rec)
}

/// The model a checked record and its weights describe; `shown` names `graph.json` in errors.
fn build(
    rec: GraphRecord,
    bytes: &[u8],
    shown: String,
    weights_origin: &str,
) -> Result<NativeModel, NativeError> {
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
    let graph = build_graph(rec.body, "", &mut t, &shown)?;
    let quantized = rec
        .quantized
        .map(|q| quantized::decode(q, &mut t, &shown))
        .transpose()?;
    Ok(NativeModel { graph, quantized })
}

/// The graph `body` describes, its tensors read under `prefix`; checked.
fn build_graph(
    body: GraphBody,
    prefix: &str,
    t: &mut Tensors,
    shown: &str,
) -> Result<Graph, NativeError> {
    let nodes = body
        .nodes
        .into_iter()
        .map(|mut n| {
            restore(&mut n.op, &format!("{prefix}{}", n.name), t)?;
            Ok(Node {
                op: n.op,
                name: n.name,
                inputs: n.inputs,
                outputs: n.outputs,
            })
        })
        .collect::<Result<Vec<_>, NativeError>>()?;
    let constants: BTreeMap<String, Value> = body
        .constants
        .iter()
        .map(|c| Ok((c.clone(), t.value(&format!("{prefix}const/{c}"))?)))
        .collect::<Result<_, NativeError>>()?;
    let graph = Graph {
        inputs: body
            .inputs
            .into_iter()
            .map(|i| GraphInput {
                name: i.name,
                shape: i.shape,
            })
            .collect(),
        outputs: body.outputs,
        nodes,
        constants,
        fusions: body.fusions,
    };
    crate::graph::validate::graph(&graph).map_err(|source| NativeError::Graph {
        path: shown.to_string(),
        source,
    })?;
    Ok(graph)
}
