//! Decoding the golden JSON format (golden README §1) and comparing values exactly.

use qlab::tensor::{QDType, QParams, QStorage, QTensor};
use serde_json::Value;
use std::fmt::Debug;
use std::path::Path;

/// One golden case.
pub struct Case {
    pub name: String,
    pub kind: String,
    pub engine: Option<String>,
    pub params: Value,
    pub inputs: Value,
    pub expected: Value,
}

pub fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let root: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let cases = root["cases"].as_array().ok_or("no 'cases' array")?;
    Ok(cases
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap_or("?").to_string(),
            kind: c["kind"].as_str().unwrap_or("?").to_string(),
            engine: c["engine"].as_str().map(str::to_string),
            params: c["params"].clone(),
            inputs: c["inputs"].clone(),
            expected: c["expected"].clone(),
        })
        .collect())
}

/// A float written as a JSON number or as "nan" / "inf" / "-inf".
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("not a float: {other}"),
        },
        other => panic!("not a float: {other}"),
    }
}

pub fn shape(t: &Value) -> Vec<usize> {
    t["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect()
}

pub fn f64s(t: &Value) -> Vec<f64> {
    t["data"].as_array().expect("data").iter().map(num).collect()
}

pub fn f32s(t: &Value) -> Vec<f32> {
    f64s(t).into_iter().map(|v| v as f32).collect()
}

pub fn i64s(t: &Value) -> Vec<i64> {
    t["data"].as_array().expect("data").iter().map(|v| v.as_i64().expect("integer")).collect()
}

pub fn qdtype(v: &Value) -> QDType {
    QDType::parse(v.as_str().expect("qdtype string")).expect("known qdtype")
}

/// Rebuilds a qtensor object (golden README §1.3).
pub fn qtensor(v: &Value) -> QTensor {
    let dtype = qdtype(&v["qdtype"]);
    let repr = &v["int_repr"];
    let ints: Vec<i32> = i64s(repr).into_iter().map(|x| x as i32).collect();
    let qparams = match v["qscheme"].as_str().expect("qscheme") {
        "per_tensor_affine" => QParams::PerTensor {
            scale: num(&v["scale"]),
            zero_point: v["zero_point"].as_i64().expect("zero_point"),
        },
        "per_channel_affine" => QParams::PerChannel {
            scales: f64s(&v["scales"]),
            zero_points: i64s(&v["zero_points"]),
            axis: v["axis"].as_u64().expect("axis") as usize,
        },
        other => panic!("unexpected qscheme {other}"),
    };
    QTensor::from_int_repr(QStorage::from_i32(dtype, ints), &shape(repr), qparams).expect("valid golden qtensor")
}

/// Compares a quantized result with a flat output object `{int_repr, scale, zero_point, qdtype}`.
pub fn expect_flat_qtensor(what: &str, got: &QTensor, want: &Value) -> Result<(), String> {
    expect_eq(&format!("{what}.qdtype"), got.dtype(), qdtype(&want["qdtype"]))?;
    expect_eq(&format!("{what}.shape"), got.shape().to_vec(), shape(&want["int_repr"]))?;
    expect_eq(&format!("{what}.int_repr"), got.int_values(), i64s(&want["int_repr"]).into_iter().map(|v| v as i32).collect::<Vec<_>>())?;
    expect_f64_bits(&format!("{what}.scale"), &[got.q_scale().map_err(|e| e.to_string())?], &[num(&want["scale"])])?;
    expect_eq(&format!("{what}.zero_point"), got.q_zero_point().map_err(|e| e.to_string())?, want["zero_point"].as_i64().expect("zp"))
}

pub fn expect_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{what}: got {got:?}, want {want:?}")) }
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Bit-exact f32 comparison (NaN matches any NaN; -0.0 differs from 0.0).
pub fn expect_f32_bits(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    let bad: Vec<usize> = (0..got.len()).filter(|&i| !same_f32(got[i], want[i])).collect();
    match bad.first() {
        None => Ok(()),
        Some(&i) => Err(format!("{what}: {} of {} differ, first at {i}: got {:e}, want {:e}", bad.len(), got.len(), got[i], want[i])),
    }
}

/// Bit-exact f64 comparison (NaN matches any NaN).
pub fn expect_f64_bits(what: &str, got: &[f64], want: &[f64]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    match (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits() && !(got[i].is_nan() && want[i].is_nan())) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: differs at {i}: got {:e}, want {:e}", got[i], want[i])),
    }
}

/// The int values of a plain integer tensor, as i32.
pub fn i32s(t: &Value) -> Vec<i32> {
    i64s(t).into_iter().map(|v| v as i32).collect()
}
