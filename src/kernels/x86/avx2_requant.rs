//! AVX2 builds of the requantization epilogue.
//!
//! Design note. The element rules of [`crate::kernels::requant`] are restated on 8 lanes with the
//! same IEEE operations in the same order: `vcvtdq2ps` (round to nearest, as `as f32`), the
//! bias add and multiplier, `vroundps` to nearest-even, the clamp in float with NaN lanes forced
//! to 0 (`vmaxps`/`vminps` alone would return a bound for NaN), then an exact conversion. The
//! results are integers in `[lo, 255]`, so the saturating packs to u8 never saturate. Tails
//! shorter than 8 take the element rule itself, so every byte equals it.

use crate::kernels::requant::{FbgemmRequant, QnnpackRequant, Requant, TileBlock, for_each_row};
use std::arch::x86_64::*;

/// [`Requant::apply_rows`] compiled for AVX2.
///
/// # Safety
/// The host must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn apply_rows(
    rq: &Requant,
    acc: &[i32],
    stride: usize,
    cols: usize,
    c: usize,
    out: &mut [u8],
) {
    // SAFETY: AVX2 by this function's contract.
    for_each_row(acc, stride, cols, out, |a, o| unsafe {
        channel(rq, a, c, o)
    });
}

/// `out[i] = rq.apply(acc[i], c)` for `i < min(len)`, 8 lanes at a time; inlined into callers
/// compiled with AVX2 (the GEMM tasks' tile epilogue among them).
///
/// # Safety
/// The caller must be compiled with (and the host support) AVX2.
#[inline(always)]
pub(crate) unsafe fn channel(rq: &Requant, acc: &[i32], c: usize, out: &mut [u8]) {
    let len = acc.len().min(out.len());
    let whole = len / 8 * 8;
    // SAFETY (both arms): AVX2 by this function's contract; every load and store below covers
    // lanes `i..i + 8` with `i + 8 <= whole <= len`.
    match rq {
        Requant::Fbgemm(r) => unsafe {
            let lanes = FbgemmLanes::new(r, c);
            for i in (0..whole).step_by(8) {
                let v = _mm256_loadu_si256(acc.as_ptr().add(i).cast());
                store8(out.as_mut_ptr().add(i), lanes.apply(v));
            }
        },
        Requant::Qnnpack(r) => unsafe {
            let lanes = QnnpackLanes::new(r, c);
            for i in (0..whole).step_by(8) {
                let v = _mm256_loadu_si256(acc.as_ptr().add(i).cast());
                store8(out.as_mut_ptr().add(i), lanes.apply(v));
            }
        },
    }
    for (&v, y) in acc[whole..len].iter().zip(&mut out[whole..len]) {
        *y = rq.apply(v, c);
    }
}

/// [`TileBlock`] on 8 lanes: a row per channel by [`channel`]; channels along the columns 8 at
/// a time, the constants loaded once per 8 columns for all rows, the last `cols % 8` columns
/// by the element rule.
///
/// # Safety
/// As [`TileBlock`]; the caller must be compiled with (and the host support) AVX2, and `rq`
/// hold the block's channels.
#[inline(always)]
pub(crate) unsafe fn tile_block(rq: &Requant, b: &TileBlock) {
    if b.by_row {
        for r in 0..b.rows {
            let acc = &b.acc[r * b.acc_stride..][..b.cols];
            // SAFETY: row r's bytes are the block's (this function's contract), AVX2 likewise.
            unsafe {
                let out = std::slice::from_raw_parts_mut(b.out.add(r * b.out_stride), b.cols);
                channel(rq, acc, b.first_channel + r, out);
            }
        }
        return;
    }
    let whole = b.cols / 8 * 8;
    // SAFETY (both arms): AVX2 by this function's contract; every load covers columns
    // `i..i + 8 <= whole` of a row, every store that row's bytes.
    for i in (0..whole).step_by(8) {
        let c = b.first_channel + i;
        match rq {
            Requant::Fbgemm(r) => unsafe { rows8(&FbgemmLanes::columns(r, c), b, i) },
            Requant::Qnnpack(r) => unsafe { rows8(&QnnpackLanes::columns(r, c), b, i) },
        }
    }
    let tail = TileBlock {
        acc: &b.acc[whole.min(b.acc.len())..],
        cols: b.cols - whole,
        first_channel: b.first_channel + whole,
        // SAFETY: column `whole` of row 0 is inside the block (or its end when there is no tail).
        out: unsafe { b.out.add(whole) },
        ..*b
    };
    // SAFETY: the tail is part of the block.
    unsafe { rq.apply_tile_block_portable(&tail) };
}

