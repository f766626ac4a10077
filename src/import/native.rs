//! qlab's own model format: a directory `NAME.qlab/` holding `graph.json` (structure and
//! attributes, a versioned schema) and `weights.safetensors` (every tensor, keyed like a PyTorch
//! state_dict: `conv1.weight`, `bn1.running_var`, `lstm.weight_ih_l0_reverse`; graph constants
//! as `const/<value name>`). Save → load is lossless, and saving is atomic (see
//! [`crate::fsutil::write_dir_atomic`]): the path holds the old or the new model at every
//! instant, and only a directory recognised as a qlab model is ever replaced.

use crate::graph::{
    BatchNormParams, Binary, CastTo, ConvParams, Fusion, Graph, GraphInput, LayerNormParams,
    LinearCall, LinearParams, LstmDirection, LstmParams, Node, Op, PoolParams, ReduceParams,
    ResizeMode, Unary, Value,
};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[cfg(test)]
mod tests;

const FORMAT: &str = "qlab-graph";
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

/// A float that survives JSON even when infinite (written as "inf" / "-inf" / "nan").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum JsonF32 {
    Finite(f32),
    Special(String),
}

impl From<f32> for JsonF32 {
    fn from(v: f32) -> Self {
        if v.is_finite() {
            JsonF32::Finite(v)
        } else {
            JsonF32::Special(format!("{v}").to_lowercase())
        }
    }
}

impl JsonF32 {
    fn value(&self) -> Option<f32> {
        match self {
            JsonF32::Finite(v) => Some(*v),
            JsonF32::Special(s) => s.parse().ok(),
        }
    }
}

