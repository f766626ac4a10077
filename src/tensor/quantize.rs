//! The element rules of quantize and dequantize (NUMERICS §1, golden README §2.1–2.2).
//!
//! Each rule is written once as a scalar function; the slice functions apply them over whole
//! buffers in `tensor::simd`, whose every tier must reproduce them bit for bit.
//! The quirks are PyTorch's, reproduced on purpose: the multiply by the f32 reciprocal (never a
//! division), ties-to-even before the zero point, the clip at 2^31-128 that turns NaN into the
//! top of the range, and the i32 wrap-around of the zero-point add.

/// The largest f32 below 2^31: fbgemm's vector quantizer clips `x * inv` against it (`minps`),
/// which also maps NaN to it.
pub const CLIP_BELOW_2_31: f32 = 2_147_483_520.0;

/// `f32(1 / f32(scale))`: the reciprocal every quantizer multiplies by.
#[inline]
pub fn inv_scale(scale: f64) -> f32 {
    1.0f32 / (scale as f32)
}

/// Per-tensor quantize of one value to an 8-bit dtype, as fbgemm's vector kernel does it.
#[inline(always)]
pub fn quantize_val_8bit(x: f32, inv: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    let v = x * inv;
    let v = if v.is_nan() || v > CLIP_BELOW_2_31 {
        CLIP_BELOW_2_31
    } else {
        v
    };
    // Below -2^31 (and -inf) becomes i32::MIN, like cvtps2dq's overflow value. Clamping in
    // float first leaves the conversion nothing to saturate, so loops over this vectorise.
    let v = v.round_ties_even().max(-2_147_483_648.0);
    // SAFETY: `v` is finite (NaN and large values were replaced above) and in the i32 range.
    let r = unsafe { v.to_int_unchecked::<i32>() };
    r.wrapping_add(zero_point).clamp(qmin, qmax)
}

/// Per-tensor quantize of one value to qint32: the zero point is added in f32 after rounding.
#[inline(always)]
pub fn quantize_val_i32(x: f32, inv: f32, zero_point: i32) -> i32 {
    let t = (zero_point as f32) + (x * inv).round_ties_even();
    if t.is_nan() { i32::MIN } else { t as i32 }
}

/// Per-channel quantize of one value: a scalar float path, clamped in float, NaN becomes 0.
#[inline(always)]
pub fn quantize_val_per_channel(x: f32, inv: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    let t = (zero_point as f32) + (x * inv).round_ties_even();
    if t.is_nan() {
        0
    } else {
        t.clamp(qmin as f32, qmax as f32) as i32
    }
}

/// Per-tensor dequantize of one value: exact wrapping subtract, then one f32 multiply.
#[inline(always)]
pub fn dequantize_val(q: i32, zero_point: i32, scale: f32) -> f32 {
    (q.wrapping_sub(zero_point) as f32) * scale
}

/// Per-channel dequantize of one value: the product is taken in f64 with the stored scale.
#[inline(always)]
pub fn dequantize_val_per_channel(q: i32, zero_point: i64, scale: f64) -> f32 {
    (((q as i64 - zero_point) as f64) * scale) as f32
}

/// Min and max of a slice, as `torch.aminmax`: (NaN, NaN) when any element is NaN, (0, 0) when
/// empty; signed zeros order as -0.0 < +0.0. Runs on the selected SIMD tier ([`super::simd`]).
pub fn min_max(x: &[f32]) -> (f32, f32) {
    super::simd::min_max(x)
}
