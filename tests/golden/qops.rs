//! Golden checks for the quantized operators of `qops_*.json`, on every host profile the case
//! records: the native (VNNI) result, `isa_variants.avx2` under the avx2 profile (or the native
//! value where the case has no variant), and `exact_int_repr` under the exact profile. The
//! saturation cases also pin the accumulators (`exact_acc_int32`,
//! `int16_pair_saturation_model_acc`) and the saturated-pair count of `RunStats`.

use super::Check;
use super::json::*;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::qnn::{ConvParams, QConv, QLinear};
use qlab::tensor::QTensor;
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

fn bias(v: &Value) -> Option<Vec<f32>> {
    (!v.is_null()).then(|| f32s(v))
}

fn linear(c: &Case) -> Result<(), String> {
    let p = &c.params;
    let m = QLinear::new(
        &qtensor(&c.inputs["weight"]),
        bias(&c.inputs["bias"]),
        num(&p["out_scale"]),
        p["out_zero_point"].as_i64().unwrap(),
        p["relu"].as_bool().unwrap_or(false),
    )
    .map_err(|e| e.to_string())?;
    let x: QTensor = qtensor(&c.inputs["x"]);
    for (profile, want) in profiles(c) {
        let (y, _) = m
            .forward(&x, Numerics::new(engine(c), profile))
            .map_err(|e| e.to_string())?;
        expect_eq(&format!("int_repr [{profile}]"), y.int_values(), want)?;
        expect_eq("shape", y.shape().to_vec(), shape(&c.expected["int_repr"]))?;
    }
    Ok(())
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|d| d.as_u64().expect("size") as usize)
        .collect()
}

fn conv(c: &Case) -> Result<(), String> {
    let p = &c.params;
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
    .map_err(|e| e.to_string())?;
    let x: QTensor = qtensor(&c.inputs["x"]);
    let e = &c.expected;
    let exact_out = e.get("exact_int_repr").map(i32s);
    let pair_out = e.get("int16_pair_saturation_model_int_repr").map(i32s);
    for (profile, want) in profiles(c) {
        let numerics = Numerics::new(engine(c), profile);
        let (y, stats) = m.forward(&x, numerics).map_err(|e| e.to_string())?;
        expect_eq(
            &format!("int_repr [{profile}]"),
            y.int_values(),
            want.clone(),
        )?;
        expect_eq("shape", y.shape().to_vec(), shape(&e["int_repr"]))?;
        // Where saturation visibly changed the result, the run must have counted it.
        let saturates =
            profile != HostProfile::Exact && exact_out.as_ref().is_some_and(|x| *x != want);
        if profile == HostProfile::Exact || saturates {
            expect_eq(
                &format!("saturated pairs > 0 [{profile}]"),
                stats.saturated_pairs > 0,
                saturates,
            )?;
        }
        let acc = m
            .accumulate(&x, numerics)
            .map_err(|e| e.to_string())?
            .values;
        if profile == HostProfile::Exact
            && let Some(exact) = e.get("exact_acc_int32")
        {
            expect_eq("exact_acc_int32 [exact]", acc.clone(), i32s(exact))?;
        }
        // The pair model's accumulators must be ours wherever its outputs are the recorded ones
        // and differ from the exact outputs.
        if let (Some(model_acc), Some(model_out)) =
            (e.get("int16_pair_saturation_model_acc"), &pair_out)
            && saturates
            && *model_out == want
        {
            expect_eq(&format!("pair model acc [{profile}]"), acc, i32s(model_acc))?;
        }
    }
    Ok(())
}
