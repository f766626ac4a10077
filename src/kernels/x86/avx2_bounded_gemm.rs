//! AVX2 u8×s8→i32 GEMM tile for bounded pairs: up to 6 rows × 16 columns of `vpmaddubsw` sums,
//! the AVX2 tier's fast path whenever no int16 pair can saturate.
//!
//! Design note. `vpmaddubsw` adds the two u8×s8 products of a pair in saturating i16; when the
//! weight's [`PairBound`](crate::kernels::reference::PairBound) times the largest activation
//! byte stays inside i16 (every weight under fbgemm's 7-bit `reduce_range` activations), no
//! pair saturates and its sums are the exact ones, so the route sends exact and saturating
//! requests alike here. `vpmaddwd` with ones widens each pair of pairs to i32 and `vpaddd`
//! accumulates: 32 multiply-adds per three instructions, the sequence the AVX2 peak loop
//! ([`peak_loop`]) times. Twelve accumulators (6 rows × 2 ymm), the broadcast row group, the
//! ones and a temporary fill the 16 ymm registers, so the two panel vectors are read as memory
//! operands: loads are cheap beside the multiply ports this tile saturates. The panels are 16
//! columns wide (slot 2), the same 4-byte column groups as the 8- and 32-column ones; lanes come
//! out in column order, so no fold is needed at the end of K.

use crate::kernels::gemm::micro::{MicroKernel, TaskBuild};
use crate::kernels::tile::{check_tile, group};
use std::arch::x86_64::*;

/// The bounded-pair tile (only where no pair can reach an int16 bound).
pub struct Bounded;

const NR: usize = 16;
const MR: usize = 6;

impl MicroKernel for Bounded {
    const MR: usize = MR;
    const NR: usize = NR;
    const SLOT: usize = 2;
    const TASK: TaskBuild = TaskBuild::Avx2;

    unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64 {
        check_tile(rows, MR, NR, a, kp, b, out);
        // SAFETY: the caller guarantees AVX2; lengths are checked above.
        unsafe {
            match rows {
                1 => rows_r::<1>(a, kp, b, out),
                2 => rows_r::<2>(a, kp, b, out),
                3 => rows_r::<3>(a, kp, b, out),
                4 => rows_r::<4>(a, kp, b, out),
                5 => rows_r::<5>(a, kp, b, out),
                _ => rows_r::<6>(a, kp, b, out),
            }
        }
        0
    }
}

/// `R` rows: per group of 4 k, the panel's two ymm (8 columns × 4 bytes each) and one
/// broadcast of the row's 4 bytes.
///
/// # Safety
/// AVX2; `a` holds `R·kp` bytes, `b` holds `kp·NR`, `out` holds `R·NR`, `kp % 4 == 0`, and no
/// pair of `a` and `b` reaches an int16 bound (otherwise the sums saturate).
#[target_feature(enable = "avx2")]
unsafe fn rows_r<const R: usize>(a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for g in 0..kp / 4 {
        // SAFETY: g < kp/4, so the panel reads end at 64·(g + 1) <= kp·NR bytes.
        let (w0, w1) = unsafe {
            let at = bp.add(g * NR * 4);
            (
                _mm256_loadu_si256(at.cast()),
                _mm256_loadu_si256(at.add(32).cast()),
            )
        };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R holds kp bytes and 4g + 4 <= kp.
            let x = _mm256_set1_epi32(unsafe { group(ap, kp, r, g) } as i32);
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(x, w0), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(x, w1), ones);
            acc_r[0] = _mm256_add_epi32(acc_r[0], p0);
            acc_r[1] = _mm256_add_epi32(acc_r[1], p1);
        }
    }
    for (row, acc_r) in out.chunks_exact_mut(NR).zip(&acc) {
        for (lanes, &v) in row.chunks_exact_mut(8).zip(acc_r) {
            // SAFETY: `lanes` is 8 writable i32.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
        }
    }
}

/// Multiply-adds one iteration of [`peak_loop`] performs: 12 accumulators × 32 byte products.
pub const PEAK_MACS_PER_ITER: usize = 12 * 32;

/// A register-only loop of the tile's instruction sequence — `vpmaddubsw`, `vpmaddwd` with
/// ones, `vpaddd`, into 12 independent accumulators, no loads — timing the AVX2 tier's int8
/// peak on this host, the ceiling `qlab bench` compares the tier's GEMM figures with. Written
/// in assembly because the two products are loop-invariant: from intrinsics the compiler
/// hoists them and times additions alone. Returns a value derived from every accumulator.
///
/// # Safety
/// The host must support AVX2; `iters > 0`.
#[target_feature(enable = "avx2")]
pub unsafe fn peak_loop(iters: usize, a: i32, b: i32) -> i32 {
    let (a, b) = (_mm256_set1_epi32(a), _mm256_set1_epi32(b));
    let ones = _mm256_set1_epi16(1);
    let mut c = [_mm256_setzero_si256(); 12];
    // SAFETY: AVX2 by this function's contract; registers only, and `n` counts down from
    // `iters > 0`.
    unsafe {
        std::arch::asm!(
            "2:",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c0}, {c0}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c1}, {c1}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c2}, {c2}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c3}, {c3}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c4}, {c4}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c5}, {c5}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c6}, {c6}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c7}, {c7}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c8}, {c8}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c9}, {c9}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c10}, {c10}, {t}",
            "vpmaddubsw {t}, {a}, {b}", "vpmaddwd {t}, {t}, {ones}", "vpaddd {c11}, {c11}, {t}",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters => _,
            a = in(ymm_reg) a,
            b = in(ymm_reg) b,
            ones = in(ymm_reg) ones,
            t = out(ymm_reg) _,
            c0 = inout(ymm_reg) c[0],
            c1 = inout(ymm_reg) c[1],
            c2 = inout(ymm_reg) c[2],
            c3 = inout(ymm_reg) c[3],
            c4 = inout(ymm_reg) c[4],
            c5 = inout(ymm_reg) c[5],
            c6 = inout(ymm_reg) c[6],
            c7 = inout(ymm_reg) c[7],
            c8 = inout(ymm_reg) c[8],
            c9 = inout(ymm_reg) c[9],
            c10 = inout(ymm_reg) c[10],
            c11 = inout(ymm_reg) c[11],
            options(nomem, nostack),
        );
    }
    let sum = c[1..].iter().fold(c[0], |s, &x| _mm256_add_epi32(s, x));
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
    lanes.iter().fold(0i32, |s, &v| s.wrapping_add(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peak loop computes what its instructions say: 12 accumulators, each adding per
    /// iteration 8 lanes of two pairs of products (here bytes 2 × 3 → 24 per lane).
    #[test]
    fn peak_loop_counts_every_product() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped avx2: host lacks it");
            return;
        }
        // SAFETY: AVX2 checked above; 5 > 0 iterations.
        let got = unsafe { peak_loop(5, 0x0202_0202, 0x0303_0303) };
        assert_eq!(got, 5 * 12 * 8 * 4 * 6);
    }
}
