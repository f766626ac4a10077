//! Golden checks for `fake_quant.json`: the direct `fake_quantize_*` calls with gradients, and
//! FakeQuantize modules over training steps, built from qlab's own preset table when the case
//! names a PyTorch preset (so the presets themselves are checked against PyTorch).

use super::Check;
use super::json::*;
use qlab::fake_quant::{
    FakeQuantKind, FakeQuantize, FakeQuantizeSpec, fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
};
use qlab::observer::{ObserverKind, ObserverSpec, Stats};
use qlab::qconfig::{Preset, preset};
use qlab::tensor::{DType, QScheme};
use serde_json::Value;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "fake_quantize_per_tensor_affine" => per_tensor,
        "fake_quantize_per_channel_affine" => per_channel,
        "fake_quantize_module" => module,
        _ => return None,
    })
}

fn int(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64().ok_or(format!("{what} is not an integer"))
}

/// An enable flag, recorded as a bool (or 0/1).
fn flag(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .or_else(|| v.as_i64().map(|i| i == 1))
        .ok_or(format!("{v} is not a flag"))
}

fn per_tensor(c: &Case) -> Outcome {
    let p = &c.params;
    // The tensor overload takes the scale as an f32 tensor (golden README §6).
    let scale = match p["tensor_qparams"].as_bool() {
        Some(true) => num(&p["scale"]) as f32 as f64,
        Some(false) => num(&p["scale"]),
        None => return Err("tensor_qparams is not a bool".into()),
    };
    let out = fake_quantize_per_tensor_affine(
        &f32s(&c.inputs["x"]),
        scale,
        int(&p["zero_point"], "zero_point")?,
        int(&p["quant_min"], "quant_min")?,
        int(&p["quant_max"], "quant_max")?,
    )
    .qlab()?;
    compare_output_grad(
        &out.output,
        &out.backward(&f32s(&c.inputs["grad_output"])),
        c,
    )
}

fn per_channel(c: &Case) -> Outcome {
    let p = &c.params;
    let x = &c.inputs["x"];
    let out = fake_quantize_per_channel_affine(
        &f32s(x),
        &shape(x),
        &f32s(&c.inputs["scales"]),
        &i64s(&c.inputs["zero_points"]),
        int(&p["axis"], "axis")?,
        int(&p["quant_min"], "quant_min")?,
        int(&p["quant_max"], "quant_max")?,
    )
    .qlab()?;
    compare_output_grad(
        &out.output,
        &out.backward(&f32s(&c.inputs["grad_output"])),
        c,
    )
}

fn compare_output_grad(
    output: &[f32],
    grad: &Result<Vec<f32>, qlab::fake_quant::FakeQuantError>,
    c: &Case,
) -> Outcome {
    expect_f32_bits("output", output, &f32s(&c.expected["output"]))?;
    let grad = grad.as_ref().qlab()?;
    Ok(expect_f32_bits(
        "grad_input",
        grad,
        &f32s(&c.expected["grad_input"]),
    )?)
}

fn observer_kind(class: &str) -> Result<ObserverKind, String> {
    Ok(match class {
        "MinMaxObserver" => ObserverKind::MinMax,
        "MovingAverageMinMaxObserver" => ObserverKind::MovingAverageMinMax,
        "PerChannelMinMaxObserver" => ObserverKind::PerChannelMinMax,
        "MovingAveragePerChannelMinMaxObserver" => ObserverKind::MovingAveragePerChannelMinMax,
        "HistogramObserver" => ObserverKind::Histogram,
        other => return Err(format!("unknown observer class {other}")),
    })
}

/// A custom module from its constructor kwargs (observer class + FakeQuantize kwargs).
fn spec_from_kwargs(class: &str, k: &Value) -> Result<FakeQuantizeSpec, String> {
    let mut obs = ObserverSpec::new(observer_kind(k["observer"].as_str().unwrap_or("?"))?);
    if let Some(d) = k["dtype"].as_str() {
        obs = obs.with_dtype(DType::parse(d).ok_or(format!("dtype {d}"))?);
    }
    if let Some(q) = k["qscheme"].as_str() {
        obs = obs.with_qscheme(QScheme::parse(q).ok_or(format!("qscheme {q}"))?);
    }
    if let (Some(lo), Some(hi)) = (k["quant_min"].as_i64(), k["quant_max"].as_i64()) {
        obs = obs.with_quant_range(lo, hi);
    }
    if let Some(r) = k["reduce_range"].as_bool() {
        obs = obs.with_reduce_range(r);
    }
    if !k["averaging_constant"].is_null() {
        obs = obs.with_averaging_constant(num(&k["averaging_constant"]) as f32);
    }
    if let Some(a) = k["ch_axis"].as_i64() {
        obs = obs.with_ch_axis(a);
    }
    Ok(match class {
        "FakeQuantize" => FakeQuantizeSpec::plain(obs),
        "FusedMovingAvgObsFakeQuantize" => FakeQuantizeSpec::fused(obs),
        other => return Err(format!("unknown fake-quant class {other}")),
    })
}

