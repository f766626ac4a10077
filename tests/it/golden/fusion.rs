//! Golden checks for `fusion.json`: BN folding and `fuse_modules`.
//!
//! Folded weights and biases are compared bit for bit (NUMERICS §5.2). Float conv / linear
//! outputs are float references, compared with [`FLOAT_TOLERANCE`] (golden README §11; PyTorch's
//! conv path at batch 1 and ours sum in different orders). Transposed convs are folded and
//! checked, but qlab has no transposed-conv op to run them; the grouped transposed case must
//! refuse to fold, as PyTorch does. `fuse_modules` cases rebuild the recorded model as a graph,
//! then compare module classes (eval and QAT fusion), the folded state dict and the outputs.

use super::Check;
use super::json::*;
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use qlab::graph::ops::{batch_norm_eval, conv_forward, linear_forward};
use qlab::graph::{
    BatchNormParams, ConvParams, Graph, GraphError, GraphInput, LinearParams, Node, Op,
    Value as GValue,
};
use qlab::workflow::{
    fuse_conv_bn_eval, fuse_conv_transpose_bn_eval, fuse_linear_bn_eval, fuse_modules,
    fuse_modules_qat, module_types, state_dict,
};
use serde_json::Value;

/// Relative tolerance (to max(|want|, 1)) for float outputs.
const FLOAT_TOLERANCE: f32 = 1e-5;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "fuse_conv_bn_eval" => conv_bn,
        "fuse_linear_bn_eval" => linear_bn,
        "fuse_modules" => modules,
        _ => return None,
    })
}

fn array(t: &Value) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&shape(t)), f32s(t)).expect("golden tensor shape")
}

fn vec1(t: &Value) -> Array1<f32> {
    Array1::from(f32s(t))
}

fn expect_close(what: &str, got: &ArrayD<f32>, want: &Value) -> Result<(), String> {
    expect_eq(&format!("{what}.shape"), got.shape().to_vec(), shape(want))?;
    let got: Vec<f32> = got.iter().copied().collect();
    expect_close_f32(what, &got, &f32s(want), FLOAT_TOLERANCE)
}

fn expect_bits(what: &str, got: &ArrayD<f32>, want: &Value) -> Outcome {
    expect_eq(&format!("{what}.shape"), got.shape().to_vec(), shape(want))?;
    Ok(expect_f32_bits(
        what,
        got.as_standard_layout().as_slice().unwrap(),
        &f32s(want),
    )?)
}

/// A BatchNorm from the case's `bn_*` inputs (`null` weight / bias: not affine).
fn batch_norm(inputs: &Value, eps: f64) -> BatchNormParams {
    let mean = vec1(&inputs["bn_running_mean"]);
    let c = mean.len();
    let opt = |v: &Value, fill: f32| {
        if v.is_null() {
            Array1::from_elem(c, fill)
        } else {
            vec1(v)
        }
    };
    BatchNormParams {
        weight: opt(&inputs["bn_weight"], 1.0),
        bias: opt(&inputs["bn_bias"], 0.0),
        running_mean: mean,
        running_var: vec1(&inputs["bn_running_var"]),
        eps: eps as f32,
        momentum: 0.1,
    }
}

/// An int or per-dim list argument, `dims` long.
fn dims_arg(v: &Value, dims: usize, default: usize) -> Vec<usize> {
    match v {
        Value::Null => vec![default; dims],
        Value::Array(a) => a.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
        n => vec![n.as_u64().unwrap() as usize; dims],
    }
}

fn conv_params(args: &Value, weight: ArrayD<f32>, bias: Option<Array1<f32>>) -> ConvParams {
    let dims = weight.ndim() - 2;
    let pad = dims_arg(&args["padding"], dims, 0);
    ConvParams {
        weight,
        bias,
        stride: dims_arg(&args["stride"], dims, 1),
        pad_begin: pad.clone(),
        pad_end: pad,
        dilation: dims_arg(&args["dilation"], dims, 1),
        groups: args["groups"].as_u64().unwrap_or(1) as usize,
    }
}

/// The recorded module type and constructor kwargs must describe the recorded tensors; kwargs
/// that would change the fold or the forward and that qlab does not model fail the case.
fn check_conv_args(p: &Value, weight: &ArrayD<f32>, has_bias: bool) -> Result<(), String> {
    let transpose = p["transpose"].as_bool().ok_or("transpose is not a bool")?;
    let dims = weight.ndim() - 2;
    let want_type = format!("Conv{}{dims}d", if transpose { "Transpose" } else { "" });
    expect_eq(
        "conv_type",
        p["conv_type"].as_str(),
        Some(want_type.as_str()),
    )?;
    let args = p["conv_args"].as_object().ok_or("conv_args")?;
    for (k, v) in args {
        match k.as_str() {
            "in_channels" | "out_channels" | "kernel_size" | "stride" | "padding" | "dilation"
            | "groups" => {}
            // Output padding only changes the output size, which the fold does not see.
            "output_padding" if transpose => {}
            "bias" => expect_eq("conv_args.bias", v.as_bool(), Some(has_bias))?,
            "padding_mode" if v == "zeros" => {}
            other => return Err(format!("conv_args.{other}={v} is not modelled by qlab")),
        }
    }
    let args = &p["conv_args"];
    let groups = args["groups"].as_u64().unwrap_or(1) as usize;
    let (o, i) = (weight.shape()[0], weight.shape()[1] * groups);
    let (want_in, want_out) = if transpose { (o, i) } else { (i, o) };
    expect_eq(
        "in_channels",
        args["in_channels"].as_u64(),
        Some(want_in as u64),
    )?;
    expect_eq(
        "out_channels",
        args["out_channels"].as_u64(),
        Some(want_out as u64),
    )?;
    expect_eq(
        "kernel_size",
        dims_arg(&args["kernel_size"], dims, 0),
        weight.shape()[2..].to_vec(),
    )
}

