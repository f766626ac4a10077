//! Reading NumPy `.npy` files (format versions 1–3) and writing f32 ones: f32, f64, u8, i64 (and i32, i8) arrays,
//! little-endian, C order. Errors name the file and the header field that is wrong.

use crate::graph::Value;
use ndarray::{ArrayD, IxDyn};
use std::path::Path;
use thiserror::Error;

/// What can go wrong reading an `.npy` file.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file cannot be written (the previous file at the path, if any, is unchanged).
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// The file is not a valid `.npy` file (names the field at fault).
    #[error("{path}: not a valid .npy file: {detail}")]
    Format { path: String, detail: String },
    /// A dtype qlab does not read.
    #[error("{path}: dtype '{descr}' is not supported (expected <f4, <f8, |u1, |i1, <i4 or <i8)")]
    Dtype { path: String, descr: String },
}

/// Reads an `.npy` file: floating dtypes become f32, integer dtypes i64.
pub fn read_npy(path: &Path) -> Result<Value, NpyError> {
    let shown = path.display().to_string();
    let bytes = crate::fsutil::read_bounded(path).map_err(|source| NpyError::Io {
        path: shown.clone(),
        source,
    })?;
    parse_npy(&bytes, &shown)
}

/// A parsed `.npy` header and the data bytes it describes (length checked).
struct Raw<'a> {
    descr: String,
    shape: Vec<usize>,
    width: usize,
    data: &'a [u8],
}

