//! AVX-512 requantization, 16 lanes per step: of one channel's accumulators, or of a row of
//! consecutive channels.
//!
//! Design note. The element rules of [`crate::kernels::requant`] are written out with explicit
//! intrinsics, step by step the same IEEE single-precision operations (convert, add, multiply,
//! round to nearest even, NaN to 0, clamp in float, truncating convert), so the bytes are the
//! same; the tail runs the same 16-lane code under a lane mask instead of a scalar loop.

use crate::kernels::requant::{ChannelRule, Requant, TileBlock};
use std::arch::x86_64::*;

/// Requantizes one channel's plane (`rule`) held in rows of `stride` accumulators into `out`,
/// `cols` bytes per row: [`crate::kernels::requant::Requant::apply_rows`].
///
/// # Safety
/// The host must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn apply_rows(
    rule: &ChannelRule,
    acc: &[i32],
    stride: usize,
    cols: usize,
    out: &mut [u8],
) {
    let rows = out.len() / cols.max(1);
    let span = rows.saturating_sub(1) * stride + cols;
    if cols < 32 && rows > 1 && span <= STAGED {
        // Short rows (a depthwise conv's 7×7 or 14×14 planes): the whole strided span is
        // requantized in full vectors (the gap lanes are discarded), then each row is moved
        // with one masked store, instead of a masked 16-lane step per row.
        let mut staged = [0u8; STAGED + 32];
        // SAFETY: forwarded from this function's contract; every row's 32-byte load stays in
        // `staged` (r·stride + 32 <= span + 32), the masked store writes `cols` bytes of row r.
        unsafe {
            apply_row(rule, &acc[..span], &mut staged[..span]);
            let mask = (1u32 << cols) - 1;
            for (r, o) in out.chunks_exact_mut(cols).enumerate() {
                let v = _mm256_loadu_si256(staged.as_ptr().add(r * stride).cast());
                _mm256_mask_storeu_epi8(o.as_mut_ptr().cast(), mask, v);
            }
        }
        return;
    }
    for (r, o) in out.chunks_exact_mut(cols).enumerate() {
        // SAFETY: forwarded from this function's contract.
        unsafe { apply_row(rule, &acc[r * stride..][..cols], o) };
    }
}

/// The largest strided span [`apply_rows`] stages whole (bytes).
const STAGED: usize = 1024;

/// One row of [`apply_rows`]: `acc` into `out`, of the same length.
///
/// # Safety
/// The host must support AVX-512 F, BW and VL.
#[inline(always)]
unsafe fn apply_row(rule: &ChannelRule, acc: &[i32], out: &mut [u8]) {
    // SAFETY: AVX-512 F by this function's contract.
    let lanes = unsafe { Lanes::broadcast(rule) };
    for (a, o) in acc.chunks(16).zip(out.chunks_mut(16)) {
        let mask = (1u32 << a.len()).wrapping_sub(1) as u16;
        // SAFETY: the mask covers exactly the `a.len()` lanes that `a` and `o` hold.
        unsafe {
            let v = _mm512_maskz_loadu_epi32(mask, a.as_ptr());
            store(lanes.apply(v), mask, o.as_mut_ptr());
        }
    }
}

/// [`TileBlock`] on 16 lanes (the last ones of a row under a mask): a row per channel by
/// [`apply_row`]; channels along the columns 16 at a time, each chunk's constants loaded once
/// for all rows.
///
/// # Safety
/// As [`TileBlock`]; the caller must be compiled with (and the host support) AVX-512 F, BW
/// and VL, and `rq` hold the block's channels.
#[inline(always)]
pub(crate) unsafe fn apply_tile_block(rq: &Requant, b: &TileBlock) {
    if b.by_row {
        for r in 0..b.rows {
            let acc = &b.acc[r * b.acc_stride..][..b.cols];
            // SAFETY: row r's bytes are the block's (this function's contract), AVX-512 likewise.
            unsafe {
                let out = std::slice::from_raw_parts_mut(b.out.add(r * b.out_stride), b.cols);
                apply_row(&rq.channel_rule(b.first_channel + r), acc, out);
            }
        }
        return;
    }
    for j in (0..b.cols).step_by(16) {
        let mask = (1u32 << (b.cols - j).min(16)).wrapping_sub(1) as u16;
        // SAFETY: the mask covers the columns `j..` of the block that remain, which every row
        // holds and the channel tables hold from `first_channel + j` (this function's
        // contract).
        unsafe {
            let lanes = Lanes::channels(rq, b.first_channel + j, mask);
            for r in 0..b.rows {
                let v = _mm512_maskz_loadu_epi32(mask, b.acc[r * b.acc_stride + j..].as_ptr());
                store(lanes.apply(v), mask, b.out.add(r * b.out_stride + j));
            }
        }
    }
}

/// One engine's constants on 16 lanes: one channel's broadcast, or consecutive channels'.
enum Lanes {
    /// `bias` is 0.0 without bias (the accumulator as f32 is never −0.0, so adding +0.0
    /// changes nothing).
    Fbgemm {
        bias: __m512,
        multiplier: __m512,
        zero_point: i32,
        lo: i32,
        nan_free: bool,
    },
    Qnnpack {
        bias: __m512i,
        scale: __m512,
        zero_point: i32,
        lo: i32,
        nan_free: bool,
    },
}

