//! Golden checks for the quantized operators of `qops_*.json`, on every host profile the case
//! records: the native (VNNI) result, `isa_variants.avx2` under the avx2 profile (or the native
//! value where the case has no variant), and `exact_int_repr` under the exact profile.

use super::Check;
use super::json::*;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::qnn::QLinear;
use qlab::tensor::QTensor;
use serde_json::Value;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "linear" => linear,
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