/// Columns `i..i + 8` of every row of `b`, by `lanes`.
///
/// # Safety
/// As [`columns`], with `i + 8 <= b.cols`.
#[inline(always)]
unsafe fn rows8(lanes: &impl Lanes, b: &TileBlock, i: usize) {
    for r in 0..b.rows {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            let v = _mm256_loadu_si256(b.acc[r * b.acc_stride + i..][..8].as_ptr().cast());
            store8(b.out.add(r * b.out_stride + i), lanes.apply(v));
        }
    }
}

/// One engine's rule on 8 lanes.
trait Lanes {
    /// # Safety
    /// The caller must be compiled with AVX2.
    unsafe fn apply(&self, acc: __m256i) -> __m256i;
}

/// [`FbgemmRequant::apply`]'s constants: one channel's broadcast, or consecutive channels'.
struct FbgemmLanes {
    bias: Option<__m256>,
    multiplier: __m256,
    lo: __m256,
    hi: __m256,
    zero_point: __m256i,
    /// [`FbgemmRequant::nan_free`]: the NaN lanes need no masking.
    nan_free: bool,
}

impl FbgemmLanes {
    /// Channel `c`'s constants in every lane.
    #[inline(always)]
    unsafe fn new(r: &FbgemmRequant, c: usize) -> Self {
        // SAFETY: AVX2 by the caller's contract.
        unsafe {
            let bias = r.bias_term.as_ref().map(|b| _mm256_set1_ps(b[c]));
            Self::with(r, bias, _mm256_set1_ps(r.multiplier[c]))
        }
    }

    /// Channels `c..c + 8`'s constants, one per lane (`r` must hold them).
    #[inline(always)]
    unsafe fn columns(r: &FbgemmRequant, c: usize) -> Self {
        // SAFETY: AVX2 by the caller's contract; the slices hold 8 values.
        unsafe {
            let bias = r
                .bias_term
                .as_ref()
                .map(|b| _mm256_loadu_ps(b[c..c + 8].as_ptr()));
            Self::with(r, bias, _mm256_loadu_ps(r.multiplier[c..c + 8].as_ptr()))
        }
    }

    #[inline(always)]
    unsafe fn with(r: &FbgemmRequant, bias: Option<__m256>, multiplier: __m256) -> Self {
        let z = r.zero_point;
        // SAFETY: AVX2 by the caller's contract.
        unsafe {
            FbgemmLanes {
                bias,
                multiplier,
                lo: _mm256_set1_ps((r.lo - z) as f32),
                hi: _mm256_set1_ps((255 - z) as f32),
                zero_point: _mm256_set1_epi32(z),
                nan_free: r.nan_free,
            }
        }
    }
}

impl Lanes for FbgemmLanes {
    #[inline(always)]
    unsafe fn apply(&self, acc: __m256i) -> __m256i {
        // SAFETY: AVX2 by the caller's contract.
        unsafe {
            let mut t = _mm256_cvtepi32_ps(acc);
            if let Some(b) = self.bias {
                t = _mm256_add_ps(t, b);
            }
            let v = round_even(_mm256_mul_ps(t, self.multiplier));
            let v = clamp_or_zero(v, self.lo, self.hi, self.nan_free);
            _mm256_add_epi32(_mm256_cvtps_epi32(v), self.zero_point)
        }
    }
}

