//! One ONNX node → one graph op. Module ops (Conv, Gemm/MatMul with a constant weight,
//! BatchNormalization, LSTM) take their weights out of the constants and keep only data inputs.

use super::attrs::Attrs;
use super::proto::NodeProto;
use crate::graph::validate::{self, MAX_GEOMETRY};
use crate::graph::{
    BatchNormParams, Binary, CastTo, ConvParams, LayerNormParams, LinearParams, LstmDirection,
    LstmParams, Op, PoolParams, ReduceParams, Reduction, ResizeMode, Unary, Value,
};
use crate::import::ImportError;
use ndarray::{Array1, Array2, ArrayD, Axis, Ix1, Ix2};
use std::collections::HashMap;

/// A converted node: the op and the value names it reads at run time ("" = absent operand).
pub struct Converted {
    pub op: Op,
    pub inputs: Vec<String>,
}

/// Looks up operands, distinguishing constants from run-time values.
pub struct Operands<'a> {
    pub node: &'a NodeProto,
    pub attrs: &'a Attrs<'a>,
    pub consts: &'a HashMap<String, Value>,
    /// The integer range of each 8-bit constant, by name.
    pub narrow: &'a HashMap<String, (i64, i64)>,
}

impl Operands<'_> {
    fn name(&self, i: usize) -> &str {
        self.node.input.get(i).map_or("", String::as_str)
    }

    fn present(&self, i: usize) -> bool {
        !self.name(i).is_empty()
    }

    /// Operand `i` as a constant f32 tensor (a weight).
    fn weight(&self, i: usize) -> Result<ArrayD<f32>, ImportError> {
        let name = self.name(i);
        let v = self
            .consts
            .get(name)
            .ok_or_else(|| ImportError::NotConstant {
                node: self.attrs.node.clone(),
                op_type: self.attrs.op_type.clone(),
                input: name.to_string(),
            })?;
        match v {
            Value::F32(a) => Ok(a.clone()),
            Value::I64(_) => Err(self
                .attrs
                .unsupported(name, "weights must be floating point")),
        }
    }

    fn optional_weight(&self, i: usize) -> Result<Option<ArrayD<f32>>, ImportError> {
        if self.present(i) {
            self.weight(i).map(Some)
        } else {
            Ok(None)
        }
    }

    fn vector(&self, i: usize, len: usize, what: &str) -> Result<Array1<f32>, ImportError> {
        let w = self.weight(i)?;
        if w.len() != len {
            return Err(self.attrs.unsupported(
                what,
                format!("expected {len} values, found shape {:?}", w.shape()),
            ));
        }
        Ok(w.into_shape_with_order(len)
            .expect("length checked")
            .into_dimensionality::<Ix1>()
            .expect("1-d"))
    }

    fn data(&self, i: usize) -> String {
        self.name(i).to_string()
    }
}

fn matrix(a: ArrayD<f32>, attrs: &Attrs, what: &str) -> Result<Array2<f32>, ImportError> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<Ix2>()
        .map_err(|_| attrs.unsupported(what, format!("expected a matrix, found shape {shape:?}")))
}

/// Spatial geometry shared by Conv and the pools.
struct Geometry {
    stride: Vec<usize>,
    dilation: Vec<usize>,
    pad_begin: Vec<usize>,
    pad_end: Vec<usize>,
}

/// A non-negative list attribute of `len` entries, each at most [`MAX_GEOMETRY`] (and at least
/// 1 unless `zero_ok`).
fn bounded(
    a: &Attrs,
    name: &'static str,
    len: usize,
    default: usize,
    zero_ok: bool,
) -> Result<Vec<usize>, ImportError> {
    let v = a.sizes(name, vec![default; len])?;
    // The graph check's rule, applied before the op exists (import may fold it at once).
    validate::geometry_list(name, &v, len, usize::from(!zero_ok))
        .map_err(|e| a.unsupported(e.field, e.detail))?;
    Ok(v)
}

