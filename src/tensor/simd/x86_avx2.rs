//! AVX2 tier: 8 f32 lanes per vector, tails through a zero-padded block.
//!
//! Design note. Each element rule maps onto instructions with the same semantics, so at most
//! one value per rule needs a fix-up:
//! * 8-bit quantize: `minps(x*inv, 2^31-128)` — the bound is the *second* operand, so a NaN
//!   product yields the bound, as in fbgemm; `cvtps2dq` rounds ties to even (default MXCSR) and
//!   yields `i32::MIN` out of range, like the saturating `as` of the scalar rule; `vpaddd` wraps.
//!   Four vectors are clamped, then narrowed with two signed/unsigned saturating packs whose lane
//!   interleave is undone by one `vpermd` (a lone vector is narrowed as four copies of itself).
//! * qint32 and per-channel quantize: `roundps` (ties to even) + f32 add; the only value
//!   `cvtps2dq` gets wrong against `as i32` is ≥ 2^31 (0x80000000 instead of `i32::MAX`), and
//!   XOR with the `t >= 2^31` mask turns exactly that into 0x7fffffff.
//! * dequantize: widen, `vpsubd` (wraps), `cvtdq2ps`, one `mulps` — never an FMA. Per-channel
//!   products go through `cvtdq2pd`/`mulpd`/`cvtpd2ps`, matching the scalar f64 product.
//! * min/max: integer min/max of order keys (see `order_key`), which also expose NaNs.
//!
//! Loads and stores go through helpers that take fixed-size arrays, so every pointer access is
//! in bounds by type; the block loops use `as_chunks`, and the last partial block is copied into a
//! zero-padded array, run through the same vector step, and copied back (AVX2 has no byte-masked
//! store, and the scalar rule's `round_ties_even` is a libm call on baseline x86-64).

use super::{KeyRange, QInt};
use crate::tensor::QDType;
use crate::tensor::quantize::CLIP_BELOW_2_31;
use std::arch::x86_64::*;

/// 2^31 as f32: the first value `cvtps2dq` cannot represent.
const TWO_POW_31: f32 = 2_147_483_648.0;

#[inline]
#[target_feature(enable = "avx2")]
fn load_ps<const N: usize>(src: &[f32; N], at: usize) -> __m256 {
    assert!(at + 8 <= N);
    // SAFETY: elements `at..at + 8` are inside `src`; `loadu` needs no alignment.
    unsafe { _mm256_loadu_ps(src.as_ptr().add(at)) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn store_ps(dst: &mut [f32; 8], v: __m256) {
    // SAFETY: `dst` holds exactly 8 writable f32; `storeu` needs no alignment.
    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
}

/// Loads 8 storage integers widened to i32.
#[inline]
#[target_feature(enable = "avx2")]
fn widen<T: QInt>(src: &[T; 8]) -> __m256i {
    let p = src.as_ptr();
    // SAFETY: `src` is 8 elements of `T`: 8 bytes when `T` is u8/i8 (`loadl` reads 8 bytes),
    // 32 bytes when `T` is i32 (the sealed `QInt` ties each dtype to one type); any alignment.
    unsafe {
        match T::DTYPE {
            QDType::QUInt8 => _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())),
            QDType::QInt8 => _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast())),
            QDType::QInt32 => _mm256_loadu_si256(p.cast()),
        }
    }
}

