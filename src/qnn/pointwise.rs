//! The per-element rules shared by the quantized elementwise, activation and functional ops:
//! operand checks, fbgemm's dequantize split between vector body and scalar tail, the scalar
//! `quantize_val` used for clamp bounds, and the float "dequantize → f → quantize" map.
//!
//! PyTorch's elementwise quantized kernels (`cpu_kernel_vec`) run a vector body that
//! dequantizes with `fma(q, s, -z·s)` and a scalar tail that dequantizes with `(q - z)·s`. The
//! two forms round differently, so the split point is part of the numerics (NUMERICS §6.4).
//! The vector loop consumes two `Vectorized` registers per step; the golden data pin the step
//! at 64 elements (32-lane registers) on both recorded ISAs: a 128-element step mismatches
//! `qfunctional_add_2x37_p0` on 2 of 74 outputs. Inputs are walked in logical row-major order
//! as one contiguous chunk, which is what PyTorch does for contiguous tensors on one thread.

use super::QnnError;
use crate::tensor::quantize::{
    dequantize_val, inv_scale, quantize_val_8bit, quantize_val_per_channel,
};
use crate::tensor::{QDType, QParams, QStorage, QTensor};

/// Elements per step of `cpu_kernel_vec`'s vector loop (two 32-lane `Vectorized<quint8>`).
pub(crate) const VECTOR_CHUNK: usize = 64;

/// A per-tensor 8-bit operand: its dtype, f64 scale and zero point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand {
    pub dtype: QDType,
    pub scale: f64,
    pub zero_point: i32,
}

impl Operand {
    /// Checks that `x` is a non-empty per-tensor quint8 or qint8 tensor.
    pub(crate) fn of(
        op: &'static str,
        operand: &'static str,
        x: &QTensor,
    ) -> Result<Operand, QnnError> {
        let bad = |got: String| QnnError::Operand {
            op,
            operand,
            expected: "a per-tensor quint8 or qint8 tensor",
            got,
        };
        let QParams::PerTensor { scale, zero_point } = x.qparams() else {
            return Err(bad(format!("{} {}", x.dtype(), x.qscheme())));
        };
        if x.dtype() == QDType::QInt32 {
            return Err(bad(x.dtype().to_string()));
        }
        if x.numel() == 0 {
            return Err(QnnError::EmptyInput {
                op,
                shape: x.shape().to_vec(),
            });
        }
        Ok(Operand {
            dtype: x.dtype(),
            scale: *scale,
            zero_point: *zero_point as i32,
        })
    }

    /// The input operand of a unary op whose output, of the input's dtype, has the qparams
    /// `(out_scale, out_zero_point)`: both checked.
    pub(crate) fn unary(
        op: &'static str,
        x: &QTensor,
        out_scale: f64,
        out_zero_point: i64,
    ) -> Result<Operand, QnnError> {
        let xo = Operand::of(op, "input", x)?;
        QParams::PerTensor {
            scale: out_scale,
            zero_point: out_zero_point,
        }
        .validate(xo.dtype, &[])?;
        Ok(xo)
    }

    pub(crate) fn qmin(&self) -> i32 {
        self.dtype.qmin() as i32
    }

    pub(crate) fn qmax(&self) -> i32 {
        self.dtype.qmax() as i32
    }

    /// `quantize_val(scale, zero_point, v)` with this operand's qparams: fbgemm's scalar
    /// `Quantize`, `z + RNE(v · 1/f32(s))` added and clamped in float (the per-channel
    /// quantizer's element rule).
    pub(crate) fn quantize_scalar(&self, v: f32) -> i32 {
        quantize_val_per_channel(
            v,
            inv_scale(self.scale),
            self.zero_point,
            self.qmin(),
            self.qmax(),
        )
    }
}

