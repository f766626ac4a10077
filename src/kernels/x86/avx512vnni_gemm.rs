//! AVX-512 VNNI u8×s8→i32 GEMM tile: up to 12 rows × 32 columns, exact sums.
//!
//! Design note. `vpdpbusd` multiplies 4 unsigned activation bytes by 4 signed weight bytes per
//! i32 lane and adds all four products to the lane in i32 without any intermediate saturation, so
//! it computes the reference's exact dot product directly (it is never used for the
//! pair-saturating contract). Per group of 4 k, one activation i32 is broadcast per row and
//! multiplied with two zmm of the packed panel (32 columns × 4 bytes), giving 2 accumulators per
//! row, 24 for 12 rows (with the 2 panel registers and the broadcast, 27 of the 32 zmm; 12 rows
//! rather than 8 cut the loads per `vpdpbusd` from 10/16 to 14/24, worth ~20 % on 1024³ on Zen 4).
//! Short tiles (few rows, e.g. M = 1) keep `U` independent accumulator sets
//! over alternating k groups so that `vpdpbusd`'s latency does not serialise the loop; the sets
//! are added at the end (exact i32 sums, so the order is immaterial). Given part of the next
//! panel (`tile_ahead`), the loop also prefetches it, one line request per k group: a deep
//! layer's weights come from L3 at batch 1, and ResNet18's 512-channel 3×3 convs ran ~1.4× slower
//! in the network than on warm weights before the driver spread those loads over the tiles.

use crate::kernels::gemm::micro::{MicroKernel, TaskBuild};
use crate::kernels::requant::{Requant, TileBlock};
use crate::kernels::tile::{check_tile, group};
use crate::kernels::x86::avx512_requant;
use std::arch::x86_64::*;

/// The AVX-512 VNNI tile.
pub struct Vnni;

const NR: usize = 32;

impl MicroKernel for Vnni {
    const MR: usize = 12;
    const NR: usize = NR;
    const SLOT: usize = 1;
    const TASK: TaskBuild = TaskBuild::Avx512;

    unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64 {
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::tile_ahead(rows, a, kp, b, out, &[]) }
    }

    unsafe fn tile_ahead(
        rows: usize,
        a: &[u8],
        kp: usize,
        b: &[i8],
        out: &mut [i32],
        ahead: &[i8],
    ) -> u64 {
        check_tile(rows, 12, NR, a, kp, b, out);
        if ahead.is_empty() {
            // SAFETY: the caller guarantees AVX-512 F/BW/VL + VNNI; lengths are checked above.
            unsafe { rows_dispatch::<false>(rows, a, kp, b, out, ahead) }
        } else {
            // SAFETY: as above.
            unsafe { rows_dispatch::<true>(rows, a, kp, b, out, ahead) }
        }
        0
    }

    #[inline(always)]
    unsafe fn requant_tile(rq: &Requant, block: &TileBlock) {
        // SAFETY: forwarded from this function's contract (tasks of this kernel are compiled
        // with AVX-512).
        unsafe { avx512_requant::apply_tile_block(rq, block) }
    }
}

/// The tile for `rows` rows, prefetching `ahead` when `AHEAD`.
///
/// # Safety
/// As [`tile_r`].
#[inline(always)]
unsafe fn rows_dispatch<const AHEAD: bool>(
    rows: usize,
    a: &[u8],
    kp: usize,
    b: &[i8],
    out: &mut [i32],
    ahead: &[i8],
) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match rows {
            1 => tile_r::<1, 4, AHEAD>(a, kp, b, out, ahead),
            2 => tile_r::<2, 2, AHEAD>(a, kp, b, out, ahead),
            3 => tile_r::<3, 2, AHEAD>(a, kp, b, out, ahead),
            4 => tile_r::<4, 2, AHEAD>(a, kp, b, out, ahead),
            5 => tile_r::<5, 1, AHEAD>(a, kp, b, out, ahead),
            6 => tile_r::<6, 1, AHEAD>(a, kp, b, out, ahead),
            7 => tile_r::<7, 1, AHEAD>(a, kp, b, out, ahead),
            8 => tile_r::<8, 1, AHEAD>(a, kp, b, out, ahead),
            9 => tile_r::<9, 1, AHEAD>(a, kp, b, out, ahead),
            10 => tile_r::<10, 1, AHEAD>(a, kp, b, out, ahead),
            11 => tile_r::<11, 1, AHEAD>(a, kp, b, out, ahead),
            _ => tile_r::<12, 1, AHEAD>(a, kp, b, out, ahead),
        }
    }
}