/// Narrows four vectors of in-range values to 32 bytes of `T` (u8 or i8), in order.
#[inline]
#[target_feature(enable = "avx2")]
fn narrow_to_bytes<T: QInt>(q: [__m256i; 4]) -> __m256i {
    // Values are in range, so the saturating packs are exact; each pack interleaves the 128-bit
    // halves of its inputs, which the final permutation undoes.
    let w0 = _mm256_packs_epi32(q[0], q[1]);
    let w1 = _mm256_packs_epi32(q[2], q[3]);
    let b = if T::QMIN < 0 {
        _mm256_packs_epi16(w0, w1)
    } else {
        _mm256_packus_epi16(w0, w1)
    };
    _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Stores 8 i32 values already inside `T`'s range.
#[inline]
#[target_feature(enable = "avx2")]
fn store8<T: QInt>(dst: &mut [T; 8], v: __m256i) {
    let p = dst.as_mut_ptr();
    match T::DTYPE {
        // SAFETY: `T` is i32 here, so `dst` is exactly 32 writable bytes; no alignment needed.
        QDType::QInt32 => unsafe { _mm256_storeu_si256(p.cast(), v) },
        QDType::QUInt8 | QDType::QInt8 => {
            // Narrowing four copies puts the 8 bytes first.
            let b = _mm256_castsi256_si128(narrow_to_bytes::<T>([v; 4]));
            // SAFETY: `T` is one byte here, so `dst` is exactly 8 writable bytes.
            unsafe { _mm_storel_epi64(p.cast(), b) }
        }
    }
}

/// Stores 32 i32 values already inside `T`'s range.
#[inline]
#[target_feature(enable = "avx2")]
fn store32<T: QInt>(dst: &mut [T; 32], q: [__m256i; 4]) {
    match T::DTYPE {
        QDType::QInt32 => {
            for (d, v) in dst.as_chunks_mut::<8>().0.iter_mut().zip(q) {
                store8(d, v);
            }
        }
        QDType::QUInt8 | QDType::QInt8 => {
            // SAFETY: `T` is one byte here, so `dst` is exactly 32 writable bytes.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), narrow_to_bytes::<T>(q)) }
        }
    }
}

/// Runs `step` on the last partial block of 8 through zero-padded copies, so tails take the
/// vector path too (the padding lanes are computed and dropped).
#[inline]
#[target_feature(enable = "avx2")]
fn padded_tail<A: Copy + Default, B: Copy + Default>(
    input: &[A],
    output: &mut [B],
    step: impl FnOnce(&[A; 8], &mut [B; 8]),
) {
    debug_assert!(input.len() < 8 && input.len() == output.len());
    if input.is_empty() {
        return;
    }
    let (mut a, mut b) = ([A::default(); 8], [B::default(); 8]);
    a[..input.len()].copy_from_slice(input);
    step(&a, &mut b);
    output.copy_from_slice(&b[..output.len()]);
}

/// Applies `lane` to all of `x`: blocks of 32 (one narrowing per four vectors), then of 8, then
/// the padded tail.
#[inline]
#[target_feature(enable = "avx2")]
fn quantize_with<T: QInt>(x: &[f32], out: &mut [T], lane: impl Fn(__m256) -> __m256i) {
    let (xb, xr) = x.as_chunks::<32>();
    let (ob, or) = out.as_chunks_mut::<32>();
    for (xs, os) in xb.iter().zip(ob) {
        // Four direct calls, not `array::map`: LLVM left `map`'s closure out of line (2-3x slower).
        let v = |at| lane(load_ps(xs, at));
        store32(os, [v(0), v(8), v(16), v(24)]);
    }
    let step = |xs: &[f32; 8], os: &mut [T; 8]| store8(os, lane(load_ps(xs, 0)));
    let (xb, xr) = xr.as_chunks::<8>();
    let (ob, or) = or.as_chunks_mut::<8>();
    for (xs, os) in xb.iter().zip(ob) {
        step(xs, os);
    }
    padded_tail(xr, or, step);
}

/// Applies `lane` to all of `q`: blocks of 8, then the padded tail.
#[inline]
#[target_feature(enable = "avx2")]
fn dequantize_with<T: QInt>(q: &[T], out: &mut [f32], lane: impl Fn(__m256i) -> __m256) {
    let step = |qs: &[T; 8], os: &mut [f32; 8]| store_ps(os, lane(widen(qs)));
    let (qb, qr) = q.as_chunks::<8>();
    let (ob, or) = out.as_chunks_mut::<8>();
    for (qs, os) in qb.iter().zip(ob) {
        step(qs, os);
    }
    padded_tail(qr, or, step);
}

/// Round to nearest, ties to even, without raising exceptions.
const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// `t as i32` for integral `t`: NaN and < -2^31 already give `i32::MIN`; ≥ 2^31 needs the flip.
#[inline]
#[target_feature(enable = "avx2")]
fn to_i32_saturating(t: __m256) -> __m256i {
    let overflow = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(t, _mm256_set1_ps(TWO_POW_31)));
    _mm256_xor_si256(_mm256_cvtps_epi32(t), overflow)
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_per_tensor<T: QInt>(
    x: &[f32],
    out: &mut [T],
    inv: f32,
    zero_point: i32,
) {
    let inv_v = _mm256_set1_ps(inv);
    match T::DTYPE {
        QDType::QInt32 => {
            let zp = _mm256_set1_ps(zero_point as f32);
            quantize_with(x, out, |v| {
                to_i32_saturating(_mm256_add_ps(
                    zp,
                    _mm256_round_ps::<RNE>(_mm256_mul_ps(v, inv_v)),
                ))
            })
        }
        QDType::QUInt8 | QDType::QInt8 => {
            let (clip, zp) = (
                _mm256_set1_ps(CLIP_BELOW_2_31),
                _mm256_set1_epi32(zero_point),
            );
            let (lo, hi) = (_mm256_set1_epi32(T::QMIN), _mm256_set1_epi32(T::QMAX));
            quantize_with(x, out, |v| {
                let r = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_mul_ps(v, inv_v), clip));
                _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(r, zp), lo), hi)
            })
        }
    }
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dequantize_per_tensor<T: QInt>(
    q: &[T],
    out: &mut [f32],
    scale: f32,
    zero_point: i32,
) {
    let (s, zp) = (_mm256_set1_ps(scale), _mm256_set1_epi32(zero_point));
    dequantize_with(q, out, |v| {
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, zp)), s)
    });
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_per_channel<T: QInt>(
    x: &[f32],
    out: &mut [T],
    inv: f32,
    zero_point: i32,
) {
    let (inv_v, zp) = (_mm256_set1_ps(inv), _mm256_set1_ps(zero_point as f32));
    let (lo, hi) = (
        _mm256_set1_ps(T::QMIN as f32),
        _mm256_set1_ps(T::QMAX as f32),
    );
    quantize_with(x, out, |v| {
        let t = _mm256_add_ps(zp, _mm256_round_ps::<RNE>(_mm256_mul_ps(v, inv_v)));
        // NaN becomes +0.0, which every clamp range contains.
        let t = _mm256_and_ps(t, _mm256_cmp_ps::<_CMP_ORD_Q>(t, t));
        to_i32_saturating(_mm256_min_ps(_mm256_max_ps(t, lo), hi))
    });
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dequantize_per_channel<T: QInt>(
    q: &[T],
    out: &mut [f32],
    scale: f64,
    zero_point: i64,
) {
    // |q|, |zero_point| < 2^31, so converting both to f64 and subtracting there is exact.
    let (s, zp) = (_mm256_set1_pd(scale), _mm256_set1_pd(zero_point as f64));
    let half =
        |v: __m128i| _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtepi32_pd(v), zp), s));
    dequantize_with(q, out, |v| {
        _mm256_set_m128(
            half(_mm256_extracti128_si256::<1>(v)),
            half(_mm256_castsi256_si128(v)),
        )
    });
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn key_range(x: &[f32]) -> KeyRange {
    let (blocks, tail) = x.as_chunks::<8>();
    let (mut lo, mut hi) = (_mm256_set1_epi32(i32::MAX), _mm256_set1_epi32(i32::MIN));
    for xs in blocks {
        // Order keys (see `order_key`); NaNs land beyond the infinities, so no separate test.
        let bits = _mm256_castps_si256(load_ps(xs, 0));
        let k = _mm256_xor_si256(bits, _mm256_srli_epi32::<1>(_mm256_srai_epi32::<31>(bits)));
        lo = _mm256_min_epi32(lo, k);
        hi = _mm256_max_epi32(hi, k);
    }
    let (mut los, mut his) = ([0i32; 8], [0i32; 8]);
    // SAFETY: each destination is exactly 32 writable bytes; `storeu` needs no alignment.
    unsafe {
        _mm256_storeu_si256(los.as_mut_ptr().cast(), lo);
        _mm256_storeu_si256(his.as_mut_ptr().cast(), hi);
    }
    let mut range = KeyRange {
        lo: los.into_iter().fold(i32::MAX, i32::min),
        hi: his.into_iter().fold(i32::MIN, i32::max),
    };
    tail.iter().for_each(|&v| range.push(v));
    range
}
