//! Golden checks for `workflows.json`: whole flows on the ONNX models beside the file.
//!
//! Static PTQ: the ONNX model imports with PyTorch's state dict, fuses to the recorded modules
//! and folded weights, prepare + calibrate reproduce every observer (min, max, 2048-bin
//! histogram, scale, zero point) bit for bit, and the converted model reproduces every module's
//! quantized weight, bias, output qparams and output `int_repr`, and the final output, exactly.
//!
//! Dynamic PTQ: `quantize_dynamic` on the MLP+LSTM model converts the same weights bit for bit;
//! module outputs are float (GEMM and transcendental orders) and compared with the dynamic
//! golden tolerance.
//!
//! QAT: `fuse_modules_qat` + `prepare_qat` reproduce the initial prepared state dict, three SGD
//! steps reproduce each step's loss, logits and full state dict (floats to a relative 1e-5 of
//! each tensor's magnitude, integers exactly), and `convert_qat` the quantized modules and
//! outputs exactly.

use super::Check;
use super::json::*;
use ndarray::{ArrayD, IxDyn};
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::graph::train::Sgd;
use qlab::graph::{Graph, Value as GValue};
use qlab::observer::Stats;
use qlab::qconfig::presets::{get_default_qat_qconfig, get_default_qconfig};
use qlab::workflow::{
    self, Prepared, QConfigMap, QOp, QValue, QatModel, QuantizedModel, fuse_modules,
    fuse_modules_qat, module_types, state_dict,
};
use serde_json::Value;
use std::collections::HashMap;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "static_ptq" => static_ptq,
        "dynamic_ptq" => dynamic_ptq,
        "qat" => qat,
        _ => return None,
    })
}

fn array(t: &Value) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&shape(t)), f32s(t)).expect("golden tensor shape")
}

fn load_model(c: &Case) -> Result<Graph, CaseError> {
    // The qat case names only its model; SmallCNN is `workflow_cnn.onnx` (README §10.5).
    let file = c.params["onnx_file"]
        .as_str()
        .or_else(|| (c.params["model"] == "SmallCNN").then_some("workflow_cnn.onnx"))
        .ok_or("no onnx_file")?;
    let path = super::golden_dir().join(file);
    qlab::import::onnx::load_onnx(&path).qlab_at(&format!("import {file}"))
}

/// Every float tensor of `want` (a state dict; i64 counters skipped) equals ours exactly.
fn expect_state_dict(what: &str, graph: &Graph, want: &Value) -> Outcome {
    let ours = state_dict(graph);
    for (key, t) in want.as_object().ok_or("state dict")? {
        if t["dtype"] == "i64" {
            continue;
        }
        let got = ours
            .get(key)
            .ok_or_else(|| format!("{what}: no tensor '{key}' (have {:?})", ours.keys()))?;
        expect_eq(
            &format!("{what}.{key}.shape"),
            got.shape().to_vec(),
            shape(t),
        )?;
        expect_f32_bits(
            &format!("{what}.{key}"),
            got.as_standard_layout().as_slice().expect("standard"),
            &f32s(t),
        )?;
    }
    Ok(())
}

/// PyTorch's module path → qlab's node for it: `skip_add.add` is the root-level `/Add` node.
fn node_name(path: &str) -> &str {
    match path {
        "skip_add" => "add",
        other => other,
    }
}

fn engine(c: &Case) -> Engine {
    Engine::parse(c.engine.as_deref().unwrap_or("fbgemm")).expect("known engine")
}

fn fuse_spec(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .expect("fuse spec")
        .iter()
        .map(|g| {
            g.as_array()
                .expect("group")
                .iter()
                .map(|m| m.as_str().expect("path").to_string())
                .collect()
        })
        .collect()
}

