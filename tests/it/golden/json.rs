//! Decoding the golden JSON format (golden README §1) and comparing values: exactly, or within a
//! stated tolerance where PyTorch's float order cannot be reproduced. NaN and infinities are
//! written as the strings "nan" / "inf" / "-inf" (§1.2); every comparison treats NaN as equal to
//! NaN and an infinity as equal only to the same infinity.

use qlab::tensor::{QDType, QParams, QStorage, QTensor};
use serde_json::Value;
use std::fmt::{self, Debug, Display};
use std::path::Path;

/// Why a check did not pass. Only `Qlab` (qlab returned a typed error) satisfies a case whose
/// `expected` holds `raises`; a mismatch, an unreadable case or a panic never does.
#[derive(Debug)]
pub enum CaseError {
    Qlab(String),
    Mismatch(String),
}

impl Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseError::Qlab(m) => write!(f, "qlab error: {m}"),
            CaseError::Mismatch(m) => f.write_str(m),
        }
    }
}

impl From<String> for CaseError {
    fn from(m: String) -> Self {
        CaseError::Mismatch(m)
    }
}

impl From<&str> for CaseError {
    fn from(m: &str) -> Self {
        CaseError::Mismatch(m.to_string())
    }
}

/// Marks the error of a qlab call as qlab's own typed error.
pub trait OrQlab<T> {
    fn qlab(self) -> Result<T, CaseError>;
    /// The same, with where it happened.
    fn qlab_at(self, at: &str) -> Result<T, CaseError>;
}

impl<T, E: Display> OrQlab<T> for Result<T, E> {
    fn qlab(self) -> Result<T, CaseError> {
        self.map_err(|e| CaseError::Qlab(e.to_string()))
    }
    fn qlab_at(self, at: &str) -> Result<T, CaseError> {
        self.map_err(|e| CaseError::Qlab(format!("{at}: {e}")))
    }
}

/// What every check returns.
pub type Outcome = Result<(), CaseError>;

/// One golden case.
pub struct Case {
    pub name: String,
    pub kind: String,
    pub engine: Option<String>,
    pub params: Value,
    pub inputs: Value,
    pub expected: Value,
    /// Top-level keys beyond the six of §1.1 (they make the case fail).
    pub extra_keys: Vec<String>,
}

const CASE_KEYS: [&str; 6] = ["name", "kind", "engine", "params", "inputs", "expected"];

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
            extra_keys: c
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys())
                .filter(|k| !CASE_KEYS.contains(&k.as_str()))
                .cloned()
                .collect(),
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
    t["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

pub fn f64s(t: &Value) -> Vec<f64> {
    t["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(num)
        .collect()
}

pub fn f32s(t: &Value) -> Vec<f32> {
    f64s(t).into_iter().map(|v| v as f32).collect()
}

pub fn i64s(t: &Value) -> Vec<i64> {
    t["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_i64().expect("integer"))
        .collect()
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
    QTensor::from_int_repr(QStorage::from_i32(dtype, ints), &shape(repr), qparams)
        .expect("valid golden qtensor")
}

/// Compares a quantized result with a flat output object `{int_repr, scale, zero_point, qdtype}`.
pub fn expect_flat_qtensor(what: &str, got: &QTensor, want: &Value) -> Result<(), String> {
    expect_eq(
        &format!("{what}.qdtype"),
        got.dtype(),
        qdtype(&want["qdtype"]),
    )?;
    expect_eq(
        &format!("{what}.shape"),
        got.shape().to_vec(),
        shape(&want["int_repr"]),
    )?;
    expect_eq(
        &format!("{what}.int_repr"),
        got.int_values(),
        i64s(&want["int_repr"])
            .into_iter()
            .map(|v| v as i32)
            .collect::<Vec<_>>(),
    )?;
    expect_f64_bits(
        &format!("{what}.scale"),
        &[got.q_scale().map_err(|e| e.to_string())?],
        &[num(&want["scale"])],
    )?;
    expect_eq(
        &format!("{what}.zero_point"),
        got.q_zero_point().map_err(|e| e.to_string())?,
        want["zero_point"].as_i64().expect("zp"),
    )
}

pub fn expect_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Bit-exact f32 comparison (NaN matches any NaN; -0.0 differs from 0.0).
pub fn expect_f32_bits(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| !same_f32(got[i], want[i]))
        .collect();
    match bad.first() {
        None => Ok(()),
        Some(&i) => Err(format!(
            "{what}: {} of {} differ, first at {i}: got {:e}, want {:e}",
            bad.len(),
            got.len(),
            got[i],
            want[i]
        )),
    }
}

/// Bit-exact f64 comparison (NaN matches any NaN).
pub fn expect_f64_bits(what: &str, got: &[f64], want: &[f64]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    match (0..got.len())
        .find(|&i| got[i].to_bits() != want[i].to_bits() && !(got[i].is_nan() && want[i].is_nan()))
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: differs at {i}: got {:e}, want {:e}",
            got[i], want[i]
        )),
    }
}

/// Equal as golden values: the same bits, both NaN, or equal numbers (so `0.0 == -0.0`, which
/// only tolerance comparisons use).
fn same_value(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// `got` within `rtol · max(|want|, 1)` of `want`, element by element, for float results whose
/// summation order cannot match PyTorch's. Non-finite expectations must be met exactly (NaN by
/// NaN, ±inf by the same infinity); a NaN where a number is expected always fails.
pub fn expect_close_f32(what: &str, got: &[f32], want: &[f32], rtol: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    let bad = |g: f32, w: f32| {
        if same_value(g, w) {
            return false;
        }
        !(w.is_finite() && g.is_finite()) || (g - w).abs() > rtol * w.abs().max(1.0)
    };
    match (0..got.len()).find(|&i| bad(got[i], want[i])) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}[{i}]: got {:e}, want {:e} (relative tolerance {rtol:e})",
            got[i], want[i]
        )),
    }
}

/// `got` within `ulps` units in the last place of `want` (same sign; NaN matches NaN; an infinity
/// only itself). For values derived from trained floats, such as fake-quant scales.
pub fn expect_ulps_f32(what: &str, got: &[f32], want: &[f32], ulps: u32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    // Ordered integer images of the floats: adjacent floats differ by 1.
    let key = |v: f32| {
        let b = v.to_bits() as i32;
        if b < 0 { i32::MIN - b } else { b }
    };
    let bad = |g: f32, w: f32| {
        !same_value(g, w)
            && (!(g.is_finite() && w.is_finite())
                || (i64::from(key(g)) - i64::from(key(w))).unsigned_abs() > u64::from(ulps))
    };
    match (0..got.len()).find(|&i| bad(got[i], want[i])) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}[{i}]: got {:e}, want {:e} (more than {ulps} ulp apart)",
            got[i], want[i]
        )),
    }
}

/// The int values of a plain integer tensor, as i32.
pub fn i32s(t: &Value) -> Vec<i32> {
    i64s(t).into_iter().map(|v| v as i32).collect()
}