fn conv_bn(c: &Case) -> Outcome {
    let (i, e) = (&c.inputs, &c.expected);
    let bn = batch_norm(i, num(&c.params["bn_eps"]));
    let weight = array(&i["conv_weight"]);
    let bias = (!i["conv_bias"].is_null()).then(|| vec1(&i["conv_bias"]));
    check_conv_args(&c.params, &weight, bias.is_some())?;
    if c.params["transpose"].as_bool() == Some(true) {
        // qlab has no transposed-conv op, so only the fold itself is checked.
        let (w, b) = fuse_conv_transpose_bn_eval(&weight, bias.as_ref(), &bn).qlab()?;
        expect_bits("fused_weight", &w, &e["fused_weight"])?;
        return expect_bits("fused_bias", &b.into_dyn(), &e["fused_bias"]);
    }
    let conv = conv_params(&c.params["conv_args"], weight, bias);
    let fused = fuse_conv_bn_eval(&conv, &bn).qlab()?;
    let (w, b) = (fused.weight.clone(), fused.bias.clone().unwrap().into_dyn());
    expect_folded(c, &bn, &w, &b, |x, folded| {
        conv_forward("conv", x, if folded { &fused } else { &conv })
    })
}

/// The folded weight and bias bit for bit, then `forward(x, folded)` on the case's input: the
/// folded module against `fused_output`, the original one followed by the BN against
/// `unfused_output`.
fn expect_folded(
    c: &Case,
    bn: &BatchNormParams,
    weight: &ArrayD<f32>,
    bias: &ArrayD<f32>,
    forward: impl Fn(&ArrayD<f32>, bool) -> Result<ArrayD<f32>, GraphError>,
) -> Outcome {
    let e = &c.expected;
    expect_bits("fused_weight", weight, &e["fused_weight"])?;
    expect_bits("fused_bias", bias, &e["fused_bias"])?;
    let x = array(&c.inputs["x"]);
    let y = forward(&x, true).qlab()?;
    expect_close("fused_output", &y, &e["fused_output"])?;
    let unfused = forward(&x, false).qlab()?;
    let unfused = batch_norm_eval("bn", &unfused, bn).qlab()?;
    Ok(expect_close(
        "unfused_output",
        &unfused,
        &e["unfused_output"],
    )?)
}

fn linear_bn(c: &Case) -> Outcome {
    let i = &c.inputs;
    let bn = batch_norm(i, num(&c.params["bn_eps"]));
    let w = array(&i["linear_weight"]);
    let (out, k) = (w.shape()[0], w.shape()[1]);
    let p = &c.params;
    expect_eq("in_features", p["in_features"].as_u64(), Some(k as u64))?;
    expect_eq("out_features", p["out_features"].as_u64(), Some(out as u64))?;
    expect_eq(
        "bias",
        p["bias"].as_bool(),
        Some(!i["linear_bias"].is_null()),
    )?;
    let linear = LinearParams::new(
        Array2::from_shape_vec((out, k), w.iter().copied().collect()).unwrap(),
        (!i["linear_bias"].is_null()).then(|| vec1(&i["linear_bias"])),
    );
    let fused = fuse_linear_bn_eval(&linear, &bn).qlab()?;
    let (w, b) = (
        fused.weight.clone().into_dyn(),
        fused.bias.clone().unwrap().into_dyn(),
    );
    expect_folded(c, &bn, &w, &b, |x, folded| {
        linear_forward("linear", x, if folded { &fused } else { &linear })
    })
}

/// `Conv2d(3,4,3,padding=1)` → ("Conv2d", positional, keyword) arguments.
fn parse_layer(text: &str) -> (String, Vec<usize>, Value) {
    let (name, rest) = text.split_once('(').expect("layer call");
    let mut pos = Vec::new();
    let mut kw = serde_json::Map::new();
    for arg in rest
        .trim_end_matches(')')
        .split(',')
        .filter(|a| !a.trim().is_empty())
    {
        match arg.split_once('=') {
            Some((k, v)) => {
                let v = match v.trim() {
                    "False" => Value::Bool(false),
                    "True" => Value::Bool(true),
                    n => Value::from(n.parse::<u64>().expect("int argument")),
                };
                kw.insert(k.trim().into(), v);
            }
            None => pos.push(arg.trim().parse().expect("int argument")),
        }
    }
    (name.trim().into(), pos, Value::Object(kw))
}

