//! Decoding ONNX `TensorProto`s (raw little-endian bytes or typed fields) into graph values.

use super::proto::TensorProto;
use crate::graph::Value;
use crate::import::ImportError;
use ndarray::{ArrayD, IxDyn};

const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;

/// Converts an ONNX tensor: floating types become f32, integer and bool types i64.
pub fn to_value(t: &TensorProto) -> Result<Value, ImportError> {
    let name = t.name.clone().unwrap_or_default();
    let bad = |detail: String| ImportError::BadTensor {
        name: name.clone(),
        detail,
    };
    if t.data_location == Some(1) {
        return Err(bad(
            "external data files are not supported; re-export with the weights embedded".into(),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dim {d}"))))
        .collect::<Result<_, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(8).is_some())
        .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
    let raw = t.raw_data.as_deref();
    let from_raw = |width: usize| -> Result<Option<Vec<&[u8]>>, ImportError> {
        match raw {
            Some(r) if r.len() != count * width => Err(bad(format!(
                "raw data holds {} bytes, shape {dims:?} needs {}",
                r.len(),
                count * width
            ))),
            Some(r) => Ok(Some(r.chunks_exact(width).collect())),
            None => Ok(None),
        }
    };
    let dtype = t.data_type.unwrap_or(0);
    let f32s: Option<Vec<f32>> = match dtype {
        FLOAT => Some(match from_raw(4)? {
            Some(c) => c
                .iter()
                .map(|b| f32::from_le_bytes(b[..4].try_into().expect("4 bytes")))
                .collect(),
            None => t.float_data.clone(),
        }),
        DOUBLE => Some(match from_raw(8)? {
            Some(c) => c
                .iter()
                .map(|b| f64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as f32)
                .collect(),
            None => t.double_data.iter().map(|&v| v as f32).collect(),
        }),
        FLOAT16 => Some(match from_raw(2)? {
            Some(c) => c
                .iter()
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            None => t
                .int32_data
                .iter()
                .map(|&v| half::f16::from_bits(v as u16).to_f32())
                .collect(),
        }),
        _ => None,
    };
    let values = match f32s {
        Some(v) => Value::F32(shaped(&name, &dims, v)?),
        None => {
            let ints: Vec<i64> = match dtype {
                INT64 => match from_raw(8)? {
                    Some(c) => c
                        .iter()
                        .map(|b| i64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
                        .collect(),
                    None => t.int64_data.clone(),
                },
                INT32 => match from_raw(4)? {
                    Some(c) => c
                        .iter()
                        .map(|b| i32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as i64)
                        .collect(),
                    None => t.int32_data.iter().map(|&v| v as i64).collect(),
                },
                BOOL => match from_raw(1)? {
                    Some(c) => c.iter().map(|b| (b[0] != 0) as i64).collect(),
                    None => t.int32_data.iter().map(|&v| (v != 0) as i64).collect(),
                },
                other => {
                    return Err(bad(format!(
                        "ONNX data type {other} is not supported (float, double, float16, int32, int64, bool are)"
                    )));
                }
            };
            Value::I64(shaped(&name, &dims, ints)?)
        }
    };
    Ok(values)
}

fn shaped<T>(name: &str, dims: &[usize], data: Vec<T>) -> Result<ArrayD<T>, ImportError> {
    let got = data.len();
    ArrayD::from_shape_vec(IxDyn(dims), data).map_err(|_| ImportError::BadTensor {
        name: name.into(),
        detail: format!("{got} values do not fill shape {dims:?}"),
    })
}