fn geometry(a: &Attrs, spatial: usize) -> Result<Geometry, ImportError> {
    if let Some(p) = a.string("auto_pad").filter(|p| p != "NOTSET") {
        return Err(a.unsupported(
            "auto_pad",
            format!("'{p}' (only explicit pads are supported)"),
        ));
    }
    let pads = bounded(a, "pads", 2 * spatial, 0, true)?;
    Ok(Geometry {
        stride: bounded(a, "strides", spatial, 1, false)?,
        dilation: bounded(a, "dilations", spatial, 1, false)?,
        pad_begin: pads[..spatial].to_vec(),
        pad_end: pads[spatial..].to_vec(),
    })
}

fn conv(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&[
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "pads",
        "strides",
    ])?;
    let weight = o.weight(1)?;
    let spatial = weight.ndim().saturating_sub(2);
    if !(1..=3).contains(&spatial) {
        return Err(a.unsupported(
            "kernel_shape",
            format!("weight of shape {:?}", weight.shape()),
        ));
    }
    if let Some(k) = a.ints("kernel_shape")
        && k.iter()
            .map(|&d| d as u64)
            .ne(weight.shape()[2..].iter().map(|&d| d as u64))
    {
        return Err(a.unsupported(
            "kernel_shape",
            format!("{k:?} differs from the weight's {:?}", &weight.shape()[2..]),
        ));
    }
    let Geometry {
        stride,
        dilation,
        pad_begin,
        pad_end,
    } = geometry(a, spatial)?;
    let out = weight.shape()[0];
    let bias = if o.present(2) {
        Some(o.vector(2, out, "bias")?)
    } else {
        None
    };
    let groups =
        usize::try_from(a.int("group", 1)).map_err(|_| a.unsupported("group", "negative"))?;
    Ok(Converted {
        op: Op::Conv(ConvParams {
            weight,
            bias,
            stride,
            pad_begin,
            pad_end,
            dilation,
            groups,
        }),
        inputs: vec![o.data(0)],
    })
}

fn gemm(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["alpha", "beta", "transA", "transB"])?;
    if a.float("alpha", 1.0) != 1.0 || a.float("beta", 1.0) != 1.0 || a.int("transA", 0) != 0 {
        return Err(a.unsupported(
            "alpha/beta/transA",
            "only alpha=1, beta=1, transA=0 (a Linear layer) is supported",
        ));
    }
    let b = matrix(o.weight(1)?, a, "B")?;
    let weight = if a.int("transB", 0) == 1 {
        b
    } else {
        b.reversed_axes().as_standard_layout().into_owned()
    };
    let bias = if o.present(2) {
        Some(o.vector(2, weight.nrows(), "C")?)
    } else {
        None
    };
    Ok(Converted {
        op: Op::Linear(LinearParams::new(weight, bias)),
        inputs: vec![o.data(0)],
    })
}

fn matmul(o: &Operands) -> Result<Converted, ImportError> {
    o.attrs.only(&[])?;
    match o.consts.get(o.name(1)) {
        Some(Value::F32(b)) if b.ndim() == 2 => {
            let weight = matrix(b.clone(), o.attrs, "B")?
                .reversed_axes()
                .as_standard_layout()
                .into_owned();
            Ok(Converted {
                op: Op::Linear(LinearParams::new(weight, None)),
                inputs: vec![o.data(0)],
            })
        }
        _ => Ok(Converted {
            op: Op::MatMul,
            inputs: vec![o.data(0), o.data(1)],
        }),
    }
}

fn batch_norm(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["epsilon", "momentum", "training_mode", "spatial"])?;
    if a.int("training_mode", 0) != 0 {
        return Err(a.unsupported("training_mode", "export the model in eval mode"));
    }
    let c = o.weight(1)?.len();
    let p = BatchNormParams {
        weight: o.vector(1, c, "scale")?,
        bias: o.vector(2, c, "B")?,
        running_mean: o.vector(3, c, "input_mean")?,
        running_var: o.vector(4, c, "input_var")?,
        eps: a.float("epsilon", 1e-5),
        // ONNX stores 1 - momentum; undo it in f64 and round to the decimal the user wrote.
        momentum: (((1.0 - a.float("momentum", 0.9) as f64) * 1e6).round() / 1e6) as f32,
    };
    Ok(Converted {
        op: Op::BatchNorm(p),
        inputs: vec![o.data(0)],
    })
}