/// Checks that two operands share a dtype.
pub(crate) fn same_dtype(op: &'static str, a: &Operand, b: &Operand) -> Result<(), QnnError> {
    if a.dtype == b.dtype {
        Ok(())
    } else {
        Err(QnnError::DTypeMismatch {
            op,
            left: a.dtype,
            right: b.dtype,
        })
    }
}

/// Dequantization of element `i` of a chunk, with fbgemm's vector-body / scalar-tail split.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitDequant {
    scale: f32,
    neg_zero_scaled: f32,
    zero_point: i32,
    body: usize,
    tail_scale: Option<f64>,
}

impl SplitDequant {
    /// For a chunk of `len` elements of `x`.
    pub(crate) fn new(x: &Operand, len: usize) -> SplitDequant {
        let scale = x.scale as f32;
        SplitDequant {
            scale,
            // `scale_vec * zero_point_vec.neg()`: one f32 product, computed once.
            neg_zero_scaled: scale * -(x.zero_point as f32),
            zero_point: x.zero_point,
            body: len - len % VECTOR_CHUNK,
            tail_scale: None,
        }
    }

    /// The tail multiplies by the f64 scale (kernels that hand `dequantize_val` a double).
    pub(crate) fn with_f64_tail(self, scale: f64) -> SplitDequant {
        SplitDequant {
            tail_scale: Some(scale),
            ..self
        }
    }

    /// Whether element `i` falls in the vector body.
    #[inline]
    pub(crate) fn in_body(&self, i: usize) -> bool {
        i < self.body
    }

    /// Elements in the vector body (a prefix of the chunk).
    pub(crate) fn body_len(&self) -> usize {
        self.body
    }

    /// The vector body's dequantization, `fma(q, s, -z·s)`.
    #[inline(always)]
    pub(crate) fn body_at(&self, q: i32) -> f32 {
        (q as f32).mul_add(self.scale, self.neg_zero_scaled)
    }

    #[inline]
    pub(crate) fn at(&self, i: usize, q: i32) -> f32 {
        match self.tail_scale {
            _ if self.in_body(i) => self.body_at(q),
            None => dequantize_val(q, self.zero_point, self.scale),
            Some(s) => ((q - self.zero_point) as f32 as f64 * s) as f32,
        }
    }
}

/// Quantizes one f32 with output qparams by the vector rule (NUMERICS §1.2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requantize {
    inv: f32,
    zero_point: i32,
    lo: i32,
    hi: i32,
}

impl Requantize {
    pub(crate) fn new(scale: f64, zero_point: i32, dtype: QDType) -> Requantize {
        Requantize::with_inverse(inv_scale(scale), zero_point, dtype)
    }

    /// With a reciprocal the kernel formed itself.
    pub(crate) fn with_inverse(inv: f32, zero_point: i32, dtype: QDType) -> Requantize {
        Requantize {
            inv,
            zero_point,
            lo: dtype.qmin() as i32,
            hi: dtype.qmax() as i32,
        }
    }

    #[inline]
    pub(crate) fn apply(&self, v: f32) -> i32 {
        quantize_val_8bit(v, self.inv, self.zero_point, self.lo, self.hi)
    }
}

/// A new contiguous per-tensor tensor from integers already in the dtype's range.
pub(crate) fn output(
    dtype: QDType,
    values: Vec<i32>,
    shape: &[usize],
    scale: f64,
    zero_point: i64,
) -> Result<QTensor, QnnError> {
    Ok(QTensor::from_int_repr(
        QStorage::from_i32(dtype, values),
        shape,
        QParams::PerTensor { scale, zero_point },
    )?)
}

/// Which half of a `cpu_kernel_vec` loop computes an element: the vector lambda (Sleef
/// transcendental functions) or the scalar one (libm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Vector,
    Scalar,
}

/// Where a float-path kernel departs from the plain rule in how it forms its constants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FloatQuirks {
    /// The scalar tail dequantizes with the f64 input scale: `f32(f32(q - z) · s)` in f64.
    pub tail_f64_scale: bool,
    /// The vector body quantizes with `f32(1 / s_out)` formed in f64 (`1.0 / o_scale`).
    pub body_inverse_f64: bool,
}