/// The spec's effective arguments must equal what PyTorch recorded (golden README §5, §6).
fn check_effective_args(spec: &FakeQuantizeSpec, p: &Value) -> Outcome {
    let want_kind = match p["class"].as_str() {
        Some("FusedMovingAvgObsFakeQuantize") => FakeQuantKind::Fused,
        _ => FakeQuantKind::Plain,
    };
    expect_eq("class", spec.kind, want_kind)?;
    let o = &spec.observer;
    expect_eq(
        "observer",
        o.kind,
        observer_kind(p["observer"].as_str().unwrap_or("?"))?,
    )?;
    let a = &p["observer_args"];
    expect_eq("dtype", o.dtype.name(), a["dtype"].as_str().unwrap_or("?"))?;
    expect_eq(
        "qscheme",
        o.qscheme.name(),
        a["qscheme"].as_str().unwrap_or("?"),
    )?;
    expect_eq(
        "reduce_range",
        Some(o.reduce_range),
        a["reduce_range"].as_bool(),
    )?;
    let r = o.quant_range().qlab()?;
    expect_eq(
        "observer quant_min",
        Some(r.quant_min),
        a["quant_min"].as_i64(),
    )?;
    expect_eq(
        "observer quant_max",
        Some(r.quant_max),
        a["quant_max"].as_i64(),
    )?;
    expect_eq("quant_min", Some(r.quant_min), p["quant_min"].as_i64())?;
    expect_eq("quant_max", Some(r.quant_max), p["quant_max"].as_i64())?;
    expect_eq(
        "has_customized_qrange",
        Some(r.customized),
        a["has_customized_qrange"].as_bool(),
    )?;
    expect_f32_bits("eps", &[o.eps], &[num(&a["eps"]) as f32])?;
    if !a["averaging_constant"].is_null() {
        expect_f32_bits(
            "averaging_constant",
            &[o.averaging_constant],
            &[num(&a["averaging_constant"]) as f32],
        )?;
    }
    if let Some(b) = a["bins"].as_u64() {
        expect_eq("bins", o.bins as u64, b)?;
    }
    let ch_axis = if o.qscheme.is_per_channel() {
        o.ch_axis
    } else {
        -1
    };
    Ok(expect_eq("ch_axis", Some(ch_axis), p["ch_axis"].as_i64())?)
}

fn module(c: &Case) -> Outcome {
    let p = &c.params;
    let spec = match p["preset"].as_str() {
        Some(name) => match preset(name).qlab()? {
            Preset::FakeQuantize(spec) => spec,
            other => return Err(format!("preset {name} is not a fake-quant: {other:?}").into()),
        },
        None => spec_from_kwargs(p["class"].as_str().unwrap_or("?"), &p["constructor_kwargs"])?,
    };
    check_effective_args(&spec, p)?;
    let text = spec.to_string();
    let back: FakeQuantizeSpec = text.parse().map_err(|e| format!("{text}: {e}"))?;
    expect_eq("spec text round trip", &back, &spec)?;

    let mut fq = FakeQuantize::new(&spec).qlab()?;
    let steps = c.inputs["steps"].as_array().ok_or("no steps")?;
    let wants = c.expected["steps"].as_array().ok_or("no expected steps")?;
    expect_eq("step count", steps.len(), wants.len())?;
    for (i, (step, want)) in steps.iter().zip(wants).enumerate() {
        let at = |what: &str| format!("step {i} {what}");
        fq.set_observer_enabled(flag(&step["observer_enabled"])?);
        fq.set_fake_quant_enabled(flag(&step["fake_quant_enabled"])?);
        let x = &step["x"];
        let out = fq.forward(&f32s(x), &shape(x)).qlab_at(&at(""))?;
        expect_f32_bits(&at("output"), &out, &f32s(&want["output"]))?;
        let grad = fq.backward(&f32s(&step["grad_output"])).qlab_at(&at(""))?;
        expect_f32_bits(&at("grad_input"), &grad, &f32s(&want["grad_input"]))?;
        expect_f32_bits(&at("scale"), fq.scale(), &f32s(&want["scale"]))?;
        expect_eq(
            &at("zero_point"),
            fq.zero_point().to_vec(),
            i64s(&want["zero_point"]),
        )?;
        let (mins, maxs, hist) = match fq.stats() {
            Stats::MinMax { min, max } => (vec![min], vec![max], None),
            Stats::PerChannel { mins, maxs, .. } => (mins, maxs, None),
            Stats::Histogram { min, max, counts } => (vec![min], vec![max], Some(counts)),
            Stats::None => return Err(at("no statistics").into()),
        };
        expect_f32_bits(&at("min_val"), &mins, &f32s(&want["min_val"]))?;
        expect_f32_bits(&at("max_val"), &maxs, &f32s(&want["max_val"]))?;
        if !want["histogram"].is_null() {
            let hist = hist.ok_or(at("no histogram"))?;
            expect_f32_bits(&at("histogram"), &hist, &f32s(&want["histogram"]))?;
        }
    }
    Ok(())
}