fn pool(o: &Operands, max: bool) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&[
        "auto_pad",
        "ceil_mode",
        "count_include_pad",
        "dilations",
        "kernel_shape",
        "pads",
        "strides",
        "storage_order",
    ])?;
    if o.node.output.get(1).is_some_and(|s| !s.is_empty()) {
        return Err(a.unsupported("Indices", "the indices output of MaxPool is not supported"));
    }
    let spatial = a.ints("kernel_shape").map_or(0, |k| k.len());
    if !(1..=3).contains(&spatial) {
        return Err(a.unsupported("kernel_shape", "missing, or not 1 to 3 spatial dims"));
    }
    let kernel = bounded(a, "kernel_shape", spatial, 1, false)?;
    let Geometry {
        stride,
        dilation,
        pad_begin,
        pad_end,
    } = geometry(a, spatial)?;
    let p = PoolParams {
        kernel,
        stride,
        pad_begin,
        pad_end,
        dilation,
        ceil_mode: a.int("ceil_mode", 0) != 0,
        count_include_pad: a.int("count_include_pad", 0) != 0,
    };
    validate::pool(&p, max).map_err(|e| a.unsupported(e.field, e.detail))?;
    Ok(Converted {
        op: if max { Op::MaxPool(p) } else { Op::AvgPool(p) },
        inputs: vec![o.data(0)],
    })
}

fn clip(o: &Operands, opset: i64) -> Result<Converted, ImportError> {
    let a = o.attrs;
    let (min, max) = if opset < 11 {
        (a.float("min", f32::MIN), a.float("max", f32::MAX))
    } else {
        let scalar = |i: usize, default: f32| -> Result<f32, ImportError> {
            Ok(match o.optional_weight(i)? {
                Some(v) => *v
                    .iter()
                    .next()
                    .ok_or_else(|| a.unsupported("min/max", "empty bound"))?,
                None => default,
            })
        };
        (scalar(1, f32::NEG_INFINITY)?, scalar(2, f32::INFINITY)?)
    };
    validate::clip_bounds(min, max).map_err(|e| a.unsupported(e.field, e.detail))?;
    Ok(Converted {
        op: Op::Clip { min, max },
        inputs: vec![o.data(0)],
    })
}

/// ONNX packs LSTM gates as (i, o, f, c); PyTorch as (i, f, g, o). Block `k` of PyTorch's
/// order is ONNX block `ONNX_BLOCK[k]`.
const ONNX_BLOCK: [usize; 4] = [0, 2, 3, 1];

