//! AVX2 u8×s8→i32 GEMM tiles: up to 4 rows × 8 columns, exact or pair-saturating.
//!
//! Design note. Both kernels read the same packed panel (8 columns × 4 bytes per group of 4 k)
//! and both form the exact pair sums `a[2j]·w[2j] + a[2j+1]·w[2j+1]`: the weight bytes are
//! sign-extended and the broadcast activation bytes zero-extended to i16, and `vpmaddwd` adds the
//! two products of each pair in i32, where they cannot overflow (|sum| ≤ 2·255·128).
//! * `Exact` accumulates those pair sums (two registers per row: columns 0–3 and 4–7, each column
//!   as two pair lanes) and folds them with `vphaddd` + a lane permute at the end of K.
//! * `PairSaturating` is fbgemm's AVX2 arithmetic: `vpmaddubsw` adds each pair in saturating i16
//!   and `vpmaddwd` with ones widens to i32. It counts saturated pairs by comparing each
//!   `vpmaddubsw` lane with the exact pair sum of the same pair: they differ exactly when it
//!   saturated. Its lane order (column-major, two pairs per column) is the exact sums' order.
//!   That comparison triples the work, so each tile first runs the saturating sums alone,
//!   tracking the pair lanes' extremes: a saturated pair is `i16::MAX` or `i16::MIN`, and only
//!   a tile that reached one is recomputed with the counting kernel.
//!
//! Pairs start at even k because groups start at k ≡ 0 (mod 4); zero padding never saturates.

use crate::kernels::gemm::micro::{TaskBuild, exact_and_pair_saturating};
use crate::kernels::tile::group;
use std::arch::x86_64::*;

/// Exact sums (any engine on an AVX2 host whose contract is exact).
pub struct Exact;

/// fbgemm's saturating int16 pair sums (only where the contract says so).
pub struct PairSaturating;

const NR: usize = 8;

// The two kernels differ only in the `SAT` flag they pass to `rows_r`: their `MicroKernel` impls
// and row-count dispatch come from the macro the NEON pair shares.
exact_and_pair_saturating!(task: TaskBuild::Avx2, rows: rows_r);

/// `R` rows. Saturating tiles first run [`saturating_r`], and only a tile where some pair
/// reached an int16 bound (rare outside adversarial data) is run again by [`tile_r`] to count
/// its saturated pairs: both sum the same saturated pairs, so the outputs are the same.
///
/// # Safety
/// As [`tile_r`].
#[inline(always)]
unsafe fn rows_r<const R: usize, const SAT: bool>(
    a: &[u8],
    kp: usize,
    b: &[i8],
    out: &mut [i32],
) -> u64 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        if SAT && !saturating_r::<R>(a, kp, b, out) {
            return 0;
        }
        tile_r::<R, SAT>(a, kp, b, out)
    }
}

/// fbgemm's saturating sums alone (`vpmaddubsw`, `vpmaddwd` with ones), with a running
/// maximum and minimum of the int16 pair lanes; returns whether any lane reached `i16::MAX` or
/// `i16::MIN`, the only values a saturated pair can take. The extremes are checked every
/// [`CHECK_GROUPS`] groups and the pass abandoned at the first hit, so a tile that saturates
/// early (uniformly random operands) costs little more than the counting kernel alone.
///
/// # Safety
/// As [`tile_r`].
#[target_feature(enable = "avx2")]
unsafe fn saturating_r<const R: usize>(a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> bool {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let ones16 = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); R];
    let (mut hi, mut lo) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let groups = kp / 4;
    for g0 in (0..groups).step_by(CHECK_GROUPS) {
        for g in g0..groups.min(g0 + CHECK_GROUPS) {
            // SAFETY: g < kp/4, so the panel read ends at 32·(g + 1) <= kp·NR bytes.
            let wb = unsafe { _mm256_loadu_si256(bp.add(g * NR * 4).cast()) };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                // SAFETY: row r < R holds kp bytes and 4g + 4 <= kp.
                let x = unsafe { group(ap, kp, r, g) } as i32;
                let pairs = _mm256_maddubs_epi16(_mm256_set1_epi32(x), wb);
                *acc_r = _mm256_add_epi32(*acc_r, _mm256_madd_epi16(pairs, ones16));
                hi = _mm256_max_epi16(hi, pairs);
                lo = _mm256_min_epi16(lo, pairs);
            }
        }
        let at_max = _mm256_cmpeq_epi16(hi, _mm256_set1_epi16(i16::MAX));
        let at_min = _mm256_cmpeq_epi16(lo, _mm256_set1_epi16(i16::MIN));
        if _mm256_movemask_epi8(_mm256_or_si256(at_max, at_min)) != 0 {
            return true;
        }
    }
    for (r, &row) in acc.iter().enumerate() {
        // SAFETY: r·NR + 8 <= R·NR <= out.len().
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(r * NR).cast(), row) };
    }
    false
}

/// Groups of 4 k between two checks of [`saturating_r`]'s extremes.
const CHECK_GROUPS: usize = 16;

/// `R` rows; saturating pairs when `SAT`. Returns the saturated pairs.
///
/// # Safety
/// AVX2; `a` holds `R·kp` bytes, `b` holds `kp·NR`, `out` holds `R·NR`, `kp % 4 == 0`.
#[target_feature(enable = "avx2")]
unsafe fn tile_r<const R: usize, const SAT: bool>(
    a: &[u8],
    kp: usize,
    b: &[i8],
    out: &mut [i32],
) -> u64 {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let ones16 = _mm256_set1_epi16(1);
    let one32 = _mm256_set1_epi32(1);
    // Exact: columns 0-3 / 4-7 as pair lanes. Saturating: [0] holds one lane per column.
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let mut saturated = _mm256_setzero_si256();
    for g in 0..kp / 4 {
        // SAFETY: g < kp/4, so the panel read ends at 32·(g + 1) <= kp·NR bytes.
        let wb = unsafe { _mm256_loadu_si256(bp.add(g * NR * 4).cast()) };
        let w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wb));
        let w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(wb));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R holds kp bytes and 4g + 4 <= kp.
            let x = unsafe { group(ap, kp, r, g) } as i32;
            let x16 = _mm256_cvtepu8_epi16(_mm_set1_epi32(x));
            let exact_lo = _mm256_madd_epi16(x16, w_lo);
            let exact_hi = _mm256_madd_epi16(x16, w_hi);
            if SAT {
                let pairs = _mm256_maddubs_epi16(_mm256_set1_epi32(x), wb);
                acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(pairs, ones16));
                let sat_lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(pairs));
                let sat_hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(pairs));
                let miss_lo = _mm256_andnot_si256(_mm256_cmpeq_epi32(sat_lo, exact_lo), one32);
                let miss_hi = _mm256_andnot_si256(_mm256_cmpeq_epi32(sat_hi, exact_hi), one32);
                saturated = _mm256_add_epi32(saturated, _mm256_add_epi32(miss_lo, miss_hi));
            } else {
                acc_r[0] = _mm256_add_epi32(acc_r[0], exact_lo);
                acc_r[1] = _mm256_add_epi32(acc_r[1], exact_hi);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let row = if SAT {
            acc_r[0]
        } else {
            // vphaddd gives columns [0 1 4 5 | 2 3 6 7]; put them back in order.
            let folded = _mm256_hadd_epi32(acc_r[0], acc_r[1]);
            _mm256_permutevar8x32_epi32(folded, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7))
        };
        // SAFETY: r·NR + 8 <= R·NR <= out.len().
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(r * NR).cast(), row) };
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), saturated) };
    lanes.iter().map(|&v| v as u64).sum()
}
