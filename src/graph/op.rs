//! The operations a graph node can perform, with the parameters modules own.
//!
//! Module ops (Conv, Linear, BatchNorm, LSTM) carry their weights, named as PyTorch names them,
//! so quantization works on exactly the tensors PyTorch would. Plumbing ops (Shape, Gather,
//! Reshape, ...) mirror their ONNX definitions because exporters need them.
//!
//! This is also the one definition of an op's stored form: serde writes the attributes (the
//! native format's `graph.json`), skipping the tensors, which [`Op::params_mut`] lists by their
//! state_dict names for the weights file. A new op is a variant here and, if it has tensors, a
//! line in `params_mut`.

mod serial;

use super::Value;
use ndarray::{Array1, Array2, ArrayD};
use serde::{Deserialize, Serialize};

/// Convolution over 1 to 3 spatial dims (`NC[D][H]W`), PyTorch semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvParams {
    /// `[out_channels, in_channels / groups, k...]`.
    #[serde(skip)]
    pub weight: ArrayD<f32>,
    #[serde(with = "serial::present")]
    pub bias: Option<Array1<f32>>,
    pub stride: Vec<usize>,
    /// Padding at the start of each spatial dim.
    pub pad_begin: Vec<usize>,
    /// Padding at the end of each spatial dim (differs from `pad_begin` only for asymmetric pads).
    pub pad_end: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
}

/// `y = x · Wᵀ + b` over the last dim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearParams {
    /// `[out_features, in_features]`.
    #[serde(skip)]
    pub weight: Array2<f32>,
    #[serde(with = "serial::present")]
    pub bias: Option<Array1<f32>>,
    /// Whether an `nn.Linear` module ran this or another module called `F.linear`.
    #[serde(
        rename = "functional",
        with = "serial::functional",
        default,
        skip_serializing_if = "serial::functional::is_module"
    )]
    pub call: LinearCall,
}

impl LinearParams {
    /// An `nn.Linear` module's own forward.
    pub fn new(weight: Array2<f32>, bias: Option<Array1<f32>>) -> LinearParams {
        LinearParams {
            weight,
            bias,
            call: LinearCall::Module,
        }
    }
}

/// Who performs a Linear. PyTorch's module-level tools (`quantize_dynamic`, qconfigs by module
/// type, module swaps) see only [`LinearCall::Module`]: a functional call has no module of its
/// own to swap — `nn.MultiheadAttention` applies its `in_proj_weight` and its `out_proj`'s
/// weight with `F.linear`, so neither is an `nn.Linear` call however its weight is named. A
/// Linear subclass's forward counts as functional too, since those tools match the exact class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinearCall {
    /// The forward of an `nn.Linear` module (the default when nothing says otherwise).
    #[default]
    Module,
    /// `F.linear` inside another module's forward (qlab's kind `F.linear`).
    Functional,
}

/// Batch normalization over dim 1 (eval mode uses the running statistics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNormParams {
    #[serde(skip)]
    pub weight: Array1<f32>,
    #[serde(skip)]
    pub bias: Array1<f32>,
    #[serde(skip)]
    pub running_mean: Array1<f32>,
    #[serde(skip)]
    pub running_var: Array1<f32>,
    pub eps: f32,
    /// PyTorch's momentum (ONNX stores `1 - momentum`).
    pub momentum: f32,
}

/// One direction of one LSTM layer, in PyTorch's gate order (i, f, g, o).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LstmDirection {
    /// `weight_ih`: `[4·hidden, input]`.
    pub w_ih: Array2<f32>,
    /// `weight_hh`: `[4·hidden, hidden]`.
    pub w_hh: Array2<f32>,
    pub b_ih: Array1<f32>,
    pub b_hh: Array1<f32>,
}

/// A single-layer LSTM with ONNX's sequence-first layout: input `[T, B, I]`, outputs
/// `Y [T, dirs, B, H]`, `Y_h [dirs, B, H]`, `Y_c [dirs, B, H]`; optional initial states as
/// inputs 5 and 6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmParams {
    pub hidden_size: usize,
    /// One entry (forward) or two (forward, reverse).
    #[serde(with = "serial::direction_count")]
    pub directions: Vec<LstmDirection>,
}