fn lstm(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["hidden_size", "direction", "activations", "layout"])?;
    let hidden = usize::try_from(a.int("hidden_size", 0))
        .ok()
        .filter(|&h| (1..=MAX_GEOMETRY).contains(&h))
        .ok_or_else(|| {
            a.unsupported(
                "hidden_size",
                format!(
                    "{} (missing, or outside 1..={MAX_GEOMETRY})",
                    a.int("hidden_size", 0)
                ),
            )
        })?;
    if a.int("layout", 0) != 0 {
        return Err(a.unsupported("layout", "only layout 0 (sequence first) is supported"));
    }
    if let Some(acts) = a.strings("activations").filter(|v| {
        v.iter()
            .map(|s| s.to_ascii_lowercase())
            .ne(["sigmoid", "tanh", "tanh"]
                .iter()
                .cycle()
                .take(v.len())
                .map(|s| s.to_string()))
    }) {
        return Err(a.unsupported(
            "activations",
            format!("{acts:?} (only Sigmoid, Tanh, Tanh)"),
        ));
    }
    let dirs = match a.string("direction").as_deref().unwrap_or("forward") {
        "forward" => 1,
        "bidirectional" => 2,
        other => return Err(a.unsupported("direction", format!("'{other}'"))),
    };
    if o.present(4) || o.present(7) {
        return Err(a.unsupported(
            "sequence_lens/P",
            "variable sequence lengths and peepholes are not supported",
        ));
    }
    let (w, r) = (o.weight(1)?, o.weight(2)?);
    let b = o.optional_weight(3)?;
    let four = 4 * hidden;
    if w.ndim() != 3
        || w.shape()[0] != dirs
        || w.shape()[1] != four
        || r.shape() != [dirs, four, hidden]
    {
        return Err(a.unsupported(
            "W/R",
            format!(
                "shapes {:?} / {:?} do not fit hidden_size {hidden}",
                w.shape(),
                r.shape()
            ),
        ));
    }
    if let Some(b) = b.as_ref().filter(|b| b.shape() != [dirs, 2 * four]) {
        return Err(a.unsupported(
            "B",
            format!(
                "shape {:?}, expected [{dirs}, {}] for hidden_size {hidden}",
                b.shape(),
                2 * four
            ),
        ));
    }
    let reorder = |m: ndarray::ArrayView2<f32>| -> Array2<f32> {
        let blocks: Vec<_> = ONNX_BLOCK
            .iter()
            .map(|&k| m.slice(ndarray::s![k * hidden..(k + 1) * hidden, ..]))
            .collect();
        ndarray::concatenate(Axis(0), &blocks).expect("equal blocks")
    };
    let directions = (0..dirs)
        .map(|d| {
            let bias =
                |off: usize| -> Array1<f32> {
                    match &b {
                        Some(b) => {
                            let row = b.index_axis(Axis(0), d);
                            Array1::from_iter(ONNX_BLOCK.iter().flat_map(|&k| {
                                row.iter().skip(off + k * hidden).take(hidden).copied()
                            }))
                        }
                        None => Array1::zeros(four),
                    }
                };
            let wd = w
                .index_axis(Axis(0), d)
                .into_dimensionality::<Ix2>()
                .expect("3-d W");
            let rd = r
                .index_axis(Axis(0), d)
                .into_dimensionality::<Ix2>()
                .expect("3-d R");
            LstmDirection {
                w_ih: reorder(wd),
                w_hh: reorder(rd),
                b_ih: bias(0),
                b_hh: bias(four),
            }
        })
        .collect();
    let inputs = vec![
        o.data(0),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        o.data(5),
        o.data(6),
    ];
    Ok(Converted {
        op: Op::Lstm(LstmParams {
            hidden_size: hidden,
            directions,
        }),
        inputs,
    })
}

fn resize(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&[
        "mode",
        "coordinate_transformation_mode",
        "nearest_mode",
        "cubic_coeff_a",
        "exclude_outside",
        "extrapolation_value",
        "antialias",
    ])?;
    if a.int("antialias", 0) != 0 {
        return Err(a.unsupported("antialias", "antialiased resizing"));
    }
    let ctm = a
        .string("coordinate_transformation_mode")
        .unwrap_or_else(|| "half_pixel".into());
    let (mode, align_corners) = match (
        a.string("mode").as_deref().unwrap_or("nearest"),
        ctm.as_str(),
    ) {
        ("nearest", "asymmetric") if a.string("nearest_mode").as_deref() == Some("floor") => {
            (ResizeMode::Nearest, false)
        }
        ("linear", "pytorch_half_pixel" | "half_pixel") => (ResizeMode::Bilinear, false),
        ("linear", "align_corners") => (ResizeMode::Bilinear, true),
        (m, c) => {
            return Err(a.unsupported("mode", format!("mode '{m}' with coordinate_transformation_mode '{c}' (PyTorch's nearest and bilinear exports are supported)")));
        }
    };
    resize_target(o)?;
    Ok(Converted {
        op: Op::Resize {
            mode,
            align_corners,
        },
        inputs: vec![o.data(0), o.data(2), o.data(3)],
    })
}

/// Constant Resize scales must be finite and positive, constant sizes positive (the output's
/// size is checked against the memory budget when the input's is known).
fn resize_target(o: &Operands) -> Result<(), ImportError> {
    let a = o.attrs;
    let entries = |i: usize| -> Vec<f64> {
        match o.consts.get(o.name(i)) {
            Some(Value::F32(v)) => v.iter().map(|&x| x as f64).collect(),
            Some(Value::I64(v)) => v.iter().map(|&x| x as f64).collect(),
            None => Vec::new(),
        }
    };
    for (i, name) in [(2, "scales"), (3, "sizes")] {
        let v = entries(i);
        if let Some(x) = v.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(a.unsupported(name, format!("{x} in {v:?} (each must be finite and > 0)")));
        }
    }
    Ok(())
}