fn expect_observers(prepared: &Prepared, want: &Value) -> Outcome {
    for (owner, w) in want.as_object().ok_or("observers")? {
        let obs = prepared
            .observers
            .iter()
            .find(|o| o.owner == node_name(owner))
            .ok_or_else(|| format!("no observer owned by '{owner}'"))?;
        let Stats::Histogram { min, max, counts } = obs.observer.stats() else {
            return Err(format!("observer of '{owner}' is not a histogram").into());
        };
        expect_f32_bits(&format!("{owner}.min_val"), &[min], &f32s(&w["min_val"]))?;
        expect_f32_bits(&format!("{owner}.max_val"), &[max], &f32s(&w["max_val"]))?;
        expect_f32_bits(
            &format!("{owner}.histogram"),
            &counts,
            &f32s(&w["histogram"]),
        )?;
        let qp = obs.observer.calculate_qparams().qlab()?;
        expect_f32_bits(&format!("{owner}.scale"), &qp.scales, &f32s(&w["scale"]))?;
        expect_eq(
            &format!("{owner}.zero_point"),
            qp.zero_points,
            i64s(&w["zero_point"]),
        )?;
    }
    Ok(())
}

/// Compares the converted modules; float biases exactly, or (`bias_close`, after QAT, where
/// they are folded from trained float state) within `QAT_RTOL`.
fn expect_quantized_modules(model: &QuantizedModel, want: &Value, bias_close: bool) -> Outcome {
    let ops: HashMap<&str, &QOp> = model
        .graph
        .nodes
        .iter()
        .zip(&model.ops)
        .map(|(n, op)| (n.name.as_str(), op))
        .collect();
    for (path, w) in want.as_object().ok_or("quantized_modules")? {
        let Some(op) = ops.get(node_name(path)) else {
            // BatchNorms folded away have no node; PyTorch lists them as Identity.
            expect_eq(
                &format!("{path}.type"),
                w["type"].as_str(),
                Some("Identity"),
            )?;
            continue;
        };
        let (weight, bias, scale, zp) = match op {
            QOp::Conv(c) => (
                Some(&c.weight),
                c.bias.clone(),
                c.out_scale,
                c.out_zero_point,
            ),
            QOp::Linear(l) => (
                Some(&l.weight),
                l.bias.clone(),
                l.out_scale,
                l.out_zero_point,
            ),
            QOp::Quantize(q) => (None, None, q.scale, q.zero_point),
            QOp::Add(f) => (None, None, f.scale, f.zero_point),
            _ => continue,
        };
        expect_f64_bits(&format!("{path}.scale"), &[scale], &[num(&w["scale"])])?;
        expect_eq(
            &format!("{path}.zero_point"),
            zp,
            w["zero_point"].as_i64().expect("zp"),
        )?;
        if let Some(pw) = weight {
            let q = qtensor(&w["weight"]);
            expect_eq(
                &format!("{path}.weight.int_repr"),
                pw.data.iter().map(|&v| v as i32).collect::<Vec<_>>(),
                q.int_values(),
            )?;
            let (scales, zps) = match q.qparams() {
                qlab::tensor::QParams::PerChannel {
                    scales,
                    zero_points,
                    ..
                } => (scales.clone(), zero_points.clone()),
                qlab::tensor::QParams::PerTensor { scale, zero_point } => {
                    (vec![*scale], vec![*zero_point])
                }
            };
            expect_f64_bits(&format!("{path}.weight.scales"), &pw.scales, &scales)?;
            expect_eq(
                &format!("{path}.weight.zero_points"),
                pw.zero_points.iter().map(|&z| z as i64).collect::<Vec<_>>(),
                zps,
            )?;
            let (what, got, want) = (
                format!("{path}.bias"),
                bias.unwrap_or_default(),
                f32s(&w["bias"]),
            );
            if bias_close {
                let e = expect_close(&what, &got, &want)?;
                eprintln!("{what}: worst relative error {e:e}");
            } else {
                expect_f32_bits(&what, &got, &want)?;
            }
        }
    }
    Ok(())
}

