//! AVX-VNNI u8×s8→i32 GEMM tile: up to 2 rows × 32 columns on ymm `vpdpbusd`, exact sums.
//!
//! Design note. AVX-VNNI is the VEX, ymm-only form of AVX-512 VNNI's `vpdpbusd`: the same exact
//! sum of four u8×s8 products per i32 lane. The tile reads the AVX-512 kernel's 32-column panels
//! (slot 1) as four ymm per group of 4 k; with 16 ymm registers, 2 rows × 4 accumulators, the 4
//! panel registers and the broadcast fit. The body is written once over the instruction
//! (`Dot`): the AVX-VNNI tier runs the VEX form, and the tests instantiate it with the EVEX form
//! (AVX-512 VNNI + VL, the same semantics) on hosts that have that, which is how the body is
//! proven where no AVX-VNNI hardware (nor an emulator that runs it: qemu 7.2's TCG does not) is
//! at hand.

use crate::kernels::gemm::micro::{MicroKernel, TaskBuild};
use crate::kernels::tile::{check_tile, group};
use std::arch::x86_64::*;

/// The AVX-VNNI tile.
pub struct AvxVnni;

const NR: usize = 32;

impl MicroKernel for AvxVnni {
    const MR: usize = 2;
    const NR: usize = NR;
    const SLOT: usize = 1;
    const TASK: TaskBuild = TaskBuild::Avx2;

    unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64 {
        check_tile(rows, 2, NR, a, kp, b, out);
        // SAFETY: the caller guarantees AVX-VNNI; lengths are checked above.
        unsafe {
            match rows {
                1 => vex::<1>(a, kp, b, out),
                _ => vex::<2>(a, kp, b, out),
            }
        }
        0
    }
}

/// One encoding of `vpdpbusd` on ymm.
trait Dot {
    /// `acc + Σ` of each lane's four u8 (`a`) × s8 (`b`) products, exact.
    ///
    /// # Safety
    /// The caller must be compiled with the encoding's target features.
    unsafe fn dot(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

/// AVX-VNNI's VEX encoding.
struct Vex;

impl Dot for Vex {
    #[inline(always)]
    unsafe fn dot(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI by this function's contract.
        unsafe { _mm256_dpbusd_avx_epi32(acc, a, b) }
    }
}

/// # Safety
/// AVX-VNNI; as [`body`].
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn vex<const R: usize>(a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) {
    // SAFETY: forwarded from this function's contract.
    unsafe { body::<Vex, R>(a, kp, b, out) }
}

/// `R` rows: per group of 4 k, the panel's four ymm and one activation broadcast per row.
///
/// # Safety
/// The caller must be compiled with `D`'s features; `a` holds `R·kp` bytes, `b` holds `kp·NR`,
/// `out` holds `R·NR`, `kp % 4 == 0`.
#[inline(always)]
unsafe fn body<D: Dot, const R: usize>(a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: D's features (AVX2 among them) by this function's contract. Reads: g < kp/4, so a
    // panel read ends at 128·g + 32·(q + 1) <= kp·NR bytes, and row r < R holds kp bytes with
    // 4g + 4 <= kp; each store writes 8 of a row's NR i32.
    unsafe {
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for g in 0..kp / 4 {
            let mut w = [_mm256_setzero_si256(); 4];
            for (q, w) in w.iter_mut().enumerate() {
                *w = _mm256_loadu_si256(bp.add(g * NR * 4 + 32 * q).cast());
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_epi32(group(ap, kp, r, g) as i32);
                for (acc, &w) in acc_r.iter_mut().zip(&w) {
                    *acc = D::dot(*acc, x, w);
                }
            }
        }
        for (row, acc_r) in out.chunks_exact_mut(NR).zip(&acc) {
            for (lanes, &v) in row.chunks_exact_mut(8).zip(acc_r) {
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::dot_u8_i8;

    /// AVX-512 VNNI's EVEX encoding on ymm (with AVX-512 VL).
    struct Evex;

    impl Dot for Evex {
        #[inline(always)]
        unsafe fn dot(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: AVX-512 VNNI + VL by this function's contract.
            unsafe { _mm256_dpbusd_epi32(acc, a, b) }
        }
    }

    /// # Safety
    /// AVX-512 VNNI + VL; as [`body`].
    #[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
    unsafe fn evex<const R: usize>(a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) {
        // SAFETY: forwarded from this function's contract.
        unsafe { body::<Evex, R>(a, kp, b, out) }
    }

    /// Both encodings of the body return the exact dot products of every row with every panel
    /// column (extreme bytes included), each where the host can run it; the other is reported
    /// as skipped.
    #[test]
    fn body_equals_exact_dot_products() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let has = |form: &str| match form {
            "evex" => {
                std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            _ => std::arch::is_x86_feature_detected!("avxvnni"),
        };
        for kp in [4, 8, 36, 260] {
            let a: Vec<u8> = (0..2 * kp).map(|i| [0, 255, next() as u8][i % 3]).collect();
            let w: Vec<i8> = (0..NR * kp)
                .map(|i| [-128, 127, next() as i8][i % 3])
                .collect();
            // Panel layout: per group of 4 k, NR columns × 4 bytes.
            let mut panel = vec![0i8; kp * NR];
            for (c, col) in w.chunks_exact(kp).enumerate() {
                for (k, &v) in col.iter().enumerate() {
                    panel[(k / 4) * NR * 4 + c * 4 + k % 4] = v;
                }
            }
            let want: Vec<i32> = (0..2)
                .flat_map(|r| w.chunks_exact(kp).map(move |col| (r, col)))
                .map(|(r, col)| dot_u8_i8(&a[r * kp..][..kp], col))
                .collect();
            for form in ["evex", "vex"] {
                if !has(form) {
                    println!("skipped {form}: the host lacks it");
                    continue;
                }
                for rows in 1..=2 {
                    let mut got = vec![i32::MIN; rows * NR];
                    // SAFETY: the host has the form's features (checked above); sizes as body's.
                    unsafe {
                        match (form, rows) {
                            ("evex", 1) => evex::<1>(&a, kp, &panel, &mut got),
                            ("evex", _) => evex::<2>(&a, kp, &panel, &mut got),
                            (_, 1) => vex::<1>(&a, kp, &panel, &mut got),
                            _ => vex::<2>(&a, kp, &panel, &mut got),
                        }
                    }
                    assert_eq!(got, want[..rows * NR], "{form} rows={rows} kp={kp}");
                }
            }
        }
    }
}