fn layer_norm(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["axis", "epsilon", "stash_type"])?;
    if o.node.output.iter().skip(1).any(|s| !s.is_empty()) {
        return Err(a.unsupported(
            "outputs",
            "the Mean / InvStdDev outputs of LayerNormalization are not supported",
        ));
    }
    let eps = a.float("epsilon", 1e-5);
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(a.unsupported("epsilon", format!("{eps} (must be finite and >= 0)")));
    }
    Ok(Converted {
        op: Op::LayerNorm(LayerNormParams {
            weight: o.weight(1)?,
            bias: o.optional_weight(2)?,
            axis: a.int("axis", -1),
            eps,
        }),
        inputs: vec![o.data(0)],
    })
}

/// ReduceMean / ReduceSum / ReduceMax / ReduceMin: axes are an attribute before opset 18
/// (13 for ReduceSum) and operand 1 after.
fn reduce(o: &Operands, kind: Reduction, opset: i64) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
    let axes_as_input = match kind {
        Reduction::Sum => opset >= 13,
        _ => opset >= 18,
    };
    let op = Op::Reduce(ReduceParams {
        kind,
        axes: if axes_as_input { None } else { a.ints("axes") },
        keepdims: a.int("keepdims", 1) != 0,
        noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
    });
    let mut inputs = vec![o.data(0)];
    if axes_as_input && o.present(1) {
        inputs.push(o.data(1));
    }
    Ok(Converted { op, inputs })
}