fn run_quantized(
    model: &QuantizedModel,
    x: &Value,
) -> Result<(Vec<GValue>, HashMap<String, QValue>), CaseError> {
    let mut outs = HashMap::new();
    let y = model
        .run(vec![GValue::F32(array(x))], |node, values| {
            outs.insert(node.name.clone(), values[0].clone());
        })
        .qlab()?;
    Ok((y, outs))
}

fn expect_module_outputs(outs: &HashMap<String, QValue>, want: &Value) -> Outcome {
    for (path, w) in want.as_object().ok_or("module_outputs")? {
        // A folded BN has no node; PyTorch's Identity repeats its input, which relu1 checks.
        let Some(got) = outs.get(node_name(path)) else {
            continue;
        };
        match got {
            QValue::Quant(q) => expect_flat_qtensor(path, q, w)?,
            QValue::Float(GValue::F32(a)) => expect_f32_bits(
                path,
                a.as_standard_layout().as_slice().expect("standard"),
                &f32s(w),
            )?,
            QValue::Float(_) => return Err(format!("{path}: an integer tensor").into()),
        }
    }
    Ok(())
}

fn static_ptq(c: &Case) -> Outcome {
    let float = load_model(c)?;
    expect_state_dict("float_state_dict", &float, &c.inputs["float_state_dict"])?;
    let fused = fuse_modules(&float, &fuse_spec(&c.params["fuse_modules"])).qlab()?;
    let types = module_types(&fused);
    for (path, w) in c.expected["fused_modules"]
        .as_object()
        .ok_or("fused_modules")?
    {
        if let Some(t) = types.get(path) {
            expect_eq(
                &format!("fused_modules.{path}"),
                t.type_name.as_str(),
                w["type"].as_str().expect("type"),
            )?;
        }
    }
    expect_state_dict(
        "fused_float_state_dict",
        &fused,
        &c.expected["fused_float_state_dict"],
    )?;

    let engine = engine(c);
    let call = c.params["qconfig"].as_str().unwrap_or("?");
    let (backend, version) = qconfig_call(call, "get_default_qconfig")?;
    if version.unwrap_or(0) != 0 {
        return Err(format!("{call}: get_default_qconfig has only version 0").into());
    }
    let qconfig = get_default_qconfig(&backend).qlab()?;
    let mut prepared = workflow::prepare(&fused, &QConfigMap::global(qconfig)).qlab()?;
    for batch in c.inputs["calibration_batches"]
        .as_array()
        .ok_or("batches")?
    {
        prepared
            .calibrate_batch(vec![GValue::F32(array(batch))])
            .qlab()?;
    }
    expect_observers(&prepared, &c.expected["observers"])?;

    let model = workflow::convert(&prepared, Numerics::new(engine, HostProfile::Vnni)).qlab()?;
    expect_converted(c, &model, false)
}

fn float_outputs(
    model: &QuantizedModel,
    x: &Value,
) -> Result<HashMap<String, Vec<GValue>>, CaseError> {
    let mut outs = HashMap::new();
    model
        .run(vec![GValue::F32(array(x))], |node, values| {
            let floats = values
                .iter()
                .filter_map(|v| match v {
                    QValue::Float(f) => Some(f.clone()),
                    QValue::Quant(_) => None,
                })
                .collect();
            outs.insert(node.name.clone(), floats);
        })
        .qlab()?;
    Ok(outs)
}