/// `quantize(f(dequantize(x)))` with output qparams, as PyTorch's float-path activations do it
/// (leaky_relu, hardswish, sigmoid, tanh): split dequantize, `f` in f32, vector quantize.
pub(crate) fn map_float(
    op: &'static str,
    x: &QTensor,
    out_scale: f64,
    out_zero_point: i64,
    quirks: FloatQuirks,
    f: impl Fn(f32, Lane) -> f32,
) -> Result<QTensor, QnnError> {
    let xo = Operand::unary(op, x, out_scale, out_zero_point)?;
    let mut deq = SplitDequant::new(&xo, x.numel());
    if quirks.tail_f64_scale {
        deq = deq.with_f64_tail(xo.scale);
    }
    let tail = Requantize::new(out_scale, out_zero_point as i32, xo.dtype);
    let body = if quirks.body_inverse_f64 {
        Requantize::with_inverse((1.0 / out_scale) as f32, out_zero_point as i32, xo.dtype)
    } else {
        tail
    };
    // Every output is a function of the input integer and of which half of the loop holds it,
    // so one table per half (of the dtype's 256 values) gives the same integers as evaluating
    // `f` per element, at a table lookup each.
    let split = deq.body_len().min(x.numel());
    let table = |rq: &Requantize, lane: Lane, at: usize| -> Vec<i32> {
        (xo.qmin()..=xo.qmax())
            .map(|v| rq.apply(f(deq.at(at, v), lane)))
            .collect()
    };
    let body_table = table(&body, Lane::Vector, 0);
    let tail_table = table(&tail, Lane::Scalar, split);
    map_table(
        x,
        &body_table,
        split,
        &tail_table,
        out_scale,
        out_zero_point,
    )
}

/// An 8-bit dtype's 256-entry table indexed by `q - qmin`, re-indexed by the stored byte
/// (qint8's values start at -128, whose byte is 0x80) and narrowed to bytes.
pub(crate) fn by_stored_byte(table: &[i32], dtype: QDType) -> [u8; 256] {
    assert_eq!(table.len(), 256, "a table over an 8-bit dtype's values");
    let flip = if dtype == QDType::QInt8 { 0x80 } else { 0 };
    std::array::from_fn(|b| table[b ^ flip] as u8)
}

/// `x`'s integers mapped through 256-entry tables indexed by `q - qmin`: the first `split`
/// elements (row-major) through `body`, the rest through `tail`; output of `x`'s dtype with
/// qparams `(scale, zero_point)`. Works on the stored bytes (re-indexed tables, applied by
/// `kernels::lut::map_bytes`), with no widening pass.
pub(crate) fn map_table(
    x: &QTensor,
    body: &[i32],
    split: usize,
    tail: &[i32],
    scale: f64,
    zero_point: i64,
) -> Result<QTensor, QnnError> {
    if !matches!(x.dtype(), QDType::QUInt8 | QDType::QInt8) {
        return Err(QnnError::Operand {
            op: "table lookup",
            operand: "input",
            expected: "a quint8 or qint8 tensor",
            got: x.dtype().to_string(),
        });
    }
    let bytes = super::linear::u8_values(x);
    let split = split.min(bytes.len());
    let mut out = vec![0u8; bytes.len()];
    for (range, table) in [(0..split, body), (split..bytes.len(), tail)] {
        if !range.is_empty() {
            let table = by_stored_byte(table, x.dtype());
            crate::kernels::lut::map_bytes(&bytes[range.clone()], &table, &mut out[range]);
        }
    }
    let storage = match x.dtype() {
        QDType::QUInt8 => QStorage::U8(out),
        _ => QStorage::I8(out.into_iter().map(|b| b as i8).collect()),
    };
    Ok(QTensor::from_int_repr(
        storage,
        x.shape(),
        QParams::PerTensor { scale, zero_point },
    )?)
}