fn split(o: &Operands, opset: i64) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["axis", "split", "num_outputs"])?;
    let outputs = o.node.output.len();
    if outputs == 0 {
        return Err(a.unsupported("outputs", "Split without outputs"));
    }
    let sizes = match a.ints("split") {
        Some(s) if opset < 13 => Some(
            s.iter()
                .map(|&d| usize::try_from(d).map_err(|_| a.unsupported("split", format!("{d}"))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    Ok(Converted {
        op: Op::Split {
            axis: a.int("axis", 0),
            sizes,
            outputs,
        },
        inputs: o.node.input.clone(),
    })
}

fn cast(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    a.only(&["to", "saturate", "round_mode"])?;
    // ONNX TensorProto data types: floats to f32, integers to i64, bool to 0/1.
    let to = match a.int("to", 0) {
        1 | 10 | 11 | 16 => CastTo::Float,
        2..=7 | 12 | 13 => CastTo::Int,
        9 => CastTo::Bool,
        other => return Err(a.unsupported("to", format!("data type {other}"))),
    };
    Ok(Converted {
        op: Op::Cast { to },
        inputs: vec![o.data(0)],
    })
}

/// A binary op of exactly two operands (ONNX's variadic Max / Min with two).
fn binary(o: &Operands, op: Binary) -> Result<Converted, ImportError> {
    if o.node.input.len() != 2 {
        return Err(o.attrs.unsupported(
            "inputs",
            format!("{} operands (2 are supported)", o.node.input.len()),
        ));
    }
    Ok(Converted {
        op: Op::Binary(op),
        inputs: o.node.input.clone(),
    })
}

/// The ONNX op types [`convert`] takes (default domain), for `qlab inspect --ops`; a test
/// checks every one of them converts.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "Greater",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LSTM",
    "LayerNormalization",
    "Less",
    "Log",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mod",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "Pow",
    "QuantizeLinear",
    "Range",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// Converts one node. `opset` is the model's default-domain opset.
pub fn convert(o: &Operands, opset: i64) -> Result<Converted, ImportError> {
    let a = o.attrs;
    let all_inputs = || o.node.input.clone();
    let simple = |op: Op| {
        Ok(Converted {
            op,
            inputs: all_inputs(),
        })
    };
    let axes = |name: &str| if opset < 13 { a.ints(name) } else { None };
    match a.op_type.as_str() {
        "Conv" => conv(o),
        "Gemm" => gemm(o),
        "MatMul" => matmul(o),
        "BatchNormalization" => batch_norm(o),
        "LSTM" => lstm(o),
        "MaxPool" => pool(o, true),
        "AveragePool" => pool(o, false),
        "Clip" => clip(o, opset),
        "Relu" => simple(Op::Relu),
        "Sigmoid" => simple(Op::Sigmoid),
        "Tanh" => simple(Op::Tanh),
        "Softmax" => {
            let axis = a.int("axis", if opset < 13 { 1 } else { -1 });
            if opset < 13 && axis != -1 {
                // Before opset 13 Softmax flattened from `axis` on; that equals a per-axis softmax
                // only when `axis` is the last dim, which the importer cannot know yet.
                return Err(
                    a.unsupported("axis", "pre-opset-13 Softmax with an axis other than -1")
                );
            }
            simple(Op::Softmax { axis })
        }
        "GlobalAveragePool" => simple(Op::GlobalAvgPool),
        "Add" => simple(Op::Add),
        "Sub" => simple(Op::Sub),
        "Mul" => simple(Op::Mul),
        "Div" => simple(Op::Div),
        "Concat" => simple(Op::Concat {
            axis: a.int("axis", 0),
        }),
        "Flatten" => simple(Op::Flatten {
            axis: a.int("axis", 1),
        }),
        "Reshape" => simple(Op::Reshape {
            allowzero: a.int("allowzero", 0) != 0,
        }),
        "Transpose" => simple(Op::Transpose {
            perm: a.sizes("perm", Vec::new())?,
        }),
        "Squeeze" => simple(Op::Squeeze { axes: axes("axes") }),
        "Unsqueeze" => simple(Op::Unsqueeze { axes: axes("axes") }),
        "Gather" => simple(Op::Gather {
            axis: a.int("axis", 0),
        }),
        "Shape" => {
            a.only(&[])?;
            simple(Op::Shape)
        }
        "ConstantOfShape" => {
            let value = a
                .tensor("value")?
                .unwrap_or_else(|| Value::F32(ArrayD::zeros(ndarray::IxDyn(&[1]))));
            if value.shape().iter().product::<usize>() != 1 {
                return Err(a.unsupported(
                    "value",
                    format!("shape {:?}, expected one element", value.shape()),
                ));
            }
            simple(Op::ConstantOfShape { value })
        }
        "Slice" if opset >= 10 => simple(Op::Slice),
        "Resize" if opset >= 11 => resize(o),
        "Identity" => simple(Op::Identity),
        "LayerNormalization" => layer_norm(o),
        "ReduceMean" => reduce(o, Reduction::Mean, opset),
        "ReduceSum" => reduce(o, Reduction::Sum, opset),
        "ReduceMax" => reduce(o, Reduction::Max, opset),
        "ReduceMin" => reduce(o, Reduction::Min, opset),
        "Split" => split(o, opset),
        "Cast" => cast(o),
        "HardSwish" => simple(Op::Unary(Unary::HardSwish)),
        "HardSigmoid" => {
            let (alpha, beta) = (a.float("alpha", 0.2), a.float("beta", 0.5));
            if !(alpha.is_finite() && beta.is_finite()) {
                return Err(a.unsupported("alpha/beta", format!("{alpha}, {beta}")));
            }
            simple(Op::Unary(Unary::HardSigmoid { alpha, beta }))
        }
        "Gelu" => match a.string("approximate").as_deref() {
            None | Some("none") => simple(Op::Unary(Unary::Gelu { tanh: false })),
            Some("tanh") => simple(Op::Unary(Unary::Gelu { tanh: true })),
            Some(other) => Err(a.unsupported("approximate", format!("'{other}'"))),
        },
        "Erf" => simple(Op::Unary(Unary::Erf)),
        "Sqrt" => simple(Op::Unary(Unary::Sqrt)),
        "Exp" => simple(Op::Unary(Unary::Exp)),
        "Log" => simple(Op::Unary(Unary::Log)),
        "Neg" => simple(Op::Unary(Unary::Neg)),
        "Abs" => simple(Op::Unary(Unary::Abs)),
        "Reciprocal" => simple(Op::Unary(Unary::Reciprocal)),
        "Floor" => simple(Op::Unary(Unary::Floor)),
        "Ceil" => simple(Op::Unary(Unary::Ceil)),
        "Not" => simple(Op::Unary(Unary::Not)),
        "Pow" => binary(o, Binary::Pow),
        "Mod" => binary(
            o,
            Binary::Mod {
                fmod: a.int("fmod", 0) != 0,
            },
        ),
        "Equal" => binary(o, Binary::Equal),
        "Less" => binary(o, Binary::Less),
        "Greater" => binary(o, Binary::Greater),
        "Max" => binary(o, Binary::Max),
        "Min" => binary(o, Binary::Min),
        "And" => binary(o, Binary::And),
        "Or" => binary(o, Binary::Or),
        "Where" => simple(Op::Where),
        "Expand" => simple(Op::Expand),
        "Range" => simple(Op::Range),
        "Tile" => simple(Op::Tile),
        "QuantizeLinear" => quantize_linear(o),
        "DequantizeLinear" => {
            block_wise(a)?;
            simple(Op::DequantizeLinear {
                axis: a.int("axis", 1),
            })
        }
        "Dropout" => {
            if o.node.output.get(1).is_some_and(|s| !s.is_empty()) {
                return Err(a.unsupported("mask", "the mask output of Dropout is not supported"));
            }
            Ok(Converted {
                op: Op::Identity,
                inputs: vec![o.data(0)],
            })
        }
        other => Err(ImportError::UnsupportedOp {
            node: a.node.clone(),
            op_type: other.to_string(),
        }),
    }
}

/// Blocked quantization (opset 21's `block_size`) has no qlab counterpart.
fn block_wise(a: &Attrs) -> Result<(), ImportError> {
    match a.int("block_size", 0) {
        0 => Ok(()),
        b => Err(a.unsupported("block_size", format!("{b} (blocked quantization)"))),
    }
}

/// QuantizeLinear saturates to its zero point's type (`output_dtype` from opset 21), uint8
/// when neither is given; qlab's integer values are 8-bit only.
fn quantize_linear(o: &Operands) -> Result<Converted, ImportError> {
    let a = o.attrs;
    block_wise(a)?;
    let by_type = |t: i64| match t {
        2 => Ok((0, 255)),
        3 => Ok((-128, 127)),
        other => Err(a.unsupported(
            "output_dtype",
            format!("ONNX type {other} (only uint8 and int8 outputs are supported)"),
        )),
    };
    let (qmin, qmax) = match a.int("output_dtype", 0) {
        0 if o.present(2) => o.narrow.get(o.name(2)).copied().ok_or_else(|| {
            a.unsupported(
                "y_zero_point",
                format!("'{}' is not an int8 or uint8 constant", o.name(2)),
            )
        })?,
        0 => (0, 255),
        t => by_type(t)?,
    };
    Ok(Converted {
        op: Op::QuantizeLinear {
            axis: a.int("axis", 1),
            qmin,
            qmax,
        },
        inputs: (0..o.node.input.len().min(3)).map(|i| o.data(i)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed op type reaches its converter (it may still ask for weights or attributes,
    /// but never answers "unsupported op"); an unlisted one does not.
    #[test]
    fn the_supported_list_is_what_convert_takes() {
        let consts = HashMap::new();
        let converts = |op: &str| {
            let node = NodeProto {
                op_type: Some(op.into()),
                input: vec!["x".into(), "y".into()],
                output: vec!["z".into()],
                ..Default::default()
            };
            let attrs = Attrs::new(&node, "n");
            let o = Operands {
                node: &node,
                attrs: &attrs,
                consts: &consts,
                narrow: &HashMap::new(),
            };
            !matches!(convert(&o, 17), Err(ImportError::UnsupportedOp { .. }))
        };
        for op in SUPPORTED_OPS.iter().filter(|&&op| op != "Constant") {
            assert!(converts(op), "{op} is listed but not converted");
        }
        assert!(!converts("Einsum"));
    }
}
