//! AVX-512 tier: 16 f32 lanes per vector, tails by masked loads and stores.
//!
//! Design note. The lane rules are the AVX2 ones (see `x86_avx2`) on zmm registers:
//! `vminps(x*inv, 2^31-128)` with the bound second so NaN yields it, `vcvtps2dq` (ties to even,
//! 0x80000000 out of range), wrapping `vpaddd`, clamp; qint32 and per-channel use `vrndscaleps`
//! and fix the single `t >= 2^31` case with a mask move of `i32::MAX`; per-channel dequantize
//! widens each half to f64 (`vcvtdq2pd`, `vmulpd`, `vcvtpd2ps`) like the scalar f64 product;
//! min/max reduces order keys with `vpminsd`/`vpmaxsd`.
//!
//! What changes is the tail: every 16-element chunk goes through the same masked load and store
//! helpers (`vpmovdb` narrows to bytes on the way out). Whole chunks pass a constant full mask,
//! which the compiler folds into plain loads and stores (masking every chunk cost ~15 %); the
//! last short chunk is masked, so there is no scalar remainder and masked-off lanes are never
//! touched. Only AVX-512 F/BW/VL are used (BW+VL for the masked byte load); VNNI plays no part
//! in elementwise work.

use super::{KeyRange, QInt};
use crate::tensor::QDType;
use crate::tensor::quantize::CLIP_BELOW_2_31;
use std::arch::x86_64::*;

/// 2^31 as f32: the first value `vcvtps2dq` cannot represent.
const TWO_POW_31: f32 = 2_147_483_648.0;

/// Lanes per vector.
const LANES: usize = 16;

/// The mask of the first `len` lanes (`len <= 16`).
#[inline]
fn lanes(len: usize) -> __mmask16 {
    debug_assert!(len <= LANES);
    ((1u32 << len) - 1) as __mmask16
}

/// Loads up to 16 f32; missing lanes read as 0.0 and are masked off by every consumer.
#[inline]
#[target_feature(enable = "avx512f")]
fn load_ps(src: &[f32]) -> __m512 {
    assert!(src.len() <= LANES);
    // SAFETY: only the first `src.len()` lanes are read (the mask suppresses the others, which
    // cannot fault); masked loads need no alignment.
    unsafe { _mm512_maskz_loadu_ps(lanes(src.len()), src.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store_ps(dst: &mut [f32], v: __m512) {
    assert!(dst.len() <= LANES);
    // SAFETY: only the first `dst.len()` lanes are written; masked stores need no alignment.
    unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), lanes(dst.len()), v) }
}

/// Loads up to 16 storage integers widened to i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn widen<T: QInt>(src: &[T]) -> __m512i {
    assert!(src.len() <= LANES);
    let (m, p) = (lanes(src.len()), src.as_ptr());
    // SAFETY: only the first `src.len()` elements are read, each of `T`'s width (the sealed `QInt`
    // ties each dtype to one type); masked loads need no alignment.
    unsafe {
        match T::DTYPE {
            QDType::QUInt8 => _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p.cast())),
            QDType::QInt8 => _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p.cast())),
            QDType::QInt32 => _mm512_maskz_loadu_epi32(m, p.cast()),
        }
    }
}