/// An op's attributes; its tensors live in the safetensors file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum OpRecord {
    Conv {
        stride: Vec<usize>,
        pad_begin: Vec<usize>,
        pad_end: Vec<usize>,
        dilation: Vec<usize>,
        groups: usize,
        bias: bool,
    },
    Linear {
        bias: bool,
        /// `F.linear` inside another module ([`LinearCall::Functional`]); absent in files
        /// written before the flag existed, which therefore load as module calls.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        functional: bool,
    },
    BatchNorm {
        eps: f32,
        momentum: f32,
    },
    Lstm {
        hidden_size: usize,
        directions: usize,
    },
    MatMul,
    Relu,
    Clip {
        min: JsonF32,
        max: JsonF32,
    },
    Sigmoid,
    Tanh,
    Softmax {
        axis: i64,
    },
    MaxPool(PoolParams),
    AvgPool(PoolParams),
    GlobalAvgPool,
    Add,
    Sub,
    Mul,
    Div,
    Concat {
        axis: i64,
    },
    Flatten {
        axis: i64,
    },
    Reshape {
        allowzero: bool,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Gather {
        axis: i64,
    },
    Shape,
    ConstantOfShape,
    Slice,
    Identity,
    QuantStub,
    DeQuantStub,
    Resize {
        mode: String,
        align_corners: bool,
    },
    LayerNorm {
        axis: i64,
        eps: f32,
        bias: bool,
    },
    Unary {
        f: Unary,
    },
    Binary {
        f: Binary,
    },
    Where,
    Cast {
        to: CastTo,
    },
    Reduce(ReduceParams),
    Split {
        axis: i64,
        sizes: Option<Vec<usize>>,
        outputs: usize,
    },
    Expand,
    Range,
    Tile,
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeRecord {
    name: String,
    #[serde(flatten)]
    op: OpRecord,
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

/// The suffix PyTorch gives LSTM parameters of direction `d`.
fn dir_suffix(d: usize) -> &'static str {
    if d == 0 { "" } else { "_reverse" }
}

/// Splits a node into its record and its named tensors.
fn record(node: &Node, tensors: &mut Vec<(String, Value)>) -> OpRecord {
    let mut put = |param: &str, v: ArrayD<f32>| {
        tensors.push((format!("{}.{param}", node.name), Value::F32(v)))
    };
    match &node.op {
        Op::Conv(c) => {
            put("weight", c.weight.clone());
            if let Some(b) = &c.bias {
                put("bias", b.clone().into_dyn());
            }
            OpRecord::Conv {
                stride: c.stride.clone(),
                pad_begin: c.pad_begin.clone(),
                pad_end: c.pad_end.clone(),
                dilation: c.dilation.clone(),
                groups: c.groups,
                bias: c.bias.is_some(),
            }
        }
        Op::Linear(l) => {
            put("weight", l.weight.clone().into_dyn());
            if let Some(b) = &l.bias {
                put("bias", b.clone().into_dyn());
            }
            OpRecord::Linear {
                bias: l.bias.is_some(),
                functional: l.call == LinearCall::Functional,
            }
        }
        Op::BatchNorm(b) => {
            put("weight", b.weight.clone().into_dyn());
            put("bias", b.bias.clone().into_dyn());
            put("running_mean", b.running_mean.clone().into_dyn());
            put("running_var", b.running_var.clone().into_dyn());
            OpRecord::BatchNorm {
                eps: b.eps,
                momentum: b.momentum,
            }
        }
        Op::Lstm(l) => {
            for (d, w) in l.directions.iter().enumerate() {
                let s = dir_suffix(d);
                put(&format!("weight_ih_l0{s}"), w.w_ih.clone().into_dyn());
                put(&format!("weight_hh_l0{s}"), w.w_hh.clone().into_dyn());
                put(&format!("bias_ih_l0{s}"), w.b_ih.clone().into_dyn());
                put(&format!("bias_hh_l0{s}"), w.b_hh.clone().into_dyn());
            }
            OpRecord::Lstm {
                hidden_size: l.hidden_size,
                directions: l.directions.len(),
            }
        }
        Op::LayerNorm(n) => {
            put("weight", n.weight.clone());
            if let Some(b) = &n.bias {
                put("bias", b.clone());
            }
            OpRecord::LayerNorm {
                axis: n.axis,
                eps: n.eps,
                bias: n.bias.is_some(),
            }
        }
        Op::Unary(u) => OpRecord::Unary { f: *u },
        Op::Binary(b) => OpRecord::Binary { f: *b },
        Op::Where => OpRecord::Where,
        Op::Cast { to } => OpRecord::Cast { to: *to },
        Op::Reduce(r) => OpRecord::Reduce(r.clone()),
        Op::Split {
            axis,
            sizes,
            outputs,
        } => OpRecord::Split {
            axis: *axis,
            sizes: sizes.clone(),
            outputs: *outputs,
        },
        Op::Expand => OpRecord::Expand,
        Op::Range => OpRecord::Range,
        Op::Tile => OpRecord::Tile,
        Op::ConstantOfShape { value } => {
            tensors.push((format!("{}.value", node.name), value.clone()));
            OpRecord::ConstantOfShape
        }
        Op::MatMul => OpRecord::MatMul,
        Op::Relu => OpRecord::Relu,
        Op::Clip { min, max } => OpRecord::Clip {
            min: (*min).into(),
            max: (*max).into(),
        },
        Op::Sigmoid => OpRecord::Sigmoid,
        Op::Tanh => OpRecord::Tanh,
        Op::Softmax { axis } => OpRecord::Softmax { axis: *axis },
        Op::MaxPool(p) => OpRecord::MaxPool(p.clone()),
        Op::AvgPool(p) => OpRecord::AvgPool(p.clone()),
        Op::GlobalAvgPool => OpRecord::GlobalAvgPool,
        Op::Add => OpRecord::Add,
        Op::Sub => OpRecord::Sub,
        Op::Mul => OpRecord::Mul,
        Op::Div => OpRecord::Div,
        Op::Concat { axis } => OpRecord::Concat { axis: *axis },
        Op::Flatten { axis } => OpRecord::Flatten { axis: *axis },
        Op::Reshape { allowzero } => OpRecord::Reshape {
            allowzero: *allowzero,
        },
        Op::Transpose { perm } => OpRecord::Transpose { perm: perm.clone() },
        Op::Squeeze { axes } => OpRecord::Squeeze { axes: axes.clone() },
        Op::Unsqueeze { axes } => OpRecord::Unsqueeze { axes: axes.clone() },
        Op::Gather { axis } => OpRecord::Gather { axis: *axis },
        Op::Shape => OpRecord::Shape,
        Op::Slice => OpRecord::Slice,
        Op::Identity => OpRecord::Identity,
        Op::QuantStub => OpRecord::QuantStub,
        Op::DeQuantStub => OpRecord::DeQuantStub,
        Op::Resize {
            mode,
            align_corners,
        } => OpRecord::Resize {
            mode: match mode {
                ResizeMode::Nearest => "nearest".into(),
                ResizeMode::Bilinear => "bilinear".into(),
            },
            align_corners: *align_corners,
        },
    }
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
        .map(|n| NodeRecord {
            op: record(n, &mut tensors),
            name: n.name.clone(),
            inputs: n.inputs.clone(),
            outputs: n.outputs.clone(),
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

/// Reads the named tensors of a safetensors file.
struct Tensors<'a> {
    path: String,
    st: SafeTensors<'a>,
}

impl Tensors<'_> {
    fn err(&self, name: &str, detail: impl Into<String>) -> NativeError {
        NativeError::Tensor {
            path: self.path.clone(),
            name: name.into(),
            detail: detail.into(),
        }
    }

    fn value(&self, name: &str) -> Result<Value, NativeError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.err(name, "missing"))?;
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

    fn f32(&self, name: &str) -> Result<ArrayD<f32>, NativeError> {
        match self.value(name)? {
            Value::F32(a) => Ok(a),
            Value::I64(_) => Err(self.err(name, "expected F32")),
        }
    }

    fn vector(&self, name: &str) -> Result<Array1<f32>, NativeError> {
        self.f32(name)?
            .into_dimensionality()
            .map_err(|_| self.err(name, "expected a vector"))
    }

    fn matrix(&self, name: &str) -> Result<Array2<f32>, NativeError> {
        self.f32(name)?
            .into_dimensionality()
            .map_err(|_| self.err(name, "expected a matrix"))
    }
}

fn rebuild(rec: OpRecord, node: &str, t: &Tensors) -> Result<Op, NativeError> {
    let key = |p: &str| format!("{node}.{p}");
    Ok(match rec {
        OpRecord::Conv {
            stride,
            pad_begin,
            pad_end,
            dilation,
            groups,
            bias,
        } => Op::Conv(ConvParams {
            weight: t.f32(&key("weight"))?,
            bias: if bias {
                Some(t.vector(&key("bias"))?)
            } else {
                None
            },
            stride,
            pad_begin,
            pad_end,
            dilation,
            groups,
        }),
        OpRecord::Linear { bias, functional } => Op::Linear(LinearParams {
            weight: t.matrix(&key("weight"))?,
            bias: if bias {
                Some(t.vector(&key("bias"))?)
            } else {
                None
            },
            call: if functional {
                LinearCall::Functional
            } else {
                LinearCall::Module
            },
        }),
        OpRecord::BatchNorm { eps, momentum } => Op::BatchNorm(BatchNormParams {
            weight: t.vector(&key("weight"))?,
            bias: t.vector(&key("bias"))?,
            running_mean: t.vector(&key("running_mean"))?,
            running_var: t.vector(&key("running_var"))?,
            eps,
            momentum,
        }),
        OpRecord::Lstm {
            hidden_size,
            directions,
        } => Op::Lstm(LstmParams {
            hidden_size,
            directions: (0..directions)
                .map(|d| {
                    let s = dir_suffix(d);
                    Ok(LstmDirection {
                        w_ih: t.matrix(&key(&format!("weight_ih_l0{s}")))?,
                        w_hh: t.matrix(&key(&format!("weight_hh_l0{s}")))?,
                        b_ih: t.vector(&key(&format!("bias_ih_l0{s}")))?,
                        b_hh: t.vector(&key(&format!("bias_hh_l0{s}")))?,
                    })
                })
                .collect::<Result<_, NativeError>>()?,
        }),
        OpRecord::LayerNorm { axis, eps, bias } => Op::LayerNorm(LayerNormParams {
            weight: t.f32(&key("weight"))?,
            bias: if bias {
                Some(t.f32(&key("bias"))?)
            } else {
                None
            },
            axis,
            eps,
        }),
        OpRecord::Unary { f } => Op::Unary(f),
        OpRecord::Binary { f } => Op::Binary(f),
        OpRecord::Where => Op::Where,
        OpRecord::Cast { to } => Op::Cast { to },
        OpRecord::Reduce(r) => Op::Reduce(r),
        OpRecord::Split {
            axis,
            sizes,
            outputs,
        } => Op::Split {
            axis,
            sizes,
            outputs,
        },
        OpRecord::Expand => Op::Expand,
        OpRecord::Range => Op::Range,
        OpRecord::Tile => Op::Tile,
        OpRecord::ConstantOfShape => Op::ConstantOfShape {
            value: t.value(&key("value"))?,
        },
        OpRecord::Clip { min, max } => Op::Clip {
            min: min
                .value()
                .ok_or_else(|| t.err(node, "Clip min is not a number"))?,
            max: max
                .value()
                .ok_or_else(|| t.err(node, "Clip max is not a number"))?,
        },
        OpRecord::MatMul => Op::MatMul,
        OpRecord::Relu => Op::Relu,
        OpRecord::Sigmoid => Op::Sigmoid,
        OpRecord::Tanh => Op::Tanh,
        OpRecord::Softmax { axis } => Op::Softmax { axis },
        OpRecord::MaxPool(p) => Op::MaxPool(p),
        OpRecord::AvgPool(p) => Op::AvgPool(p),
        OpRecord::GlobalAvgPool => Op::GlobalAvgPool,
        OpRecord::Add => Op::Add,
        OpRecord::Sub => Op::Sub,
        OpRecord::Mul => Op::Mul,
        OpRecord::Div => Op::Div,
        OpRecord::Concat { axis } => Op::Concat { axis },
        OpRecord::Flatten { axis } => Op::Flatten { axis },
        OpRecord::Reshape { allowzero } => Op::Reshape { allowzero },
        OpRecord::Transpose { perm } => Op::Transpose { perm },
        OpRecord::Squeeze { axes } => Op::Squeeze { axes },
        OpRecord::Unsqueeze { axes } => Op::Unsqueeze { axes },
        OpRecord::Gather { axis } => Op::Gather { axis },
        OpRecord::Shape => Op::Shape,
        OpRecord::Slice => Op::Slice,
        OpRecord::Identity => Op::Identity,
        OpRecord::QuantStub => Op::QuantStub,
        OpRecord::DeQuantStub => Op::DeQuantStub,
        OpRecord::Resize {
            mode,
            align_corners,
        } => Op::Resize {
            mode: match mode.as_str() {
                "nearest" => ResizeMode::Nearest,
                "bilinear" => ResizeMode::Bilinear,
                other => {
                    return Err(t.err(
                        node,
                        format!("unknown resize mode '{other}' (nearest, bilinear)"),
                    ));
                }
            },
            align_corners,
        },
    })
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
    let schema = |detail: String| NativeError::Schema {
        path: origin.to_string(),
        detail,
    };
    let rec: GraphRecord = serde_json::from_str(text).map_err(|e| schema(e.to_string()))?;
    if rec.format != FORMAT || rec.version != VERSION {
        return Err(schema(format!(
            "format {} v{} is not {FORMAT} v{VERSION}",
            rec.format, rec.version
        )));
    }
    Ok(rec)
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
    let t = Tensors { path: wshown, st };
    let nodes = rec
        .nodes
        .into_iter()
        .map(|n| {
            Ok(Node {
                op: rebuild(n.op, &n.name, &t)?,
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