/// Max / average pooling over the spatial dims of `NC[H]W`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolParams {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub pad_end: Vec<usize>,
    pub dilation: Vec<usize>,
    pub ceil_mode: bool,
    /// Average pooling only: whether padded positions count in the divisor.
    pub count_include_pad: bool,
}

/// Interpolation of `F.interpolate` / ONNX Resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    Nearest,
    Bilinear,
}

/// Layer normalization over the trailing dims from `axis` on (`nn.LayerNorm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerNormParams {
    /// Scale over the normalized dims (flattened).
    #[serde(skip)]
    pub weight: ArrayD<f32>,
    #[serde(with = "serial::present")]
    pub bias: Option<ArrayD<f32>>,
    /// First normalized dim (negative counts from the end).
    pub axis: i64,
    pub eps: f32,
}

/// Parameter-free pointwise float functions that real exports need beyond ReLU / Clip /
/// Sigmoid / Tanh. Each follows PyTorch's formula where PyTorch has the module, so float
/// results match `nn.Hardswish`, `nn.GELU`, ... rather than a re-derivation of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Unary {
    /// `x · relu6(x + 3) / 6` (`nn.Hardswish`).
    HardSwish,
    /// `max(0, min(1, alpha·x + beta))`; with alpha = 1/6, beta = 1/2 computed as
    /// `relu6(x + 3) / 6` (`nn.Hardsigmoid`).
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x · Φ(x)`: exact (`erf`) or PyTorch's tanh approximation.
    Gelu {
        tanh: bool,
    },
    Erf,
    Sqrt,
    Exp,
    Log,
    Neg,
    Abs,
    Reciprocal,
    Floor,
    Ceil,
    /// Logical not of a 0/1 (bool) tensor.
    Not,
}

/// Binary ops beyond Add / Sub / Mul / Div, with numpy broadcasting. Comparisons give 0/1
/// int64 tensors (qlab's bool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binary {
    Pow,
    /// Integer modulo: the divisor's sign (`fmod = false`, Python's `%`) or the dividend's.
    Mod {
        fmod: bool,
    },
    Equal,
    Less,
    Greater,
    Max,
    Min,
    And,
    Or,
}

/// Reductions over `axes` (all dims when none are given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    Mean,
    Sum,
    Max,
    Min,
}

/// A reduction and its axes: from the attribute (older opsets) or from input 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceParams {
    pub kind: Reduction,
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    /// With no axes at all: identity instead of reducing every dim.
    pub noop_with_empty_axes: bool,
}

/// Element types a Cast can produce (qlab computes in f32 and i64; bools are 0/1 i64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CastTo {
    Float,
    Int,
    Bool,
}

/// What a node computes. Its serde form (the native format's node entries) is the variant as
/// the `op` key (`"conv"`, `"batch_norm"`) beside its attributes, without the tensors: those
/// travel separately, through [`Op::params_mut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Conv(ConvParams),
    Linear(LinearParams),
    BatchNorm(BatchNormParams),
    Lstm(LstmParams),
    /// Batched matrix product of two runtime tensors (numpy semantics).
    MatMul,
    Relu,
    /// ReLU6 / Hardtanh / Clip.
    Clip {
        #[serde(with = "serial::any_f32")]
        min: f32,
        #[serde(with = "serial::any_f32")]
        max: f32,
    },
    Sigmoid,
    Tanh,
    Softmax {
        axis: i64,
    },
    MaxPool(PoolParams),
    AvgPool(PoolParams),
    GlobalAvgPool,
    /// Elementwise with numpy broadcasting.
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
    /// Target shape comes from input 1 (0 copies a dim unless `allowzero`, -1 infers).
    Reshape {
        allowzero: bool,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// Axes from the attribute (old opsets) or input 1.
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
    ConstantOfShape {
        #[serde(skip, default = "serial::placeholder_value")]
        value: Value,
    },
    /// ONNX Slice: starts, ends, axes, steps from inputs 1..=4.
    Slice,
    /// Identity and Dropout in inference.
    Identity,
    /// Where quantization starts (PyTorch's QuantStub); identity in a float model.
    QuantStub,
    /// Where quantization ends (PyTorch's DeQuantStub); identity in a float model.
    DeQuantStub,
    /// Resize the two trailing dims: input 1 holds scale factors (f32 [N, C, h, w] factors)
    /// or input 2 the output sizes (i64 [N, C, H, W]).
    Resize {
        mode: ResizeMode,
        align_corners: bool,
    },
    LayerNorm(LayerNormParams),
    #[serde(with = "serial::under_f")]
    Unary(Unary),
    #[serde(with = "serial::under_f")]
    Binary(Binary),
    /// `cond ? a : b` elementwise (cond as 0/1), numpy broadcasting.
    Where,
    Cast {
        to: CastTo,
    },
    Reduce(ReduceParams),
    /// ONNX Split along `axis`: sizes from the attribute (old opsets), input 1, or equal parts
    /// over the node's `outputs`.
    Split {
        axis: i64,
        sizes: Option<Vec<usize>>,
        outputs: usize,
    },
    /// Broadcast to the shape in input 1 (numpy rules, ONNX Expand).
    Expand,
    /// `start, limit, delta` (inputs 0..=2) → 1-d sequence.
    Range,
    /// Repeat along each dim by input 1's counts.
    Tile,
    /// ONNX QuantizeLinear: `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`, the
    /// scale and zero point (inputs 1, 2) per tensor or per slice along `axis`; the integers
    /// are i64 values, their range the zero point's type.
    QuantizeLinear {
        axis: i64,
        qmin: i64,
        qmax: i64,
    },
    /// ONNX DequantizeLinear: `(x - zero_point) · scale`, per tensor or along `axis`.
    DequantizeLinear {
        axis: i64,
    },
}