fn dynamic_ptq(c: &Case) -> Outcome {
    use super::dynamic::{expect_close as expect_dynamic_close, expect_weight};
    let float = load_model(c)?;
    expect_state_dict("float_state_dict", &float, &c.inputs["float_state_dict"])?;
    // qlab's dynamic qconfig map quantizes every Linear and LSTM, PyTorch's default spec.
    let spec = &c.params["qconfig_spec"];
    if *spec != serde_json::json!(["Linear", "LSTM"]) {
        return Err(format!("qconfig_spec {spec} is not modelled").into());
    }
    let float16 = match c.params["dtype"].as_str() {
        Some("float16") => true,
        Some("qint8") => false,
        other => return Err(format!("dynamic dtype {other:?}").into()),
    };
    let model = workflow::quantize_dynamic(
        &float,
        &workflow::dynamic_qconfig_map(&float, float16),
        Numerics::new(engine(c), HostProfile::Vnni),
    )
    .qlab()?;
    let ops: HashMap<&str, &QOp> = model
        .graph
        .nodes
        .iter()
        .zip(&model.ops)
        .map(|(n, op)| (n.name.as_str(), op))
        .collect();
    let want = &c.expected["quantized_modules"];
    for path in ["fc1", "fc2"] {
        let Some(QOp::DynamicLinear(m)) = ops.get(path) else {
            return Err(format!("{path} was not converted to a dynamic Linear").into());
        };
        expect_weight(&format!("{path}.weight"), &m.weight, &want[path]["weight"])?;
        expect_f32_bits(
            &format!("{path}.bias"),
            m.bias.as_deref().unwrap_or_default(),
            &f32s(&want[path]["bias"]),
        )?;
    }
    let Some(QOp::DynamicLstm(lstm)) = ops.get("lstm") else {
        return Err("lstm was not converted to a dynamic LSTM".into());
    };
    let cell = &lstm.cells[0];
    let (w, b) = (&want["lstm"]["weight"], &want["lstm"]["bias"]);
    expect_weight("lstm.weight_ih_l0", &cell.ih.weight, &w["weight_ih_l0"])?;
    expect_weight("lstm.weight_hh_l0", &cell.hh.weight, &w["weight_hh_l0"])?;
    expect_f32_bits(
        "lstm.bias_ih_l0",
        cell.ih.bias.as_deref().unwrap_or_default(),
        &f32s(&b["bias_ih_l0"]),
    )?;
    expect_f32_bits(
        "lstm.bias_hh_l0",
        cell.hh.bias.as_deref().unwrap_or_default(),
        &f32s(&b["bias_hh_l0"]),
    )?;

    let outs = float_outputs(&model, &c.inputs["x"])?;
    let f32_of = |node: &str, i: usize| -> Result<ArrayD<f32>, String> {
        match outs.get(node).and_then(|v| v.get(i)) {
            Some(GValue::F32(a)) => Ok(a.clone()),
            _ => Err(format!("no float output {i} of '{node}'")),
        }
    };
    let mo = &c.expected["module_outputs"];
    for path in ["fc1", "relu", "fc2"] {
        expect_dynamic_close(path, &f32_of(path, 0)?, &mo[path])?;
    }
    // PyTorch's LSTM output is batch-first; the exporter's transposes end at lstm.transpose_1.
    expect_dynamic_close(
        "lstm.output",
        &f32_of("lstm.transpose_1", 0)?,
        &mo["lstm"][0],
    )?;
    expect_dynamic_close("lstm.h_n", &f32_of("lstm", 1)?, &mo["lstm"][1][0])?;
    expect_dynamic_close("lstm.c_n", &f32_of("lstm", 2)?, &mo["lstm"][1][1])?;
    Ok(expect_dynamic_close(
        "output",
        &f32_of("fc2", 0)?,
        &c.expected["output"],
    )?)
}

/// Relative tolerance of QAT float state (weights, BN statistics, observer min/max, loss,
/// logits), relative to each tensor's largest magnitude: PyTorch's conv backward and reduction
/// orders cannot be reproduced, so trained floats drift by float rounding (golden README §10.4
/// suggests about 1e-5; three SGD steps stay well inside it).
const QAT_RTOL: f32 = 1e-5;

/// Fake-quant scales are derived from trained min/max (`(max - min) / (qmax - qmin)`), so they
/// inherit `QAT_RTOL` plus one rounding: 1e-5 relative is about 84 f32 ulps, so 128 ulps bounds
/// them. Zero points and all integer results after `convert` are still compared exactly.
const QAT_SCALE_ULPS: u32 = 128;