/// Parses the header and checks the data length against it.
fn split<'a>(bytes: &'a [u8], origin: &str) -> Result<Raw<'a>, NpyError> {
    let bad = |detail: &str| NpyError::Format {
        path: origin.to_string(),
        detail: detail.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("format version {v} is not supported"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("header is truncated"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let parsed =
        super::npy_header::parse_header(header).map_err(|e| bad(&format!("header: {e}")))?;
    if parsed.fortran_order {
        return Err(bad(
            "fortran_order arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let (descr, shape) = (parsed.descr, parsed.shape);
    let data = &bytes[start + header_len..];
    // The product of the non-zero axes must fit isize (ndarray's limit: an empty array with
    // huge other axes reaches it), and the element count times 8 bytes must fit usize.
    let count = product(shape.iter().filter(|&&d| d != 0))
        .filter(|&extent| extent <= isize::MAX as usize)
        .and_then(|_| product(shape.iter()))
        .filter(|n| n.checked_mul(8).is_some())
        .ok_or_else(|| bad(&format!("shape {shape:?} is too large")))?;
    let width = match descr.as_str() {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        "|u1" | "|i1" | "<u1" | "<i1" => 1,
        _ => {
            return Err(NpyError::Dtype {
                path: origin.to_string(),
                descr,
            });
        }
    };
    if data.len() != count * width {
        return Err(bad(&format!(
            "shape {shape:?} of {descr} needs {} data bytes, the file has {}",
            count * width,
            data.len()
        )));
    }
    Ok(Raw {
        descr,
        shape,
        width,
        data,
    })
}

impl Raw<'_> {
    /// Every element as f64 (exact for every dtype read except i64 beyond 2^53).
    fn f64s(&self) -> impl Iterator<Item = f64> + '_ {
        self.data
            .chunks_exact(self.width)
            .map(|c| match self.descr.as_str() {
                "<f4" => f32::from_le_bytes(c.try_into().expect("4")) as f64,
                "<f8" => f64::from_le_bytes(c.try_into().expect("8")),
                "<i8" => i64::from_le_bytes(c.try_into().expect("8")) as f64,
                "<i4" => i32::from_le_bytes(c.try_into().expect("4")) as f64,
                "|i1" | "<i1" => c[0] as i8 as f64,
                _ => c[0] as f64,
            })
    }

    /// Every element of an integer dtype as i64.
    fn i64s(&self) -> impl Iterator<Item = i64> + '_ {
        self.data
            .chunks_exact(self.width)
            .map(|c| match self.descr.as_str() {
                "<i8" => i64::from_le_bytes(c.try_into().expect("8")),
                "<i4" => i32::from_le_bytes(c.try_into().expect("4")) as i64,
                "|i1" | "<i1" => c[0] as i8 as i64,
                _ => c[0] as i64,
            })
    }

    fn is_float(&self) -> bool {
        self.descr.starts_with("<f")
    }
}

/// The product of `axes`, or `None` when it overflows usize.
fn product<'a>(mut axes: impl Iterator<Item = &'a usize>) -> Option<usize> {
    axes.try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Parses `.npy` bytes; `origin` names the source in errors. Floating dtypes become f32,
/// integer dtypes i64.
pub fn parse_npy(bytes: &[u8], origin: &str) -> Result<Value, NpyError> {
    let raw = split(bytes, origin)?;
    let dims = IxDyn(&raw.shape);
    Ok(if raw.is_float() {
        let v = raw.f64s().map(|x| x as f32).collect();
        Value::F32(ArrayD::from_shape_vec(dims, v).expect("size checked"))
    } else {
        Value::I64(ArrayD::from_shape_vec(dims, raw.i64s().collect()).expect("size checked"))
    })
}

/// Parses `.npy` bytes keeping f64 precision (a reference dump's scales are float64).
pub fn parse_npy_f64(bytes: &[u8], origin: &str) -> Result<ArrayD<f64>, NpyError> {
    let raw = split(bytes, origin)?;
    Ok(ArrayD::from_shape_vec(IxDyn(&raw.shape), raw.f64s().collect()).expect("size checked"))
}

/// Writes an f32 array as a version-1 `.npy` file, atomically (temp file + rename), so an
/// existing file is never left half-written.
pub fn write_npy_f32(path: &Path, a: &ndarray::ArrayD<f32>) -> Result<(), NpyError> {
    let shape = match a.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so the data starts on a 64-byte boundary, as numpy does.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(a.iter().flat_map(|v| v.to_le_bytes()));
    crate::fsutil::write_atomic(path, &bytes).map_err(|source| NpyError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_f32_and_u8() {
        let data: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let v = parse_npy(&npy("<f4", "(2,)", &data), "t").unwrap();
        assert_eq!(
            v,
            Value::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.5, -2.0]).unwrap())
        );
        let v = parse_npy(&npy("|u1", "(1, 2)", &[7, 255]), "t").unwrap();
        assert_eq!(
            v,
            Value::I64(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![7, 255]).unwrap())
        );
    }

    #[test]
    fn rejects_bad_files() {
        assert!(matches!(
            parse_npy(b"hello", "t"),
            Err(NpyError::Format { .. })
        ));
        assert!(matches!(
            parse_npy(&npy("<c8", "(1,)", &[0; 8]), "t"),
            Err(NpyError::Dtype { .. })
        ));
        let e = parse_npy(&npy("<f4", "(3,)", &[0; 8]), "t").unwrap_err();
        assert!(e.to_string().contains("needs 12 data bytes"), "{e}");
        let e = parse_npy(&npy("<f4", "(4611686018427387904, 4)", &[]), "t").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        // Empty, but the other axes' extent passes isize (found by fuzzing): an error, no panic.
        let huge = "(288888888888888888, 40, 0, 4)";
        for parse in [
            |b: &[u8]| parse_npy(b, "t").map(|_| ()),
            |b: &[u8]| parse_npy_f64(b, "t").map(|_| ()),
        ] {
            let e = parse(&npy("<i4", huge, &[])).unwrap_err();
            assert!(e.to_string().contains("too large"), "{e}");
        }
        // Empty with modest other axes is still a valid empty array.
        assert!(parse_npy(&npy("<i4", "(3, 0, 4)", &[]), "t").is_ok());
        let e = parse_npy(&npy("<f4", "(x,)", &[]), "t").unwrap_err();
        assert!(e.to_string().contains("shape entry"), "{e}");
    }
}
