//! Golden checks for `observers.json`: every observer class and preset, batch by batch, and the
//! passthrough observers.

use super::Check;
use super::json::*;
use qlab::observer::{
    HistogramObserver, ObservedQParams, Observer, ObserverError, ObserverKind, ObserverSpec,
};
use qlab::tensor::{DType, QScheme};
use serde_json::Value;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "observer" => observer,
        "observer_passthrough" => passthrough,
        _ => return None,
    })
}

fn kind_of(class: &str) -> Result<ObserverKind, String> {
    Ok(match class {
        "MinMaxObserver" => ObserverKind::MinMax,
        "MovingAverageMinMaxObserver" => ObserverKind::MovingAverageMinMax,
        "PerChannelMinMaxObserver" => ObserverKind::PerChannelMinMax,
        "MovingAveragePerChannelMinMaxObserver" => ObserverKind::MovingAveragePerChannelMinMax,
        "HistogramObserver" => ObserverKind::Histogram,
        "PlaceholderObserver" => ObserverKind::Placeholder,
        "NoopObserver" => ObserverKind::Noop,
        other => return Err(format!("unknown observer class {other}")),
    })
}

/// The spec for a case's effective arguments (golden README §5).
fn spec_of(c: &Case) -> Result<ObserverSpec, String> {
    let a = &c.params["args"];
    let mut spec = ObserverSpec::new(kind_of(c.params["observer"].as_str().unwrap_or("?"))?);
    if let Some(d) = a["dtype"].as_str() {
        spec = spec.with_dtype(DType::parse(d).ok_or(format!("dtype {d}"))?);
    }
    if let Some(q) = a["qscheme"].as_str() {
        spec = spec.with_qscheme(QScheme::parse(q).ok_or(format!("qscheme {q}"))?);
    }
    let reduce = a["reduce_range"].as_bool().unwrap_or(false);
    if a["has_customized_qrange"].as_bool().unwrap_or(false) {
        if reduce {
            return Err(
                "customized range with reduce_range cannot be rebuilt from effective values".into(),
            );
        }
        spec = spec.with_quant_range(
            a["quant_min"].as_i64().unwrap(),
            a["quant_max"].as_i64().unwrap(),
        );
    }
    spec = spec.with_reduce_range(reduce);
    if !a["eps"].is_null() {
        spec = spec.with_eps(num(&a["eps"]) as f32);
    }
    if !a["averaging_constant"].is_null() {
        spec = spec.with_averaging_constant(num(&a["averaging_constant"]) as f32);
    }
    if let Some(axis) = a["ch_axis"].as_i64() {
        spec = spec.with_ch_axis(axis);
    }
    if let Some(bins) = a["bins"].as_u64() {
        spec = spec.with_bins(bins as usize);
    }
    if let Some(d) = a["is_dynamic"].as_bool() {
        spec = spec.with_is_dynamic(d);
    }
    // The spec text round-trips, whatever the case.
    let text = spec.to_string();
    let back: ObserverSpec = text.parse().map_err(|e: ObserverError| e.to_string())?;
    expect_eq("spec text round trip", &back, &spec)?;
    Ok(spec)
}

/// The observer's running buffers, as the golden min_val / max_val tensors hold them.
fn buffers(obs: &dyn Observer) -> (Vec<f32>, Vec<f32>) {
    match obs.stats() {
        qlab::observer::Stats::MinMax { min, max }
        | qlab::observer::Stats::Histogram { min, max, .. } => (vec![min], vec![max]),
        qlab::observer::Stats::PerChannel { mins, maxs, .. } => (mins, maxs),
        qlab::observer::Stats::None => (vec![], vec![]),
    }
}

/// Compares the observer's state with one expected state object (final or per step).
fn compare_state(what: &str, obs: &dyn Observer, want: &Value) -> Result<(), String> {
    let (mins, maxs) = buffers(obs);
    expect_f32_bits(&format!("{what}min_val"), &mins, &f32s(&want["min_val"]))?;
    expect_f32_bits(&format!("{what}max_val"), &maxs, &f32s(&want["max_val"]))?;
    if !want["histogram"].is_null() {
        let h = obs
            .as_any()
            .downcast_ref::<HistogramObserver>()
            .ok_or("not a HistogramObserver")?;
        expect_f32_bits(
            &format!("{what}histogram"),
            h.histogram(),
            &f32s(&want["histogram"]),
        )?;
    }
    let q: ObservedQParams = obs
        .calculate_qparams()
        .map_err(|e| format!("{what}calculate_qparams: {e}"))?;
    expect_f32_bits(&format!("{what}scale"), &q.scales, &f32s(&want["scale"]))?;
    expect_eq(
        &format!("{what}zero_point"),
        q.zero_points,
        i64s(&want["zero_point"]),
    )
}

fn observer(c: &Case) -> Result<(), String> {
    let spec = spec_of(c)?;
    let range = spec.quant_range().map_err(|e| e.to_string())?;
    let a = &c.params["args"];
    expect_eq(
        "effective quant_min",
        range.quant_min,
        a["quant_min"].as_i64().unwrap(),
    )?;
    expect_eq(
        "effective quant_max",
        range.quant_max,
        a["quant_max"].as_i64().unwrap(),
    )?;
    let mut obs = spec.build().map_err(|e| e.to_string())?;
    let steps = c.expected["steps"].as_array().cloned().unwrap_or_default();
    for (i, batch) in c.inputs["batches"]
        .as_array()
        .ok_or("batches")?
        .iter()
        .enumerate()
    {
        obs.forward(&f32s(batch), &shape(batch))
            .map_err(|e| format!("batch {i}: {e}"))?;
        if let Some(step) = steps.get(i) {
            compare_state(&format!("step {i} "), obs.as_ref(), step)?;
        }
    }
    compare_state("", obs.as_ref(), &c.expected)?;
    // Re-deriving from the stored statistics with the same spec gives the same qparams.
    let again =
        qlab::observer::qparams_from_stats(&obs.stats(), &spec).map_err(|e| e.to_string())?;
    expect_eq(
        "re-derived qparams",
        again,
        obs.calculate_qparams().map_err(|e| e.to_string())?,
    )
}

fn passthrough(c: &Case) -> Result<(), String> {
    let spec = spec_of(c)?;
    let mut obs = spec.build().map_err(|e| e.to_string())?;
    let batches = c.inputs["batches"].as_array().ok_or("batches")?;
    let outputs = c.expected["outputs"].as_array().ok_or("outputs")?;
    let halves = c.expected["as_float16"].as_array().ok_or("as_float16")?;
    for (i, batch) in batches.iter().enumerate() {
        let x = f32s(batch);
        obs.forward(&x, &shape(batch)).map_err(|e| e.to_string())?;
        // forward returns its input: the caller's tensor is untouched.
        expect_f32_bits(&format!("output {i}"), &x, &f32s(&outputs[i]))?;
        let h: Vec<f32> = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        expect_f32_bits(&format!("as_float16 {i}"), &h, &f32s(&halves[i]))?;
    }
    let err = obs
        .calculate_qparams()
        .err()
        .ok_or("calculate_qparams should fail")?;
    expect_eq(
        "raises",
        format!("Exception: {err}"),
        c.expected["calculate_qparams_raises"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}