/// `got` within `QAT_RTOL` of `want`, relative to the largest magnitude in `want` (per-element
/// relative error is meaningless near zero). Returns the largest such error.
fn expect_close(what: &str, got: &[f32], want: &[f32]) -> Result<f32, String> {
    expect_eq(&format!("{what}.len"), got.len(), want.len())?;
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let mut worst = 0f32;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        if a == b || (a.is_nan() && b.is_nan()) {
            continue;
        }
        let err = (a - b).abs() / scale;
        if err.is_nan() || err > QAT_RTOL {
            return Err(format!("{what}[{i}]: {a} vs {b} (relative {err:e})"));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// QAT state-dict key → qlab's (PyTorch module paths, qlab node names).
fn qat_key(key: &str) -> String {
    match key.split_once('.') {
        Some((m, rest)) => format!("{}.{rest}", node_name(m)),
        None => key.to_string(),
    }
}

/// Compares a QAT state dict; returns the worst float error by tensor group (the key's last
/// component: `weight`, `running_var`, `scale`, `min_val`, ...).
fn expect_qat_state(
    what: &str,
    model: &QatModel,
    want: &Value,
    worst: &mut std::collections::BTreeMap<String, f32>,
) -> Outcome {
    let ours = model.state_dict();
    for (key, t) in want.as_object().ok_or("state dict")? {
        // The observer's constant eps is not a qlab buffer.
        if key.ends_with(".eps") {
            continue;
        }
        let got = ours
            .get(&qat_key(key))
            .ok_or_else(|| format!("{what}: no entry '{key}'"))?;
        expect_eq(
            &format!("{what}.{key}.shape"),
            got.shape().to_vec(),
            shape(t),
        )?;
        match got {
            GValue::F32(a) if key.ends_with(".scale") => expect_ulps_f32(
                &format!("{what}.{key}"),
                a.as_standard_layout().as_slice().expect("standard"),
                &f32s(t),
                QAT_SCALE_ULPS,
            )?,
            GValue::F32(a) => {
                let e = expect_close(
                    &format!("{what}.{key}"),
                    a.as_standard_layout().as_slice().expect("standard"),
                    &f32s(t),
                )?;
                let group = key.rsplit('.').next().unwrap_or(key).to_string();
                let w = worst.entry(group).or_default();
                *w = w.max(e);
            }
            GValue::I64(a) => expect_eq(
                &format!("{what}.{key}"),
                a.iter().copied().collect::<Vec<_>>(),
                i64s(t),
            )?,
        }
    }
    Ok(())
}

/// A recorded qconfig call such as `get_default_qat_qconfig('qnnpack')` or
/// `get_default_qconfig('x86', 0)`: (backend, version if given). PyTorch's default backend is x86.
pub fn qconfig_call(text: &str, function: &str) -> Result<(String, Option<i64>), String> {
    let args = text
        .strip_prefix(function)
        .and_then(|t| t.strip_prefix('('))
        .and_then(|t| t.strip_suffix(')'))
        .ok_or(format!("qconfig {text:?} is not a {function}(...) call"))?;
    let mut parts = args.split(',').map(str::trim).filter(|p| !p.is_empty());
    let backend = parts.next().map_or("x86", |b| {
        b.trim_start_matches("backend=").trim_matches(['\'', '"'])
    });
    let version = match parts.next() {
        None => None,
        Some(v) => Some(
            v.trim_start_matches("version=")
                .parse()
                .map_err(|_| format!("version {v:?} in {text:?}"))?,
        ),
    };
    match parts.next() {
        None => Ok((backend.to_string(), version)),
        Some(extra) => Err(format!("unexpected argument {extra:?} in {text:?}")),
    }
}

fn qat(c: &Case) -> Outcome {
    let float = load_model(c)?;
    let fused = fuse_modules_qat(&float, &fuse_spec(&c.params["fuse_modules_qat"])).qlab()?;
    let call = c.params["qconfig"].as_str().unwrap_or("?");
    let (backend, version) = qconfig_call(call, "get_default_qat_qconfig")?;
    // PyTorch 2.x's default version is 1: FusedMovingAvgObsFakeQuantize.
    let qconfig = get_default_qat_qconfig(&backend, version.unwrap_or(1)).qlab()?;
    expect_eq(
        "loss",
        c.params["loss"].as_str(),
        Some("CrossEntropyLoss(mean)"),
    )?;
    let mut model = workflow::prepare_qat(&fused, &QConfigMap::global(qconfig)).qlab()?;
    let initial = &c.expected["prepared_state_dict_initial"];
    // ONNX does not export num_batches_tracked: take PyTorch's starting count.
    let tracked = i64s(&initial["conv1.bn.num_batches_tracked"])[0];
    model.num_batches_tracked.insert("bn1".into(), tracked);
    let mut worst = std::collections::BTreeMap::new();
    expect_qat_state("initial", &model, initial, &mut worst)?;

    let opt = &c.params["optimizer"];
    expect_eq("optimizer.type", opt["type"].as_str(), Some("SGD"))?;
    if let Some(k) = opt
        .as_object()
        .ok_or("optimizer")?
        .keys()
        .find(|k| !["type", "lr", "momentum", "weight_decay"].contains(&k.as_str()))
    {
        return Err(format!("optimizer.{k} is not modelled").into());
    }
    let opt_f32 = |k: &str| {
        if opt[k].is_null() {
            0.0
        } else {
            num(&opt[k]) as f32
        }
    };
    let mut sgd = Sgd::new(
        opt_f32("lr"),
        opt_f32("momentum"),
        opt_f32("weight_decay"),
        false,
    );
    let batches = c.inputs["train_batches"]
        .as_array()
        .ok_or("train_batches")?;
    let steps = c.expected["steps"].as_array().ok_or("steps")?;
    let (mut loss_err, mut logit_err) = (0f32, 0f32);
    for (i, (b, want)) in batches.iter().zip(steps).enumerate() {
        let r = model
            .train_step(array(&b["x"]), &i64s(&b["labels"]), &mut sgd)
            .qlab()?;
        loss_err = loss_err.max(expect_close(
            &format!("step{i}.loss"),
            &[r.loss],
            &[num(&want["loss"]) as f32],
        )?);
        logit_err = logit_err.max(expect_close(
            &format!("step{i}.logits"),
            r.logits.as_standard_layout().as_slice().expect("standard"),
            &f32s(&want["logits"]),
        )?);
        expect_qat_state(&format!("step{i}"), &model, &want["state_dict"], &mut worst)?;
    }
    eprintln!("qat: worst relative error loss {loss_err:e}, logits {logit_err:e}, state {worst:?}");

    model.set_training(false);
    let q =
        workflow::convert_qat(&mut model, Numerics::new(engine(c), HostProfile::Vnni)).qlab()?;
    expect_converted(c, &q, true)
}

/// The converted model against `quantized_modules`, `module_outputs` and `output` (biases within
/// tolerance when `bias_close`, else bit-exact).
fn expect_converted(c: &Case, model: &QuantizedModel, bias_close: bool) -> Outcome {
    expect_quantized_modules(model, &c.expected["quantized_modules"], bias_close)?;
    let (y, outs) = run_quantized(model, &c.inputs["x"])?;
    expect_module_outputs(&outs, &c.expected["module_outputs"])?;
    let GValue::F32(y) = &y[0] else {
        return Err("integer model output".into());
    };
    Ok(expect_f32_bits(
        "output",
        y.as_standard_layout().as_slice().expect("standard"),
        &f32s(&c.expected["output"]),
    )?)
}