impl Op {
    /// A short name for listings (`Conv`, `Linear`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::Linear(_) => "Linear",
            Op::BatchNorm(_) => "BatchNorm",
            Op::Lstm(_) => "LSTM",
            Op::MatMul => "MatMul",
            Op::Relu => "ReLU",
            Op::Clip { .. } => "Clip",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::Softmax { .. } => "Softmax",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool(_) => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Concat { .. } => "Concat",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Gather { .. } => "Gather",
            Op::Shape => "Shape",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Slice => "Slice",
            Op::Identity => "Identity",
            Op::QuantStub => "QuantStub",
            Op::DeQuantStub => "DeQuantStub",
            Op::Resize { .. } => "Resize",
            Op::LayerNorm(_) => "LayerNorm",
            Op::Unary(u) => match u {
                Unary::HardSwish => "Hardswish",
                Unary::HardSigmoid { .. } => "Hardsigmoid",
                Unary::Gelu { .. } => "GELU",
                Unary::Erf => "Erf",
                Unary::Sqrt => "Sqrt",
                Unary::Exp => "Exp",
                Unary::Log => "Log",
                Unary::Neg => "Neg",
                Unary::Abs => "Abs",
                Unary::Reciprocal => "Reciprocal",
                Unary::Floor => "Floor",
                Unary::Ceil => "Ceil",
                Unary::Not => "Not",
            },
            Op::Binary(b) => match b {
                Binary::Pow => "Pow",
                Binary::Mod { .. } => "Mod",
                Binary::Equal => "Equal",
                Binary::Less => "Less",
                Binary::Greater => "Greater",
                Binary::Max => "Max",
                Binary::Min => "Min",
                Binary::And => "And",
                Binary::Or => "Or",
            },
            Op::Where => "Where",
            Op::Cast { .. } => "Cast",
            Op::Reduce(r) => match r.kind {
                Reduction::Mean => "ReduceMean",
                Reduction::Sum => "ReduceSum",
                Reduction::Max => "ReduceMax",
                Reduction::Min => "ReduceMin",
            },
            Op::Split { .. } => "Split",
            Op::Expand => "Expand",
            Op::Range => "Range",
            Op::Tile => "Tile",
            Op::QuantizeLinear { .. } => "QuantizeLinear",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
        }
    }

    /// Whether the op is a module with weights of its own (Conv, Linear, BatchNorm, LSTM,
    /// LayerNorm): never folded into a constant, and the op that names its module scope.
    pub fn owns_weights(&self) -> bool {
        matches!(
            self,
            Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_) | Op::Lstm(_) | Op::LayerNorm(_)
        )
    }

    /// Number of trainable / quantizable parameters the op owns.
    pub fn param_count(&self) -> usize {
        let opt = |b: &Option<Array1<f32>>| b.as_ref().map_or(0, |b| b.len());
        match self {
            Op::Conv(c) => c.weight.len() + opt(&c.bias),
            Op::Linear(l) => l.weight.len() + opt(&l.bias),
            Op::BatchNorm(b) => b.weight.len() + b.bias.len(),
            Op::LayerNorm(n) => n.weight.len() + n.bias.as_ref().map_or(0, |b| b.len()),
            Op::Lstm(l) => l
                .directions
                .iter()
                .map(|d| d.w_ih.len() + d.w_hh.len() + d.b_ih.len() + d.b_hh.len())
                .sum(),
            _ => 0,
        }
    }
}

