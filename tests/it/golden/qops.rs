//! Golden checks for the quantized operators of `qops_*.json`, on every host profile the case
//! records: the native (VNNI) result, `isa_variants.avx2` under the avx2 profile (or the native
//! value where the case has no variant), and `exact_int_repr` under the exact profile. The
//! saturation cases also pin the accumulators (`exact_acc_int32`,
//! `int16_pair_saturation_model_acc`) and the saturated-pair count of `RunStats`.

use super::Check;
use super::json::*;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::qnn::{ConvParams, QConv, QLinear, RunStats};
use qlab::tensor::{QParams, QTensor};
use serde_json::Value;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "linear" => linear,
        "conv1d" | "conv2d" | "conv3d" => conv,
        _ => return None,
    })
}

fn engine(c: &Case) -> Engine {
    Engine::parse(c.engine.as_deref().unwrap_or("fbgemm")).expect("known engine")
}

/// The profiles a case pins down, each with the int_repr it must produce.
fn profiles(c: &Case) -> Vec<(HostProfile, Vec<i32>)> {
    let e = &c.expected;
    let native = i32s(&e["int_repr"]);
    let mut out = vec![(HostProfile::Vnni, native.clone())];
    let avx2 = e
        .get("isa_variants")
        .and_then(|v| v.get("avx2"))
        .and_then(|v| v.get("int_repr"));
    out.push((HostProfile::Avx2, avx2.map_or(native, i32s)));
    if let Some(exact) = e.get("exact_int_repr") {
        out.push((HostProfile::Exact, i32s(exact)));
    }
    out
}

/// The module's recorded constructor arguments must describe the recorded weight and bias.
fn check_module_args(c: &Case, dims: &[(&str, usize)]) -> Result<(), String> {
    let (p, w) = (&c.params, qtensor(&c.inputs["weight"]));
    for &(key, want) in dims {
        expect_eq(key, p[key].as_u64(), Some(want as u64))?;
    }
    expect_eq(
        "bias",
        p["bias"].as_bool(),
        Some(!c.inputs["bias"].is_null()),
    )?;
    let scheme = match w.qparams() {
        QParams::PerTensor { .. } => "per_tensor",
        QParams::PerChannel { axis: 0, .. } => "per_channel",
        QParams::PerChannel { .. } => return Err("per-channel weight axis is not 0".into()),
    };
    expect_eq("weight_qscheme", p["weight_qscheme"].as_str(), Some(scheme))
}

fn bias(v: &Value) -> Option<Vec<f32>> {
    (!v.is_null()).then(|| f32s(v))
}

/// What one run of a module under some numerics produced.
struct Run {
    out: QTensor,
    /// The i32 accumulators, in output order.
    acc: Vec<i32>,
    stats: RunStats,
}

/// Runs a module under every profile the case pins down and compares the output; where the
/// case records them, also the accumulators (`exact_acc_int32` under exact,
/// `int16_pair_saturation_model_acc` wherever the recorded output is the pair model's and not
/// the exact one) and the saturated-pair count (0 under exact, > 0 wherever the recorded
/// output differs from the exact one).
fn check_profiles(c: &Case, run: impl Fn(Numerics) -> Result<Run, CaseError>) -> Outcome {
    let e = &c.expected;
    // Cases whose native result is not exact (fbgemm's depthwise fast path) carry
    // `exact_int_repr`; for the others the native (VNNI) result is the exact one.
    let exact_out = i32s(e.get("exact_int_repr").unwrap_or(&e["int_repr"]));
    let pair_out = e.get("int16_pair_saturation_model_int_repr").map(i32s);
    for (profile, want) in profiles(c) {
        let r = run(Numerics::new(engine(c), profile))?;
        expect_eq(
            &format!("int_repr [{profile}]"),
            r.out.int_values(),
            want.clone(),
        )?;
        expect_eq("shape", r.out.shape().to_vec(), shape(&e["int_repr"]))?;
        let saturates = profile != HostProfile::Exact && exact_out != want;
        if profile == HostProfile::Exact || saturates {
            expect_eq(
                &format!("saturated pairs > 0 [{profile}]"),
                r.stats.saturated_pairs > 0,
                saturates,
            )?;
        }
        if profile == HostProfile::Exact
            && let Some(exact) = e.get("exact_acc_int32")
        {
            expect_eq("exact_acc_int32 [exact]", r.acc.clone(), i32s(exact))?;
        }
        if let (Some(model_acc), Some(model_out)) =
            (e.get("int16_pair_saturation_model_acc"), &pair_out)
            && saturates
            && *model_out == want
        {
            expect_eq(
                &format!("pair model acc [{profile}]"),
                r.acc,
                i32s(model_acc),
            )?;
        }
    }
    Ok(())
}

fn linear(c: &Case) -> Outcome {
    let p = &c.params;
    let w = shape(&c.inputs["weight"]["int_repr"]);
    check_module_args(c, &[("out_features", w[0]), ("in_features", w[1])])?;
    let m = QLinear::new(
        &qtensor(&c.inputs["weight"]),
        bias(&c.inputs["bias"]),
        num(&p["out_scale"]),
        p["out_zero_point"].as_i64().unwrap(),
        p["relu"].as_bool().unwrap_or(false),
    )
    .qlab()?;
    let x: QTensor = qtensor(&c.inputs["x"]);
    check_profiles(c, |numerics| {
        let (out, stats) = m.forward(&x, numerics).qlab()?;
        let (acc, _) = m.accumulate(&x, numerics).qlab()?;
        Ok(Run { out, acc, stats })
    })
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|d| d.as_u64().expect("size") as usize)
        .collect()
}

fn conv(c: &Case) -> Outcome {
    let p = &c.params;
    let w = shape(&c.inputs["weight"]["int_repr"]);
    let groups = p["groups"].as_u64().ok_or("groups")? as usize;
    check_module_args(c, &[("out_channels", w[0]), ("in_channels", w[1] * groups)])?;
    expect_eq("kernel_size", usizes(&p["kernel_size"]), w[2..].to_vec())?;
    let params = ConvParams {
        stride: usizes(&p["stride"]),
        padding: usizes(&p["padding"]),
        dilation: usizes(&p["dilation"]),
        groups: p["groups"].as_u64().unwrap() as usize,
    };
    let m = QConv::new(
        &qtensor(&c.inputs["weight"]),
        bias(&c.inputs["bias"]),
        params,
        num(&p["out_scale"]),
        p["out_zero_point"].as_i64().unwrap(),
        p["relu"].as_bool().unwrap_or(false),
    )
    .qlab()?;
    let x: QTensor = qtensor(&c.inputs["x"]);
    check_profiles(c, |numerics| {
        let (out, stats) = m.forward(&x, numerics).qlab()?;
        let acc = m.accumulate(&x, numerics).qlab()?.values;
        Ok(Run { out, acc, stats })
    })
}
