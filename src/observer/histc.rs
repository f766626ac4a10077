//! `torch.histc` as HistogramObserver uses it (NUMERICS §2.6 "histc rule"), with SIMD tiers.
//!
//! This is the hot loop of histogram calibration, so it has three bit-identical versions: plain
//! Rust (the reference), AVX2+FMA and AVX-512. The bin of `x` is
//! `floor(f32(f32((x - lo) * bins) / f32(hi - lo)))`: a real f32 division, because a reciprocal
//! multiply moves elements across bin edges. Elements outside `[lo, hi]` (and so NaN and the
//! infinities) are dropped; `x == hi` lands in the last bin. Where PyTorch's own conversion
//! overflows (ranges so wide that `(x - lo) * bins` is infinite) qlab puts the element in the last
//! bin, in every tier, instead of writing out of bounds.
//!
//! Counts are integers in four sub-histograms (consecutive elements increment different arrays,
//! so back-to-back hits on one bin do not wait on each other's store) and become f32 at the end
//! of the batch, which equals PyTorch's f32 `+= 1` while a bin holds at most 2^24 elements.

use crate::isa::{Isa, IsaError};

/// Sub-histograms per batch (see the module docs).
const LANES: usize = 4;
/// Elements counted before the u32 sub-histograms are flushed, so they cannot overflow.
const FLUSH: usize = 1 << 30;

/// The bin edges `[lo, hi]` of one histc call, after PyTorch's widening of an empty range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binning {
    lo: f32,
    hi: f32,
    span: f32,
    bins_f: f32,
    last: f32,
    bins: usize,
}

impl Binning {
    /// `bins` equal bins over `[lo, hi]`; `lo == hi` widens to `[lo-1, hi+1]` (computed in f64,
    /// as PyTorch does with its double range arguments).
    pub(crate) fn new(lo: f32, hi: f32, bins: usize) -> Binning {
        let (lo, hi) = if lo == hi {
            ((lo as f64 - 1.0) as f32, (hi as f64 + 1.0) as f32)
        } else {
            (lo, hi)
        };
        Binning {
            lo,
            hi,
            span: hi - lo,
            bins_f: bins as f32,
            last: (bins - 1) as f32,
            bins,
        }
    }

    /// The bin of `x`, or `bins` (a scratch slot) when `x` is outside the range.
    #[inline(always)]
    fn slot(&self, x: f32) -> usize {
        if x >= self.lo && x <= self.hi {
            // `min` also sends NaN (inf/inf) to the last bin, like `minps` in the vector tiers.
            (((x - self.lo) * self.bins_f) / self.span).min(self.last) as usize
        } else {
            self.bins
        }
    }
}

/// Counts of `x` over `binning`, as f32 (the histogram PyTorch's histc returns).
pub(crate) fn histc(x: &[f32], binning: Binning, isa: Isa) -> Vec<f32> {
    let bins = binning.bins;
    let stride = bins + 1;
    let mut sub = vec![0u32; LANES * stride];
    let mut total = vec![0u64; bins];
    for chunk in x.chunks(FLUSH) {
        count(chunk, &binning, &mut sub, isa);
        for (b, t) in total.iter_mut().enumerate() {
            *t += (0..LANES)
                .map(|l| std::mem::take(&mut sub[l * stride + b]) as u64)
                .sum::<u64>();
        }
    }
    total.into_iter().map(|c| c as f32).collect()
}

/// The same counts on an explicitly chosen tier, refusing tiers the host lacks (for tests and
/// benches that compare tiers).
pub fn histc_on(x: &[f32], bins: usize, lo: f32, hi: f32, isa: Isa) -> Result<Vec<f32>, IsaError> {
    isa.check()?;
    Ok(histc(x, Binning::new(lo, hi, bins.max(1)), isa))
}

fn count(x: &[f32], b: &Binning, sub: &mut [u32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the tiers below are only reached when `isa` is in force, and `selected()` /
        // `histc_on` only hand out tiers whose features the host has.
        match isa {
            Isa::Avx512Vnni => return unsafe { x86::count_avx512(x, b, sub) },
            Isa::Avx2 | Isa::AvxVnni => return unsafe { x86::count_avx2(x, b, sub) },
            _ => {}
        }
    }
    let _ = isa;
    count_scalar(x, b, sub, 0);
}

/// The reference loop; `first` is the lane (sub-histogram) of `x[0]`, so vector tails continue
/// the lane pattern.
#[inline(always)]
fn count_scalar(x: &[f32], b: &Binning, sub: &mut [u32], first: usize) {
    let stride = b.bins + 1;
    for (i, &v) in x.iter().enumerate() {
        sub[((first + i) % LANES) * stride + b.slot(v)] += 1;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Binning, LANES, count_scalar};
    use std::arch::x86_64::*;

    /// Adds the slots of one vector to the sub-histograms, lane `i % LANES`.
    #[inline(always)]
    fn bump(slots: &[u32], sub: &mut [u32], stride: usize) {
        for (i, &s) in slots.iter().enumerate() {
            sub[(i % LANES) * stride + s as usize] += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn count_avx2(x: &[f32], b: &Binning, sub: &mut [u32]) {
        let stride = b.bins + 1;
        let (lo, hi) = (_mm256_set1_ps(b.lo), _mm256_set1_ps(b.hi));
        let (bins_f, span, last) = (
            _mm256_set1_ps(b.bins_f),
            _mm256_set1_ps(b.span),
            _mm256_set1_ps(b.last),
        );
        let scratch = _mm256_set1_epi32(b.bins as i32);
        let mut slots = [0u32; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            // SAFETY: `c` holds 8 floats; `slots` holds 8 u32.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                let inside = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GE_OQ>(v, lo),
                    _mm256_cmp_ps::<_CMP_LE_OQ>(v, hi),
                );
                let q = _mm256_div_ps(_mm256_mul_ps(_mm256_sub_ps(v, lo), bins_f), span);
                // minps returns its second operand for NaN, matching `f32::min` in the scalar tier.
                let bin = _mm256_cvttps_epi32(_mm256_min_ps(q, last));
                let slot = _mm256_blendv_epi8(scratch, bin, _mm256_castps_si256(inside));
                _mm256_storeu_si256(slots.as_mut_ptr().cast(), slot);
            }
            bump(&slots, sub, stride);
        }
        count_scalar(chunks.remainder(), b, sub, 0);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn count_avx512(x: &[f32], b: &Binning, sub: &mut [u32]) {
        let stride = b.bins + 1;
        let (lo, hi) = (_mm512_set1_ps(b.lo), _mm512_set1_ps(b.hi));
        let (bins_f, span, last) = (
            _mm512_set1_ps(b.bins_f),
            _mm512_set1_ps(b.span),
            _mm512_set1_ps(b.last),
        );
        let scratch = _mm512_set1_epi32(b.bins as i32);
        let mut slots = [0u32; 16];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            // SAFETY: `c` holds 16 floats; `slots` holds 16 u32.
            unsafe {
                let v = _mm512_loadu_ps(c.as_ptr());
                let inside = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, lo)
                    & _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, hi);
                let q = _mm512_div_ps(_mm512_mul_ps(_mm512_sub_ps(v, lo), bins_f), span);
                let bin = _mm512_cvttps_epi32(_mm512_min_ps(q, last));
                let slot = _mm512_mask_blend_epi32(inside, scratch, bin);
                _mm512_storeu_si512(slots.as_mut_ptr().cast(), slot);
            }
            bump(&slots, sub, stride);
        }
        count_scalar(chunks.remainder(), b, sub, 0);
    }
}