/// The recorded model as (module path, layer text), in forward order.
fn layers(model: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, entry) in model.as_array().unwrap().iter().enumerate() {
        let entry = entry.as_str().unwrap();
        match entry.split_once(": ") {
            None => out.push((i.to_string(), entry.to_string())),
            Some((block, "Sequential(Flatten(), Linear(18,4), ReLU())")) => {
                for (k, l) in ["Flatten()", "Linear(18,4)", "ReLU()"].iter().enumerate() {
                    out.push((format!("{block}.{k}"), l.to_string()));
                }
            }
            Some((block, chain)) => {
                // A user Block: conv -> bn -> act, named as the test model names them.
                for (name, l) in ["conv", "bn", "act"].iter().zip(chain.split(" -> ")) {
                    out.push((format!("{block}.{name}"), l.to_string()));
                }
            }
        }
    }
    out
}

fn build(model: &Value, sd: &Value, x: &ArrayD<f32>) -> Graph {
    let t = |path: &str, key: &str| {
        let v = &sd[format!("{path}.{key}")];
        (!v.is_null()).then(|| array(v))
    };
    let mut graph = Graph {
        inputs: vec![GraphInput {
            name: "x".into(),
            shape: std::iter::once(None)
                .chain(x.shape()[1..].iter().map(|&d| Some(d)))
                .collect(),
        }],
        ..Graph::default()
    };
    let mut prev = "x".to_string();
    for (path, text) in layers(model) {
        let (name, _, kw) = parse_layer(&text);
        let op = match name.as_str() {
            n if n.starts_with("Conv") => {
                let bias =
                    t(&path, "bias").map(|b| Array1::from(b.iter().copied().collect::<Vec<_>>()));
                Op::Conv(conv_params(&kw, t(&path, "weight").unwrap(), bias))
            }
            n if n.starts_with("BatchNorm") => {
                let v = |k: &str| {
                    Array1::from(t(&path, k).unwrap().iter().copied().collect::<Vec<_>>())
                };
                Op::BatchNorm(BatchNormParams {
                    weight: v("weight"),
                    bias: v("bias"),
                    running_mean: v("running_mean"),
                    running_var: v("running_var"),
                    eps: 1e-5,
                    momentum: 0.1,
                })
            }
            "Linear" => {
                let w = t(&path, "weight").unwrap();
                Op::Linear(LinearParams::new(
                    w.into_dimensionality().unwrap(),
                    t(&path, "bias").map(|b| b.into_dimensionality().unwrap()),
                ))
            }
            "ReLU" => Op::Relu,
            "Flatten" => Op::Flatten { axis: 1 },
            other => panic!("layer {other} not modelled"),
        };
        graph.nodes.push(Node {
            name: path.clone(),
            op,
            inputs: vec![prev.clone()],
            outputs: vec![path.clone()],
        });
        prev = path;
    }
    graph.outputs = vec![prev];
    graph
}

fn run(graph: &Graph, x: &ArrayD<f32>) -> Result<ArrayD<f32>, CaseError> {
    let out = qlab::graph::run(graph, vec![GValue::F32(x.clone())], |_, _| {}).qlab()?;
    match &out[0] {
        GValue::F32(a) => Ok(a.clone()),
        _ => Err("integer output".into()),
    }
}

fn expect_types(what: &str, graph: &Graph, want: &Value) -> Outcome {
    let types = module_types(graph);
    for (path, w) in want.as_object().unwrap() {
        let want_type = w["type"].as_str().unwrap();
        match types.get(path) {
            Some(t) => expect_eq(&format!("{what}.{path}"), t.type_name.as_str(), want_type)?,
            // Containers (`Sequential`, the test's `Block`) have no node in a graph.
            None if matches!(want_type, "Sequential" | "Block") => {}
            None => return Err(format!("{what}: module '{path}' ({want_type}) missing").into()),
        }
    }
    Ok(())
}

fn modules(c: &Case) -> Outcome {
    let (i, e) = (&c.inputs, &c.expected);
    let x = array(&i["x"]);
    let graph = build(&c.params["model"], &i["state_dict"], &x);
    expect_close("unfused_output", &run(&graph, &x)?, &e["unfused_output"])?;
    let groups: Vec<Vec<String>> = c.params["modules_to_fuse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g.as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    let fused = fuse_modules(&graph, &groups).qlab()?;
    expect_types("eval_modules", &fused, &e["eval_modules"])?;
    let sd = state_dict(&fused);
    for (key, t) in e["eval_state_dict"].as_object().unwrap() {
        if t["dtype"] == "i64" {
            continue;
        }
        let got = sd
            .get(key)
            .ok_or_else(|| format!("eval_state_dict: no '{key}'"))?;
        expect_bits(&format!("eval_state_dict.{key}"), got, t)?;
    }
    expect_close("eval_output", &run(&fused, &x)?, &e["eval_output"])?;
    let qat = fuse_modules_qat(&graph, &groups).qlab()?;
    expect_types("qat_modules", &qat, &e["qat_modules"])
}