/// Stores up to 16 i32 values already inside `T`'s range.
#[inline]
#[target_feature(enable = "avx512f")]
fn store_narrow<T: QInt>(dst: &mut [T], q: __m512i) {
    assert!(dst.len() <= LANES);
    let (m, p) = (lanes(dst.len()), dst.as_mut_ptr());
    // SAFETY: only the first `dst.len()` elements are written, each of `T`'s width; `vpmovdb`
    // keeps the low byte, which is the value since it is in range. No alignment needed.
    unsafe {
        match T::DTYPE {
            QDType::QInt32 => _mm512_mask_storeu_epi32(p.cast(), m, q),
            QDType::QUInt8 | QDType::QInt8 => _mm512_mask_cvtepi32_storeu_epi8(p.cast(), m, q),
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn quantize_chunks<T: QInt>(x: &[f32], out: &mut [T], lane: impl Fn(__m512) -> __m512i) {
    let (xb, xt) = x.as_chunks::<LANES>();
    let (ob, ot) = out.as_chunks_mut::<LANES>();
    for (xs, os) in xb.iter().zip(ob) {
        store_narrow(os, lane(load_ps(xs)));
    }
    if !xt.is_empty() {
        store_narrow(ot, lane(load_ps(xt)));
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dequantize_chunks<T: QInt>(q: &[T], out: &mut [f32], lane: impl Fn(__m512i) -> __m512) {
    let (qb, qt) = q.as_chunks::<LANES>();
    let (ob, ot) = out.as_chunks_mut::<LANES>();
    for (qs, os) in qb.iter().zip(ob) {
        store_ps(os, lane(widen(qs)));
    }
    if !qt.is_empty() {
        store_ps(ot, lane(widen(qt)));
    }
}

/// Round to nearest, ties to even, without raising exceptions.
const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// `t as i32` for integral `t`: NaN and < -2^31 already give `i32::MIN`; ≥ 2^31 needs `i32::MAX`.
#[inline]
#[target_feature(enable = "avx512f")]
fn to_i32_saturating(t: __m512) -> __m512i {
    let overflow = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(t, _mm512_set1_ps(TWO_POW_31));
    _mm512_mask_mov_epi32(_mm512_cvtps_epi32(t), overflow, _mm512_set1_epi32(i32::MAX))
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn quantize_per_tensor<T: QInt>(
    x: &[f32],
    out: &mut [T],
    inv: f32,
    zero_point: i32,
) {
    let inv = _mm512_set1_ps(inv);
    match T::DTYPE {
        QDType::QInt32 => {
            let zp = _mm512_set1_ps(zero_point as f32);
            quantize_chunks(x, out, |v| {
                to_i32_saturating(_mm512_add_ps(
                    zp,
                    _mm512_roundscale_ps::<RNE>(_mm512_mul_ps(v, inv)),
                ))
            });
        }
        QDType::QUInt8 | QDType::QInt8 => {
            let (clip, zp) = (
                _mm512_set1_ps(CLIP_BELOW_2_31),
                _mm512_set1_epi32(zero_point),
            );
            let (lo, hi) = (_mm512_set1_epi32(T::QMIN), _mm512_set1_epi32(T::QMAX));
            quantize_chunks(x, out, |v| {
                let r = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_mul_ps(v, inv), clip));
                _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, zp), lo), hi)
            });
        }
    }
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn dequantize_per_tensor<T: QInt>(
    q: &[T],
    out: &mut [f32],
    scale: f32,
    zero_point: i32,
) {
    let (s, zp) = (_mm512_set1_ps(scale), _mm512_set1_epi32(zero_point));
    dequantize_chunks(q, out, |v| {
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, zp)), s)
    });
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn quantize_per_channel<T: QInt>(
    x: &[f32],
    out: &mut [T],
    inv: f32,
    zero_point: i32,
) {
    let (inv, zp) = (_mm512_set1_ps(inv), _mm512_set1_ps(zero_point as f32));
    let (lo, hi) = (
        _mm512_set1_ps(T::QMIN as f32),
        _mm512_set1_ps(T::QMAX as f32),
    );
    quantize_chunks(x, out, |v| {
        let t = _mm512_add_ps(zp, _mm512_roundscale_ps::<RNE>(_mm512_mul_ps(v, inv)));
        // NaN becomes +0.0, which every clamp range contains.
        let t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(t, t), t);
        to_i32_saturating(_mm512_min_ps(_mm512_max_ps(t, lo), hi))
    });
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn dequantize_per_channel<T: QInt>(
    q: &[T],
    out: &mut [f32],
    scale: f64,
    zero_point: i64,
) {
    // |q|, |zero_point| < 2^31, so converting both to f64 and subtracting there is exact.
    let (s, zp) = (_mm512_set1_pd(scale), _mm512_set1_pd(zero_point as f64));
    let half = |v: __m256i| {
        _mm256_castps_pd(_mm512_cvtpd_ps(_mm512_mul_pd(
            _mm512_sub_pd(_mm512_cvtepi32_pd(v), zp),
            s,
        )))
    };
    dequantize_chunks(q, out, |v| {
        let lo = half(_mm512_castsi512_si256(v));
        let hi = half(_mm512_extracti64x4_epi64::<1>(v));
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(lo), hi))
    });
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn key_range(x: &[f32]) -> KeyRange {
    let (mut lo, mut hi) = (_mm512_set1_epi32(i32::MAX), _mm512_set1_epi32(i32::MIN));
    // Order keys (see `order_key`) of the lanes in `m`; NaNs land beyond the infinities.
    let mut step = |m: __mmask16, v: __m512| {
        let bits = _mm512_castps_si512(v);
        let k = _mm512_xor_si512(bits, _mm512_srli_epi32::<1>(_mm512_srai_epi32::<31>(bits)));
        lo = _mm512_mask_min_epi32(lo, m, lo, k);
        hi = _mm512_mask_max_epi32(hi, m, hi, k);
    };
    let (blocks, tail) = x.as_chunks::<LANES>();
    for xs in blocks {
        step(lanes(LANES), load_ps(xs));
    }
    step(lanes(tail.len()), load_ps(tail));
    KeyRange {
        lo: _mm512_reduce_min_epi32(lo),
        hi: _mm512_reduce_max_epi32(hi),
    }
}
