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
//! Counts are integers in four u16 sub-histograms (consecutive elements increment different
//! arrays, so back-to-back hits on one bin do not wait on each other's store), summed into u64
//! totals per chunk of `PAR_CHUNK` elements (chunks are counted in parallel), and become f32 at
//! the end of the batch, which equals PyTorch's f32 `+= 1` while a bin holds at most 2^24
//! elements.

use crate::isa::{Isa, IsaError};
use rayon::prelude::*;

/// Sub-histograms per batch (see the module docs).
const LANES: usize = 4;
/// Elements counted into one set of u16 sub-histograms before they are added to the totals:
/// element `i` goes to array `i % LANES`, so each gets a quarter of a chunk, below 65 536.
/// Also the unit of parallel work (a batch activation is many chunks).
const PAR_CHUNK: usize = LANES * 32_768;

/// One sub-histogram counter. u16 keeps the four arrays of a 2048-bin histogram in 16 KiB, well
/// inside L1, where u32 counters spill out of a 32 KiB L1.
type Counter = u16;

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

/// What the binning pass saw besides the counts: the extremes of the non-NaN elements and
/// whether any element was NaN (lets a batch inside the known range be handled in one pass).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seen {
    pub(crate) min: f32,
    pub(crate) max: f32,
    pub(crate) nan: bool,
}

impl Seen {
    const EMPTY: Seen = Seen {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        nan: false,
    };

    fn merge(self, o: Seen) -> Seen {
        Seen {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            nan: self.nan || o.nan,
        }
    }
}

/// Counts of `x` over `binning`, as f32 (the histogram PyTorch's histc returns), and what the
/// pass saw. Fixed chunks are counted in parallel: the counts are integers and the extremes are
/// exact, so neither the split nor the thread count shows in the result.
pub(crate) fn histc(x: &[f32], binning: Binning, isa: Isa) -> (Vec<f32>, Seen) {
    let bins = binning.bins;
    let stride = stride(bins);
    let (total, seen) = x
        .par_chunks(PAR_CHUNK)
        .map(|chunk| {
            let mut sub = vec![0 as Counter; LANES * stride];
            let seen = count(chunk, &binning, &mut sub, isa);
            let total: Vec<u64> = (0..bins)
                .map(|b| (0..LANES).map(|l| sub[l * stride + b] as u64).sum())
                .collect();
            (total, seen)
        })
        .reduce(
            || (vec![0u64; bins], Seen::EMPTY),
            |(mut t, s), (u, r)| {
                t.iter_mut().zip(&u).for_each(|(t, u)| *t += u);
                (t, s.merge(r))
            },
        );
    (total.into_iter().map(|c| c as f32).collect(), seen)
}

/// One histc pass as [`histc_on`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    /// The f32 counts per bin.
    pub counts: Vec<f32>,
    /// Extremes of the non-NaN elements (+inf / -inf when there were none). Only their values
    /// are specified: which zero is reported when both -0.0 and 0.0 occur may differ by tier.
    pub min: f32,
    pub max: f32,
    /// Whether any element was NaN.
    pub nan: bool,
}

/// The same counts on an explicitly chosen tier, refusing tiers the host lacks (for tests and
/// benches that compare tiers). `bins` is clamped to `1..=MAX_BINS`.
pub fn histc_on(x: &[f32], bins: usize, lo: f32, hi: f32, isa: Isa) -> Result<Binned, IsaError> {
    isa.check()?;
    let bins = bins.clamp(1, super::spec::MAX_BINS);
    let (counts, seen) = histc(x, Binning::new(lo, hi, bins), isa);
    Ok(Binned {
        counts,
        min: seen.min,
        max: seen.max,
        nan: seen.nan,
    })
}

fn count(x: &[f32], b: &Binning, sub: &mut [Counter], isa: Isa) -> Seen {
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
    count_scalar(x, b, sub)
}

/// Length of one sub-histogram: the bins and the scratch slot.
fn stride(bins: usize) -> usize {
    bins + 1
}