/// `R` rows, `U` accumulator sets; with `AHEAD`, one prefetch into L2 per k group, spread
/// evenly over `ahead` (a weight panel streamed from L3 or memory otherwise arrives at the
/// first row tile's pace, faster than one core's fill buffers deliver it).
///
/// # Safety
/// AVX-512 F + VNNI; `a` holds `R·kp` bytes, `b` holds `kp·NR`, `out` holds `R·NR`, `kp % 4 == 0`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_r<const R: usize, const U: usize, const AHEAD: bool>(
    a: &[u8],
    kp: usize,
    b: &[i8],
    out: &mut [i32],
    ahead: &[i8],
) {
    let groups = kp / 4;
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // Bytes of `ahead` per group; the last prefetches may point past it (never dereferenced:
    // a prefetch does not fault, and `wrapping_add` keeps the address arithmetic defined).
    let pace = ahead.len().div_ceil(groups.max(1));
    let mut acc = [[[_mm512_setzero_si512(); 2]; R]; U];
    let step = |acc: &mut [[__m512i; 2]; R], g: usize| {
        // SAFETY: g < groups, so the panel reads end at 64·(2g + 2) <= kp·NR bytes and the
        // activation reads stay in row r's kp bytes.
        unsafe {
            if AHEAD {
                _mm_prefetch::<_MM_HINT_T1>(ahead.as_ptr().wrapping_add(g * pace).cast());
            }
            let b0 = _mm512_loadu_si512(bp.add(g * NR * 4).cast());
            let b1 = _mm512_loadu_si512(bp.add(g * NR * 4 + 64).cast());
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_epi32(group(ap, kp, r, g) as i32);
                acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], x, b0);
                acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], x, b1);
            }
        }
    };
    let whole = groups / U * U;
    for g0 in (0..whole).step_by(U) {
        for (u, set) in acc.iter_mut().enumerate() {
            step(set, g0 + u);
        }
    }
    for g in whole..groups {
        step(&mut acc[0], g);
    }
    for (r, row) in out.chunks_exact_mut(NR).take(R).enumerate() {
        for (h, half) in row.chunks_exact_mut(16).enumerate() {
            let sum = acc[1..]
                .iter()
                .fold(acc[0][r][h], |s, set| _mm512_add_epi32(s, set[r][h]));
            // SAFETY: `half` is 16 writable i32.
            unsafe { _mm512_storeu_si512(half.as_mut_ptr().cast(), sum) };
        }
    }
}

/// Multiply-adds one call of [`peak_loop`] performs per iteration: 12 accumulators × 16 lanes ×
/// 4 byte products.
pub const PEAK_MACS_PER_ITER: usize = 12 * 16 * 4;

/// A register-only `vpdpbusd` loop — 12 independent accumulators, no loads — timing the tier's
/// int8 peak on this host, the ceiling `qlab bench` compares its GEMM figures with. Returns a
/// value derived from every accumulator so the loop cannot be removed.
///
/// # Safety
/// The host must support AVX-512 F/BW and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn peak_loop(iters: usize, a: i32, b: i32) -> i32 {
    let (a, b) = (_mm512_set1_epi32(a), _mm512_set1_epi32(b));
    let mut acc = [_mm512_setzero_si512(); 12];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_dpbusd_epi32(*x, a, b);
        }
    }
    let sum = acc[1..].iter().fold(acc[0], |s, &x| _mm512_add_epi32(s, x));
    _mm512_reduce_add_epi32(sum)
}