/// A tensor an op carries, as a model file stores it: moved out as a [`Value`] to be written,
/// and replaced by a stored one once its element type and rank are checked (its shape against
/// the op's other tensors is [`crate::graph::validate`]'s business).
pub trait Param {
    /// The tensor, leaving an empty one in its place.
    fn take(&mut self) -> Value;
    /// Replaces the tensor with `v`; refused, saying why, when `v` is not of its type and rank.
    fn set(&mut self, v: Value) -> Result<(), String>;
}

impl<D: ndarray::Dimension> Param for ndarray::Array<f32, D> {
    fn take(&mut self) -> Value {
        Value::F32(std::mem::take(self).into_dyn())
    }

    fn set(&mut self, v: Value) -> Result<(), String> {
        let Value::F32(a) = v else {
            return Err("expected F32, found I64".into());
        };
        let rank = a.ndim();
        *self = a.into_dimensionality().map_err(|_| {
            format!(
                "rank {rank}, expected rank {}",
                D::NDIM.expect("a fixed rank, as only a dynamic one converts from any")
            )
        })?;
        Ok(())
    }
}

/// ConstantOfShape's value, whichever element type.
impl Param for Value {
    fn take(&mut self) -> Value {
        std::mem::replace(self, serial::placeholder_value())
    }

    fn set(&mut self, v: Value) -> Result<(), String> {
        *self = v;
        Ok(())
    }
}

impl Op {
    /// Every tensor the op carries, in a fixed order, named as a PyTorch state_dict names it
    /// within the module (`weight`, `bias`, `running_var`, `weight_ih_l0_reverse`; the fill
    /// `value` of a ConstantOfShape). The one list of an op's tensors: a model file saves and
    /// restores exactly these, so the serde form skips them.
    pub fn params_mut(&mut self) -> Vec<(String, &mut dyn Param)> {
        match self {
            Op::Conv(c) => weight_and_bias(&mut c.weight, &mut c.bias),
            Op::Linear(l) => weight_and_bias(&mut l.weight, &mut l.bias),
            Op::LayerNorm(n) => weight_and_bias(&mut n.weight, &mut n.bias),
            Op::BatchNorm(b) => vec![
                ("weight".into(), &mut b.weight),
                ("bias".into(), &mut b.bias),
                ("running_mean".into(), &mut b.running_mean),
                ("running_var".into(), &mut b.running_var),
            ],
            Op::Lstm(l) => {
                let mut out: Vec<(String, &mut dyn Param)> = Vec::new();
                for (d, w) in l.directions.iter_mut().enumerate() {
                    // PyTorch's names for layer 0: the second direction is the reverse one.
                    let s = if d == 0 { "" } else { "_reverse" };
                    out.push((format!("weight_ih_l0{s}"), &mut w.w_ih));
                    out.push((format!("weight_hh_l0{s}"), &mut w.w_hh));
                    out.push((format!("bias_ih_l0{s}"), &mut w.b_ih));
                    out.push((format!("bias_hh_l0{s}"), &mut w.b_hh));
                }
                out
            }
            Op::ConstantOfShape { value } => vec![("value".into(), value)],
            _ => Vec::new(),
        }
    }
}

