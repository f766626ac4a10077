//! Advanced SIMD (NEON) u8×s8→i32 GEMM tiles: up to 4 rows × 8 columns, exact or pair-saturating.
//!
//! Design note. Both kernels read the shared 8-column packed panel (8 columns × 4 bytes per group
//! of 4 k). Weight bytes are sign-extended and the broadcast activation group zero-extended to
//! i16; `mul` then forms the 8 products of two columns exactly in i16 lanes, because every u8×s8
//! product lies in [−32640, 32385]. Lanes are `[c·k0 c·k1 c·k2 c·k3 | c'·k0 …]`, so adjacent lanes
//! are the reference's pairs (2j, 2j+1) (groups start at k ≡ 0 mod 4).
//! * `Exact`: `sadalp` adds each adjacent product pair into i32 (no saturation), four
//!   accumulators per row of lanes `[c p0, c p1, c' p0, c' p1]`, folded with `addp` at the end.
//! * `PairSaturating`: fbgemm's AVX2 arithmetic (`vpmaddubsw`). `uzp1`/`uzp2` split the products
//!   into first and second members of each pair, `sqadd` adds them in saturating i16, and `sadalp`
//!   widens the saturated pair sums into per-column i32 lanes. A pair saturated exactly when the
//!   saturating and the wrapping i16 sums differ (a wrapped sum lands on the other side of zero,
//!   never on the clamp value), which counts saturations like the reference.
//!
//! Zero padding has zero products, so it adds nothing and never saturates.

use crate::kernels::gemm::micro::{TaskBuild, exact_and_pair_saturating};
use crate::kernels::tile::group;
use std::arch::aarch64::*;

/// Exact sums (every contract that is not fbgemm's AVX2 pair saturation).
pub struct Exact;

/// fbgemm's saturating int16 pair sums, reproduced lane for lane.
pub struct PairSaturating;

const NR: usize = 8;

// The two kernels differ only in the `SAT` flag they pass to `tile_r`: their `MicroKernel` impls
// and row-count dispatch come from the macro the AVX2 pair shares.
exact_and_pair_saturating!(task: TaskBuild::Baseline, rows: tile_r);

/// `R` rows; saturating pairs when `SAT`. Returns the saturated pairs.
///
/// # Safety
/// NEON; `a` holds `R·kp` bytes, `b` holds `kp·NR`, `out` holds `R·NR`, `kp % 4 == 0`.
#[target_feature(enable = "neon")]
unsafe fn tile_r<const R: usize, const SAT: bool>(
    a: &[u8],
    kp: usize,
    b: &[i8],
    out: &mut [i32],
) -> u64 {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // Exact: four accumulators of pair lanes. Saturating: [0] columns 0-3, [1] columns 4-7.
    let mut acc = [[vdupq_n_s32(0); 4]; R];
    let mut saturated = vdupq_n_u32(0);
    for g in 0..kp / 4 {
        // SAFETY: g < kp/4, so the panel read ends at 32·(g + 1) <= kp·NR bytes.
        let wb = unsafe { vld1q_s8_x2(bp.add(g * NR * 4)) };
        // Columns (0,1), (2,3), (4,5), (6,7), four k each, as i16.
        let w = [
            vmovl_s8(vget_low_s8(wb.0)),
            vmovl_high_s8(wb.0),
            vmovl_s8(vget_low_s8(wb.1)),
            vmovl_high_s8(wb.1),
        ];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R holds kp bytes and 4g + 4 <= kp.
            let x = unsafe { group(ap, kp, r, g) };
            let x16 = vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(x))));
            let p = w.map(|wq| vmulq_s16(wq, x16));
            if SAT {
                for h in 0..2 {
                    let (first, second) = (p[2 * h], p[2 * h + 1]);
                    let (lo, hi) = (vuzp1q_s16(first, second), vuzp2q_s16(first, second));
                    let pairs = vqaddq_s16(lo, hi);
                    acc_r[h] = vpadalq_s16(acc_r[h], pairs);
                    let same = vceqq_s16(pairs, vaddq_s16(lo, hi));
                    saturated = vpadalq_u16(saturated, vshrq_n_u16::<15>(vmvnq_u16(same)));
                }
            } else {
                for (acc_q, pq) in acc_r.iter_mut().zip(p) {
                    *acc_q = vpadalq_s16(*acc_q, pq);
                }
            }
        }
    }
    for (acc_r, row) in acc.iter().zip(out.chunks_exact_mut(NR)) {
        let halves = if SAT {
            [acc_r[0], acc_r[1]]
        } else {
            [
                vpaddq_s32(acc_r[0], acc_r[1]),
                vpaddq_s32(acc_r[2], acc_r[3]),
            ]
        };
        for (half, v) in row.chunks_exact_mut(4).zip(halves) {
            // SAFETY: `half` is 4 writable i32.
            unsafe { vst1q_s32(half.as_mut_ptr(), v) };
        }
    }
    vaddlvq_u32(saturated)
}
