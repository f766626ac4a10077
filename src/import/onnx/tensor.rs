//! Decoding ONNX `TensorProto`s (raw little-endian bytes, typed fields or an external data file)
//! into graph values.
//!
//! The shape and element type are checked before any payload is touched, so a tensor whose
//! declared size the bytes cannot back is refused before anything the size of the claim is
//! allocated; raw bytes are decoded straight into the value's buffer (one pass, no staging copy).

use super::external::ExternalData;
use super::proto::TensorProto;
use crate::graph::Value;
use crate::import::ImportError;
use ndarray::{ArrayD, IxDyn};

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// Converts a tensor whose data is inside the model (a node attribute): floating types become
/// f32, integer and bool types i64. External data is refused here: only initializers have it in
/// practice, and they go through [`initializer_value`].
pub fn to_value(t: &TensorProto) -> Result<Value, ImportError> {
    let layout = Layout::of(t)?;
    if t.data_location == Some(EXTERNAL) {
        return Err(layout.bad(
            "external data in a node attribute is not supported (only initializers may use it)"
                .into(),
        ));
    }
    layout.decode(t, t.raw_data.as_deref(), "raw data")
}

/// Converts an initializer, reading its bytes from `external` when the model stores them in a
/// separate file.
pub fn initializer_value(
    t: &TensorProto,
    external: &mut ExternalData,
) -> Result<Value, ImportError> {
    let layout = Layout::of(t)?;
    if t.data_location != Some(EXTERNAL) {
        return layout.decode(t, t.raw_data.as_deref(), "raw data");
    }
    let (bytes, origin) = external.bytes(t, &layout.name)?;
    layout.decode(t, Some(bytes), &origin)
}

/// The integer range of an 8-bit tensor (what a QuantizeLinear with it as zero point
/// saturates to); `None` for other types.
pub fn narrow_range(t: &TensorProto) -> Option<(i64, i64)> {
    match t.data_type? {
        UINT8 => Some((0, 255)),
        INT8 => Some((-128, 127)),
        _ => None,
    }
}

/// What a tensor declares: its name, shape and element type, validated.
struct Layout {
    name: String,
    dims: Vec<usize>,
    count: usize,
    dtype: i32,
    /// Bytes per element in `raw_data` (and in external files).
    width: usize,
}

impl Layout {
    fn of(t: &TensorProto) -> Result<Layout, ImportError> {
        let name = t.name.clone().unwrap_or_default();
        let bad = |detail: String| ImportError::BadTensor {
            name: name.clone(),
            detail,
        };
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
        let dtype = t.data_type.unwrap_or(0);
        let width = match dtype {
            FLOAT | INT32 => 4,
            DOUBLE | INT64 => 8,
            FLOAT16 => 2,
            BOOL | UINT8 | INT8 => 1,
            other => {
                return Err(bad(format!(
                    "ONNX data type {other} is not supported (float, double, float16, int8, uint8, int32, int64, bool are)"
                )));
            }
        };
        Ok(Layout {
            name,
            dims,
            count,
            dtype,
            width,
        })
    }

    fn bad(&self, detail: String) -> ImportError {
        ImportError::BadTensor {
            name: self.name.clone(),
            detail,
        }
    }

    /// Decodes `raw` (whose provenance `origin` names in errors) or, without it, the typed
    /// fields: floating types become f32, integer and bool types i64.
    fn decode(
        &self,
        t: &TensorProto,
        raw: Option<&[u8]>,
        origin: &str,
    ) -> Result<Value, ImportError> {
        if let Some(r) = raw
            && r.len() != self.count * self.width
        {
            return Err(self.bad(format!(
                "{origin} holds {} bytes, shape {:?} needs {}",
                r.len(),
                self.dims,
                self.count * self.width
            )));
        }
        let value = match self.dtype {
            FLOAT => Value::F32(self.shaped(match raw {
                Some(r) => le(r, f32::from_le_bytes),
                None => t.float_data.clone(),
            })?),
            DOUBLE => Value::F32(self.shaped(match raw {
                Some(r) => le(r, |b| f64::from_le_bytes(b) as f32),
                None => t.double_data.iter().map(|&v| v as f32).collect(),
            })?),
            FLOAT16 => Value::F32(
                self.shaped(match raw {
                    Some(r) => le(r, |b| half::f16::from_le_bytes(b).to_f32()),
                    None => t
                        .int32_data
                        .iter()
                        .map(|&v| half::f16::from_bits(v as u16).to_f32())
                        .collect(),
                })?,
            ),
            INT64 => Value::I64(self.shaped(match raw {
                Some(r) => le(r, i64::from_le_bytes),
                None => t.int64_data.clone(),
            })?),
            INT32 => Value::I64(self.shaped(match raw {
                Some(r) => le(r, |b| i32::from_le_bytes(b) as i64),
                None => t.int32_data.iter().map(|&v| v as i64).collect(),
            })?),
            UINT8 => Value::I64(self.shaped(match raw {
                Some(r) => le(r, |[b]: [u8; 1]| i64::from(b)),
                None => t.int32_data.iter().map(|&v| i64::from(v as u8)).collect(),
            })?),
            INT8 => Value::I64(self.shaped(match raw {
                Some(r) => le(r, |[b]: [u8; 1]| i64::from(b as i8)),
                None => t.int32_data.iter().map(|&v| i64::from(v as i8)).collect(),
            })?),
            // `Layout::of` admits only the types above and BOOL.
            _ => Value::I64(self.shaped(match raw {
                Some(r) => le(r, |[b]: [u8; 1]| (b != 0) as i64),
                None => t.int32_data.iter().map(|&v| (v != 0) as i64).collect(),
            })?),
        };
        Ok(value)
    }

    fn shaped<T>(&self, data: Vec<T>) -> Result<ArrayD<T>, ImportError> {
        let got = data.len();
        ArrayD::from_shape_vec(IxDyn(&self.dims), data)
            .map_err(|_| self.bad(format!("{got} values do not fill shape {:?}", self.dims)))
    }
}

/// Little-endian elements of `N` bytes each; the caller has checked the length is a multiple.
fn le<const N: usize, T>(raw: &[u8], from: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.as_chunks::<N>().0.iter().map(|&b| from(b)).collect()
}
