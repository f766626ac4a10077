//! Scalar tier: the element rules of [`crate::tensor::quantize`] looped over slices.
//!
//! This is the tier used on hosts without SIMD kernels; the tests hold every other tier to the
//! element rules it loops over.

use super::{KeyRange, QInt};
use crate::tensor::QDType;
use crate::tensor::quantize::{
    dequantize_val, dequantize_val_per_channel, quantize_val_8bit, quantize_val_i32,
    quantize_val_per_channel,
};

/// The per-tensor rule of the storage type: the 8-bit vector rule, or the qint32 float rule.
#[inline(always)]
fn quantize_one<T: QInt>(x: f32, inv: f32, zero_point: i32) -> T {
    T::from_i32(match T::DTYPE {
        QDType::QInt32 => quantize_val_i32(x, inv, zero_point),
        QDType::QUInt8 | QDType::QInt8 => quantize_val_8bit(x, inv, zero_point, T::QMIN, T::QMAX),
    })
}

pub(super) fn quantize_per_tensor<T: QInt>(x: &[f32], out: &mut [T], inv: f32, zero_point: i32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, inv, zero_point);
    }
}

pub(super) fn dequantize_per_tensor<T: QInt>(
    q: &[T],
    out: &mut [f32],
    scale: f32,
    zero_point: i32,
) {
    for (o, &v) in out.iter_mut().zip(q) {
        *o = dequantize_val(v.to_i32(), zero_point, scale);
    }
}

pub(super) fn quantize_per_channel<T: QInt>(x: &[f32], out: &mut [T], inv: f32, zero_point: i32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = T::from_i32(quantize_val_per_channel(
            v,
            inv,
            zero_point,
            T::QMIN,
            T::QMAX,
        ));
    }
}

pub(super) fn dequantize_per_channel<T: QInt>(
    q: &[T],
    out: &mut [f32],
    scale: f64,
    zero_point: i64,
) {
    for (o, &v) in out.iter_mut().zip(q) {
        *o = dequantize_val_per_channel(v.to_i32(), zero_point, scale);
    }
}

pub(super) fn key_range(x: &[f32]) -> KeyRange {
    let mut range = KeyRange::EMPTY;
    x.iter().for_each(|&v| range.push(v));
    range
}