/// A module's `weight` and, when it has one, its `bias`.
fn weight_and_bias<'a, W: Param + 'a, B: Param + 'a>(
    weight: &'a mut W,
    bias: &'a mut Option<B>,
) -> Vec<(String, &'a mut dyn Param)> {
    let mut out: Vec<(String, &'a mut dyn Param)> = vec![("weight".into(), weight)];
    if let Some(b) = bias {
        out.push(("bias".into(), b));
    }
    out
}

fn dims(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

impl Op {
    /// The op's attributes in one short line (`k=3x3 s=1x1 p=1,1,1,1 g=1`).
    pub fn describe(&self) -> String {
        let pads = |b: &[usize], e: &[usize]| {
            b.iter()
                .chain(e)
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Op::Conv(c) => format!(
                "{}→{} k={} s={} p={} d={} g={}{}",
                c.weight.shape()[1] * c.groups,
                c.weight.shape()[0],
                dims(&c.weight.shape()[2..]),
                dims(&c.stride),
                pads(&c.pad_begin, &c.pad_end),
                dims(&c.dilation),
                c.groups,
                if c.bias.is_some() { "" } else { " no-bias" }
            ),
            Op::Linear(l) => format!(
                "{}→{}{}{}",
                l.weight.ncols(),
                l.weight.nrows(),
                if l.bias.is_some() { "" } else { " no-bias" },
                // No module of its own: module-type qconfigs and `quantize dynamic` skip it.
                match l.call {
                    LinearCall::Module => "",
                    LinearCall::Functional => " F.linear",
                }
            ),
            Op::BatchNorm(b) => {
                format!("C={} eps={} momentum={}", b.weight.len(), b.eps, b.momentum)
            }
            Op::Lstm(l) => format!(
                "{}→{} {}",
                l.directions.first().map_or(0, |d| d.w_ih.ncols()),
                l.hidden_size,
                if l.directions.len() == 2 {
                    "bidirectional"
                } else {
                    "forward"
                }
            ),
            Op::Clip { min, max } => format!("[{min}, {max}]"),
            Op::Softmax { axis }
            | Op::Concat { axis }
            | Op::Flatten { axis }
            | Op::Gather { axis } => format!("axis={axis}"),
            Op::MaxPool(p) | Op::AvgPool(p) => format!(
                "k={} s={} p={}{}{}",
                dims(&p.kernel),
                dims(&p.stride),
                pads(&p.pad_begin, &p.pad_end),
                if p.ceil_mode { " ceil" } else { "" },
                if matches!(self, Op::AvgPool(_)) && p.count_include_pad {
                    " count_include_pad"
                } else {
                    ""
                }
            ),
            Op::Transpose { perm } => format!("perm={perm:?}"),
            Op::LayerNorm(n) => format!("axis={} eps={}", n.axis, n.eps),
            Op::Unary(Unary::HardSigmoid { alpha, beta }) => format!("alpha={alpha} beta={beta}"),
            Op::Unary(Unary::Gelu { tanh: true }) => "tanh".into(),
            Op::Reduce(r) => format!(
                "axes={}{}",
                r.axes.as_ref().map_or("input".into(), |a| format!("{a:?}")),
                if r.keepdims { " keepdims" } else { "" }
            ),
            Op::Split { axis, sizes, .. } => match sizes {
                Some(s) => format!("axis={axis} sizes={s:?}"),
                None => format!("axis={axis}"),
            },
            Op::Cast { to } => format!("to={to:?}").to_lowercase(),
            Op::Resize {
                mode,
                align_corners,
            } => format!(
                "{mode:?}{}",
                if *align_corners { " align_corners" } else { "" }
            )
            .to_lowercase(),
            _ => String::new(),
        }
    }
}