/// [`QnnpackRequant::apply`]'s constants: one channel's broadcast, or consecutive channels'.
struct QnnpackLanes {
    bias: __m256i,
    scale: __m256,
    zero_point: __m256i,
    lo: __m256i,
    /// [`QnnpackRequant::nan_free`].
    nan_free: bool,
}

impl QnnpackLanes {
    /// Channel `c`'s constants in every lane.
    #[inline(always)]
    unsafe fn new(r: &QnnpackRequant, c: usize) -> Self {
        // SAFETY: AVX2 by the caller's contract.
        unsafe {
            Self::with(
                r,
                _mm256_set1_epi32(r.bias_q[c]),
                _mm256_set1_ps(r.scale[c]),
            )
        }
    }

    /// Channels `c..c + 8`'s constants, one per lane (`r` must hold them).
    #[inline(always)]
    unsafe fn columns(r: &QnnpackRequant, c: usize) -> Self {
        // SAFETY: AVX2 by the caller's contract; the slices hold 8 values.
        unsafe {
            let bias = _mm256_loadu_si256(r.bias_q[c..c + 8].as_ptr().cast());
            Self::with(r, bias, _mm256_loadu_ps(r.scale[c..c + 8].as_ptr()))
        }
    }

    #[inline(always)]
    unsafe fn with(r: &QnnpackRequant, bias: __m256i, scale: __m256) -> Self {
        // SAFETY: AVX2 by the caller's contract.
        unsafe {
            QnnpackLanes {
                bias,
                scale,
                zero_point: _mm256_set1_epi32(r.zero_point),
                lo: _mm256_set1_epi32(r.lo),
                nan_free: r.nan_free,
            }
        }
    }
}

impl Lanes for QnnpackLanes {
    #[inline(always)]
    unsafe fn apply(&self, acc: __m256i) -> __m256i {
        // SAFETY: AVX2 by the caller's contract.
        unsafe {
            // Wrapping add, as the element rule.
            let total = _mm256_add_epi32(acc, self.bias);
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(total), self.scale);
            let v = clamp_or_zero(
                round_even(v),
                _mm256_set1_ps(i16::MIN as f32),
                _mm256_set1_ps(i16::MAX as f32),
                self.nan_free,
            );
            // `r + z` lies within ±(32768 + 255): the element rule's i16 clamp cannot bind
            // before its `[lo, 255]` clamp, which is inside the i16 range.
            let r = _mm256_add_epi32(_mm256_cvtps_epi32(v), self.zero_point);
            _mm256_min_epi32(_mm256_max_epi32(r, self.lo), _mm256_set1_epi32(255))
        }
    }
}

/// Round to nearest, ties to even (`f32::round_ties_even`).
#[inline(always)]
unsafe fn round_even(v: __m256) -> __m256 {
    // SAFETY: AVX by the caller's contract.
    unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
}

/// `clamp_or_zero` of the element rules: `v.clamp(lo, hi)`, NaN lanes 0 (unless `nan_free`:
/// the rule cannot make one).
#[inline(always)]
unsafe fn clamp_or_zero(v: __m256, lo: __m256, hi: __m256, nan_free: bool) -> __m256 {
    // SAFETY: AVX by the caller's contract.
    unsafe {
        let clamped = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        if nan_free {
            return clamped;
        }
        _mm256_and_ps(clamped, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v))
    }
}

/// Stores 8 i32 lanes holding values in `0..=255` as 8 bytes at `dst`.
///
/// # Safety
/// AVX2; `dst` must be valid for 8 bytes.
#[inline(always)]
unsafe fn store8(dst: *mut u8, v: __m256i) {
    // SAFETY: by this function's contract.
    unsafe {
        let words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        _mm_storel_epi64(dst.cast(), _mm_packus_epi16(words, words));
    }
}