/// Splits the sub-histogram buffer into its LANES arrays.
#[inline(always)]
fn lanes(sub: &mut [Counter], stride: usize) -> [&mut [Counter]; LANES] {
    let mut it = sub.chunks_exact_mut(stride);
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// Adds the slots of whole groups of LANES elements to the sub-histograms, element `i` to
/// array `i % LANES`.
///
/// # Safety
/// Every slot must be a valid index into every lane array (at most `bins`). The vector kernels
/// guarantee it by construction: in-range lanes hold `trunc(min(q, bins-1))` with `q >= 0`, and
/// out-of-range lanes hold the scratch slot `bins`. Skipping the bounds checks measured about
/// 5 % of the kernel's time (2 or 8 sub-histograms instead of 4 measured slower).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bump(slots: &[u32], lanes: &mut [&mut [Counter]; LANES]) {
    for g in slots.chunks_exact(LANES) {
        for (lane, &slot) in lanes.iter_mut().zip(g) {
            debug_assert!((slot as usize) < lane.len());
            // SAFETY: see the function's contract.
            unsafe { *lane.get_unchecked_mut(slot as usize) += 1 };
        }
    }
}

/// The reference loop (also the vector tiers' tail).
#[inline(always)]
fn count_scalar(x: &[f32], b: &Binning, sub: &mut [Counter]) -> Seen {
    let l = lanes(sub, stride(b.bins));
    let mut seen = Seen::EMPTY;
    for (i, &v) in x.iter().enumerate() {
        // Plain comparisons: NaN never wins, like minps/maxps in the vector tiers.
        if v < seen.min {
            seen.min = v;
        }
        if v > seen.max {
            seen.max = v;
        }
        seen.nan |= v.is_nan();
        l[i % LANES][b.slot(v)] += 1;
    }
    seen
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Binning, Counter, Seen, bump, count_scalar, lanes, stride};

    /// Slots computed before their increments run. Incrementing straight after each vector
    /// store made every slot load wait on store forwarding from the vector store (the hot spot
    /// under perf on Zen 4); a block of slots is long committed by the time it is read.
    const BLOCK: usize = 512;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn count_avx2(x: &[f32], b: &Binning, sub: &mut [Counter]) -> Seen {
        let (lo, hi) = (_mm256_set1_ps(b.lo), _mm256_set1_ps(b.hi));
        let (bins_f, span, last) = (
            _mm256_set1_ps(b.bins_f),
            _mm256_set1_ps(b.span),
            _mm256_set1_ps(b.last),
        );
        let scratch = _mm256_set1_epi32(b.bins as i32);
        let (mut vmin, mut vmax) = (
            _mm256_set1_ps(f32::INFINITY),
            _mm256_set1_ps(f32::NEG_INFINITY),
        );
        let mut nan = _mm256_setzero_ps();
        let mut slots = [0u32; BLOCK];
        let mut filled = 0;
        let mut chunks = x.chunks_exact(8);
        {
            let mut l = lanes(sub, stride(b.bins));
            for c in &mut chunks {
                // SAFETY: `c` holds 8 floats; `slots[filled..]` holds at least 8 u32.
                unsafe {
                    let v = _mm256_loadu_ps(c.as_ptr());
                    // min/max return their second operand for NaN, so NaN is skipped (and flagged).
                    vmin = _mm256_min_ps(v, vmin);
                    vmax = _mm256_max_ps(v, vmax);
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
                    let inside = _mm256_and_ps(
                        _mm256_cmp_ps::<_CMP_GE_OQ>(v, lo),
                        _mm256_cmp_ps::<_CMP_LE_OQ>(v, hi),
                    );
                    let q = _mm256_div_ps(_mm256_mul_ps(_mm256_sub_ps(v, lo), bins_f), span);
                    // minps returns its second operand for NaN, matching `f32::min` in the scalar tier.
                    let bin = _mm256_cvttps_epi32(_mm256_min_ps(q, last));
                    let slot = _mm256_blendv_epi8(scratch, bin, _mm256_castps_si256(inside));
                    _mm256_storeu_si256(slots[filled..filled + 8].as_mut_ptr().cast(), slot);
                }
                filled += 8;
                if filled == BLOCK {
                    // SAFETY: every slot is at most `bins` (see `bump`).
                    unsafe { bump(&slots, &mut l) };
                    filled = 0;
                }
            }
            // SAFETY: as above.
            unsafe { bump(&slots[..filled], &mut l) };
        }
        let (mut mins, mut maxs) = ([0f32; 8], [0f32; 8]);
        // SAFETY: both arrays hold 8 floats.
        let any_nan = unsafe {
            _mm256_storeu_ps(mins.as_mut_ptr(), vmin);
            _mm256_storeu_ps(maxs.as_mut_ptr(), vmax);
            _mm256_movemask_ps(nan) != 0
        };
        let vec_seen = Seen {
            min: mins.into_iter().fold(f32::INFINITY, f32::min),
            max: maxs.into_iter().fold(f32::NEG_INFINITY, f32::max),
            nan: any_nan,
        };
        vec_seen.merge(count_scalar(chunks.remainder(), b, sub))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn count_avx512(x: &[f32], b: &Binning, sub: &mut [Counter]) -> Seen {
        let (lo, hi) = (_mm512_set1_ps(b.lo), _mm512_set1_ps(b.hi));
        let (bins_f, span, last) = (
            _mm512_set1_ps(b.bins_f),
            _mm512_set1_ps(b.span),
            _mm512_set1_ps(b.last),
        );
        let scratch = _mm512_set1_epi32(b.bins as i32);
        let (mut vmin, mut vmax) = (
            _mm512_set1_ps(f32::INFINITY),
            _mm512_set1_ps(f32::NEG_INFINITY),
        );
        let mut nan: u16 = 0;
        let mut slots = [0u32; BLOCK];
        let mut filled = 0;
        let mut chunks = x.chunks_exact(16);
        {
            let mut l = lanes(sub, stride(b.bins));
            for c in &mut chunks {
                // SAFETY: `c` holds 16 floats; `slots[filled..]` holds at least 16 u32.
                unsafe {
                    let v = _mm512_loadu_ps(c.as_ptr());
                    vmin = _mm512_min_ps(v, vmin);
                    vmax = _mm512_max_ps(v, vmax);
                    nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                    let inside = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, lo)
                        & _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, hi);
                    let q = _mm512_div_ps(_mm512_mul_ps(_mm512_sub_ps(v, lo), bins_f), span);
                    let bin = _mm512_cvttps_epi32(_mm512_min_ps(q, last));
                    let slot = _mm512_mask_blend_epi32(inside, scratch, bin);
                    _mm512_storeu_si512(slots[filled..filled + 16].as_mut_ptr().cast(), slot);
                }
                filled += 16;
                if filled == BLOCK {
                    // SAFETY: every slot is at most `bins` (see `bump`).
                    unsafe { bump(&slots, &mut l) };
                    filled = 0;
                }
            }
            // SAFETY: as above.
            unsafe { bump(&slots[..filled], &mut l) };
        }
        let vec_seen = Seen {
            min: _mm512_reduce_min_ps(vmin),
            max: _mm512_reduce_max_ps(vmax),
            nan: nan != 0,
        };
        vec_seen.merge(count_scalar(chunks.remainder(), b, sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_the_u16_flush_on_every_tier() {
        // More than one flush chunk, all in one bin, plus a ragged tail.
        let mut x = vec![0.5f32; 3 * PAR_CHUNK + 13];
        x.extend([0.0, 1.0, 2.0, -1.0]);
        for isa in crate::isa::ALL.into_iter().filter(|t| t.is_available()) {
            let b = histc_on(&x, 4, 0.0, 1.0, isa).unwrap();
            assert_eq!(
                b.counts,
                vec![1.0, 0.0, (3 * PAR_CHUNK + 13) as f32, 1.0],
                "{isa}"
            );
            assert_eq!((b.min, b.max, b.nan), (-1.0, 2.0, false));
        }
    }
}