impl Lanes {
    /// # Safety
    /// AVX-512 F.
    #[inline(always)]
    unsafe fn broadcast(rule: &ChannelRule) -> Lanes {
        // SAFETY: by this function's contract.
        unsafe {
            match *rule {
                ChannelRule::Fbgemm {
                    bias,
                    multiplier,
                    zero_point,
                    lo,
                    nan_free,
                } => Lanes::Fbgemm {
                    bias: _mm512_set1_ps(bias),
                    multiplier: _mm512_set1_ps(multiplier),
                    zero_point,
                    lo,
                    nan_free,
                },
                ChannelRule::Qnnpack {
                    bias,
                    scale,
                    zero_point,
                    lo,
                    nan_free,
                } => Lanes::Qnnpack {
                    bias: _mm512_set1_epi32(bias),
                    scale: _mm512_set1_ps(scale),
                    zero_point,
                    lo,
                    nan_free,
                },
            }
        }
    }

    /// Channels `c..` of `rq` in the `mask` lanes.
    ///
    /// # Safety
    /// AVX-512 F; `rq` must hold the masked channels.
    #[inline(always)]
    unsafe fn channels(rq: &Requant, c: usize, mask: u16) -> Lanes {
        // SAFETY: by this function's contract.
        unsafe {
            match rq {
                Requant::Fbgemm(r) => Lanes::Fbgemm {
                    bias: match &r.bias_term {
                        Some(v) => _mm512_maskz_loadu_ps(mask, v[c..].as_ptr()),
                        None => _mm512_setzero_ps(),
                    },
                    multiplier: _mm512_maskz_loadu_ps(mask, r.multiplier[c..].as_ptr()),
                    zero_point: r.zero_point,
                    lo: r.lo,
                    nan_free: r.nan_free,
                },
                Requant::Qnnpack(r) => Lanes::Qnnpack {
                    bias: _mm512_maskz_loadu_epi32(mask, r.bias_q[c..].as_ptr()),
                    scale: _mm512_maskz_loadu_ps(mask, r.scale[c..].as_ptr()),
                    zero_point: r.zero_point,
                    lo: r.lo,
                    nan_free: r.nan_free,
                },
            }
        }
    }

    #[inline(always)]
    fn apply(&self, acc: __m512i) -> __m512i {
        match *self {
            Lanes::Fbgemm {
                bias,
                multiplier,
                zero_point,
                lo,
                nan_free,
            } => fbgemm(acc, bias, multiplier, zero_point, lo, nan_free),
            Lanes::Qnnpack {
                bias,
                scale,
                zero_point,
                lo,
                nan_free,
            } => qnnpack(acc, bias, scale, zero_point, lo, nan_free),
        }
    }
}

/// The `mask` lanes of `q`, narrowed to bytes, into `o` (16 bytes when every lane is set).
///
/// # Safety
/// AVX-512 F/BW/VL; `o` must be writable for the masked lanes.
#[inline(always)]
unsafe fn store(q: __m512i, mask: u16, o: *mut u8) {
    // SAFETY: by this function's contract.
    unsafe {
        // Narrowed in a register, then stored: `vpmovdb` straight to memory is slow on Zen 4.
        let q = _mm512_cvtepi32_epi8(q);
        if mask == u16::MAX {
            _mm_storeu_si128(o.cast(), q);
        } else {
            _mm_mask_storeu_epi8(o.cast(), mask, q);
        }
    }
}

/// `RNE(v)` with NaN lanes set to 0, clamped to `[lo, hi]`, converted to i32. `nan_free`: the
/// rule's constants cannot produce a NaN lane.
///
/// A NaN-free rule clamps first and lets the conversion round to nearest-even: with integer
/// bounds, rounding and clamping commute. That drops a round, a compare and a blend per vector
/// (MobileNet v2's int8 forward was ~9 % slower with them); other rules keep them.
#[inline(always)]
fn round_clamp(v: __m512, lo: f32, hi: f32, nan_free: bool) -> __m512i {
    // SAFETY: the caller runs with AVX-512 F enabled.
    unsafe {
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        if nan_free {
            let v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            return _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                v,
            );
        }
        let v = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let v = _mm512_mask_blend_ps(nan, v, _mm512_setzero_ps());
        _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi))
    }
}

/// [`crate::kernels::requant::FbgemmRequant::apply`] on 16 lanes.
#[inline(always)]
fn fbgemm(
    acc: __m512i,
    bias: __m512,
    multiplier: __m512,
    zero_point: i32,
    lo: i32,
    nan_free: bool,
) -> __m512i {
    // SAFETY: the caller runs with AVX-512 F enabled.
    unsafe {
        let t = _mm512_add_ps(_mm512_cvtepi32_ps(acc), bias);
        let v = _mm512_mul_ps(t, multiplier);
        let (lo, hi) = ((lo - zero_point) as f32, (255 - zero_point) as f32);
        let r = round_clamp(v, lo, hi, nan_free);
        _mm512_add_epi32(r, _mm512_set1_epi32(zero_point))
    }
}

/// [`crate::kernels::requant::QnnpackRequant::apply`] on 16 lanes.
#[inline(always)]
fn qnnpack(
    acc: __m512i,
    bias: __m512i,
    scale: __m512,
    zero_point: i32,
    lo: i32,
    nan_free: bool,
) -> __m512i {
    // SAFETY: the caller runs with AVX-512 F enabled.
    unsafe {
        let total = _mm512_add_epi32(acc, bias);
        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(total), scale);
        let r = round_clamp(v, i16::MIN as f32, i16::MAX as f32, nan_free);
        let r = _mm512_add_epi32(r, _mm512_set1_epi32(zero_point));
        let r = _mm512_max_epi32(r, _mm512_set1_epi32(i16::MIN as i32));
        let r = _mm512_min_epi32(r, _mm512_set1_epi32(i16::MAX as i32));
        _mm512_min_epi32(
            _mm512_max_epi32(r, _mm512_set1_epi32(lo)),
            _mm512_set1_epi32(255),
        )
    }
}
