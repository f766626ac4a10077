//! Dot-product (`sdot`) u8×s8→i32 GEMM tile: up to 8 rows × 8 columns, exact sums.
//!
//! Design note. `sdot` adds four s8×s8 products into each i32 lane without intermediate
//! saturation, but activations are u8 and mixed-sign `usdot` needs i8mm. So each activation byte
//! is shifted into s8 as `a − 128` (a flip of its top bit) and the tile adds back
//! `128·Σ_k w[c,k]` per column: `Σ a·w = Σ (a − 128)·w + 128·Σ w`, exact in (wrapping) i32. The
//! column sums come from `sdot` of the same panel registers with a vector of ones, one extra `sdot`
//! per 4 columns per group however many rows the tile has. Per group of 4 k, each row's 4 shifted
//! bytes are broadcast to all lanes and meet the two panel registers (columns 0–3 and 4–7).
//! This kernel serves exact contracts only; pair saturation runs on the NEON kernel.
//!
//! `vdotq_s32` is not stable Rust, so `sdot` is inline assembly in a `dotprod` function.

use crate::kernels::gemm::micro::{MicroKernel, TaskBuild};
use crate::kernels::tile::{check_tile, group};
use std::arch::aarch64::*;
use std::arch::asm;

/// The dot-product tile.
pub struct Dotprod;

const NR: usize = 8;

impl MicroKernel for Dotprod {
    const MR: usize = 8;
    const NR: usize = NR;
    const SLOT: usize = 0;
    const TASK: TaskBuild = TaskBuild::Baseline;

    unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64 {
        check_tile(rows, 8, NR, a, kp, b, out);
        // SAFETY: the caller guarantees NEON + dotprod; lengths are checked above.
        unsafe {
            match rows {
                1 => tile_r::<1>(a, kp, b, out),
                2 => tile_r::<2>(a, kp, b, out),
                3 => tile_r::<3>(a, kp, b, out),
                4 => tile_r::<4>(a, kp, b, out),
                5 => tile_r::<5>(a, kp, b, out),
                6 => tile_r::<6>(a, kp, b, out),
                7 => tile_r::<7>(a, kp, b, out),
                _ => tile_r::<8>(a, kp, b, out),
            }
        }
        0
    }
}

/// `acc + Σ_{j<4} x[4l + j]·w[4l + j]` per i32 lane `l`, on s8 bytes.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: register-only arithmetic; the target feature makes callers prove dotprod.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {x:v}.16b, {w:v}.16b",
            acc = inout(vreg) acc,
            x = in(vreg) x,
            w = in(vreg) w,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `R` rows.
///
/// # Safety
/// NEON + dotprod; `a` holds `R·kp` bytes, `b` holds `kp·NR`, `out` holds `R·NR`, `kp % 4 == 0`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_r<const R: usize>(a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let ones = vdupq_n_s8(1);
    let mut acc = [[vdupq_n_s32(0); 2]; R];
    let mut colsum = [vdupq_n_s32(0); 2];
    for g in 0..kp / 4 {
        // SAFETY: g < kp/4, so the panel read ends at 32·(g + 1) <= kp·NR bytes.
        let wb = unsafe { vld1q_s8_x2(bp.add(g * NR * 4)) };
        let w = [wb.0, wb.1];
        for (s, &wh) in colsum.iter_mut().zip(&w) {
            *s = sdot(*s, ones, wh);
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R holds kp bytes and 4g + 4 <= kp.
            let x = unsafe { group(ap, kp, r, g) } ^ 0x8080_8080;
            let xs = vreinterpretq_s8_u32(vdupq_n_u32(x));
            for (acc_h, &wh) in acc_r.iter_mut().zip(&w) {
                *acc_h = sdot(*acc_h, xs, wh);
            }
        }
    }
    let shift = colsum.map(|s| vshlq_n_s32::<7>(s));
    for (acc_r, row) in acc.iter().zip(out.chunks_exact_mut(NR)) {
        for ((half, &v), &s) in row.chunks_exact_mut(4).zip(acc_r).zip(&shift) {
            // SAFETY: `half` is 4 writable i32.
            unsafe { vst1q_s32(half.as_mut_ptr(), vaddq_s32(v, s)) };
        }
    }
}
