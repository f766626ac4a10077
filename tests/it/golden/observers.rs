//! Golden checks for `observers.json`: every observer class and preset, batch by batch, and the
//! passthrough observers.

use super::Check;
use super::json::*;
use qlab::observer::{
    HistogramObserver, ObservedQParams, Observer, ObserverError, ObserverKind, ObserverSpec,
};
use qlab::qconfig::{Preset, preset};
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

/// The `args` keys the observer kinds take (golden README §5).
const ARG_KEYS: [&str; 12] = [
    "dtype",
    "qscheme",
    "reduce_range",
    "quant_min",
    "quant_max",
    "has_customized_qrange",
    "eps",
    "averaging_constant",
    "ch_axis",
    "bins",
    "upsample_rate",
    "is_dynamic",
];

/// A custom range whose `reduce_range` halving gives the effective `[lo, hi]`: PyTorch stores
/// only `quant_min // 2` and `quant_max // 2` (floor division, observer.py
/// `calculate_qmin_qmax`), so pick the narrowest preimage that passes its constructor checks
/// (`quant_min <= 0 <= quant_max`, `quant_min < quant_max`, at most 256 values for qint8). The
/// zero point only depends on the effective values, so any preimage gives the same results.
pub fn custom_range_before_reduce(lo: i64, hi: i64) -> (i64, i64) {
    let min = if lo < 0 { 2 * lo + 1 } else { 0 };
    let max = if 2 * hi > min { 2 * hi } else { 2 * hi + 1 };
    (min, max)
}

/// The spec a case describes. Normally `args` holds the effective configuration; in a `raises`
/// case it holds the constructor kwargs, whose custom range is taken as given.
fn spec_of(c: &Case) -> Result<ObserverSpec, CaseError> {
    let a = &c.params["args"];
    if let Some(k) = a
        .as_object()
        .ok_or("args")?
        .keys()
        .find(|k| !ARG_KEYS.contains(&k.as_str()))
    {
        return Err(format!("observer argument '{k}' is not read by the harness").into());
    }
    let mut spec = ObserverSpec::new(kind_of(c.params["observer"].as_str().unwrap_or("?"))?);
    if let Some(d) = a["dtype"].as_str() {
        spec = spec.with_dtype(DType::parse(d).ok_or(format!("dtype {d}"))?);
    }
    if let Some(q) = a["qscheme"].as_str() {
        spec = spec.with_qscheme(QScheme::parse(q).ok_or(format!("qscheme {q}"))?);
    }
    let reduce = a["reduce_range"].as_bool().unwrap_or(false);
    let kwargs = c.expected.get("raises").is_some();
    let customized = a["has_customized_qrange"].as_bool().unwrap_or(kwargs);
    if let (true, Some(lo), Some(hi)) =
        (customized, a["quant_min"].as_i64(), a["quant_max"].as_i64())
    {
        let (lo, hi) = if reduce && !kwargs {
            custom_range_before_reduce(lo, hi)
        } else {
            (lo, hi)
        };
        spec = spec.with_quant_range(lo, hi);
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
    if let Some(rate) = a["upsample_rate"].as_u64() {
        spec = spec.with_upsample_rate(rate as usize);
    }
    if let Some(d) = a["is_dynamic"].as_bool() {
        spec = spec.with_is_dynamic(d);
    }
    if let Some(name) = c.params["preset"].as_str() {
        // A named preset is built from qlab's preset table, which must agree with the args.
        let preset_spec = match preset(name).qlab()? {
            Preset::Observer(p) => p,
            other => return Err(format!("preset {name} is {}", other.kind_name()).into()),
        };
        expect_eq(
            &format!("preset {name} against args"),
            preset_spec.normalized(),
            spec.normalized(),
        )?;
        spec = preset_spec;
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
fn compare_state(what: &str, obs: &dyn Observer, want: &Value) -> Outcome {
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
        .qlab_at(&format!("{what}calculate_qparams"))?;
    expect_f32_bits(&format!("{what}scale"), &q.scales, &f32s(&want["scale"]))?;
    Ok(expect_eq(
        &format!("{what}zero_point"),
        q.zero_points,
        i64s(&want["zero_point"]),
    )?)
}

fn observer(c: &Case) -> Outcome {
    let spec = spec_of(c)?;
    let range = spec.quant_range().qlab()?;
    let a = &c.params["args"];
    expect_eq(
        "has_customized_qrange",
        Some(range.customized),
        a["has_customized_qrange"].as_bool(),
    )?;
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
    let mut obs = spec.build().qlab()?;
    let steps = c.expected["steps"].as_array().cloned().unwrap_or_default();
    for (i, batch) in c.inputs["batches"]
        .as_array()
        .ok_or("batches")?
        .iter()
        .enumerate()
    {
        obs.forward(&f32s(batch), &shape(batch))
            .qlab_at(&format!("batch {i}"))?;
        if let Some(step) = steps.get(i) {
            compare_state(&format!("step {i} "), obs.as_ref(), step)?;
        }
    }
    compare_state("", obs.as_ref(), &c.expected)?;
    // calculate_qparams() returns int32 zero points for affine schemes and int64 for symmetric
    // ones (§2.4); with nothing observed it returns its int64 fallback [0].
    let (mins, maxs) = buffers(obs.as_ref());
    let observed = !(mins.is_empty() || mins == [f32::INFINITY] && maxs == [f32::NEG_INFINITY]);
    let zp_dtype = if observed && !spec.qscheme.is_symmetric() {
        "int32"
    } else {
        "int64"
    };
    expect_eq(
        "zero_point_torch_dtype",
        c.expected["zero_point_torch_dtype"].as_str(),
        Some(zp_dtype),
    )?;
    // Re-deriving from the stored statistics with the same spec gives the same qparams.
    let again = qlab::observer::qparams_from_stats(&obs.stats(), &spec).qlab()?;
    Ok(expect_eq(
        "re-derived qparams",
        again,
        obs.calculate_qparams().qlab()?,
    )?)
}

fn passthrough(c: &Case) -> Outcome {
    let spec = spec_of(c)?;
    let mut obs = spec.build().qlab()?;
    let batches = c.inputs["batches"].as_array().ok_or("batches")?;
    let outputs = c.expected["outputs"].as_array().ok_or("outputs")?;
    let halves = c.expected["as_float16"].as_array().ok_or("as_float16")?;
    for (i, batch) in batches.iter().enumerate() {
        let x = f32s(batch);
        obs.forward(&x, &shape(batch)).qlab()?;
        // forward returns its input: the caller's tensor is untouched.
        expect_f32_bits(&format!("output {i}"), &x, &f32s(&outputs[i]))?;
        let h: Vec<f32> = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        expect_f32_bits(&format!("as_float16 {i}"), &h, &f32s(&halves[i]))?;
    }
    let err = obs
        .calculate_qparams()
        .err()
        .ok_or("calculate_qparams should fail")?;
    Ok(expect_eq(
        "raises",
        format!("Exception: {err}"),
        c.expected["calculate_qparams_raises"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )?)
}
