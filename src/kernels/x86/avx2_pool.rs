//! AVX2 row max of [`crate::kernels::pool`] (also the AVX-VNNI tier's): `vpmaxub` / `vpmaxsb` on
//! 32 lanes, one 16-lane step for a tail of 16 or more, the scalar twin for the last bytes
//! (pooled rows are often 7 to 56 bytes, so the 16-lane step matters).

use crate::kernels::pool::{check_row_max, row_max};
use std::arch::x86_64::*;

macro_rules! row_max_avx2 {
    ($name:ident, $t:ty, $max256:ident, $max128:ident) => {
        /// `dst[i] = max_j base[offsets[j] + i]` ([`row_max`]) on AVX2.
        ///
        /// # Safety
        /// The host must support AVX2.
        #[target_feature(enable = "avx2")]
        pub unsafe fn $name(dst: &mut [$t], base: &[$t], offsets: &[usize]) {
            let n = dst.len();
            check_row_max(n, base.len(), offsets);
            let (src, out) = (base.as_ptr(), dst.as_mut_ptr());
            let mut i = 0;
            // SAFETY (loads and stores): `check_row_max` bounds every `o + i + lanes` by the
            // slices' lengths for `i + lanes <= n`.
            while i + 32 <= n {
                unsafe {
                    let load = |o: usize| _mm256_loadu_si256(src.add(o + i).cast());
                    let mut acc = load(offsets[0]);
                    for &o in &offsets[1..] {
                        acc = $max256(acc, load(o));
                    }
                    _mm256_storeu_si256(out.add(i).cast(), acc);
                }
                i += 32;
            }
            if i + 16 <= n {
                unsafe {
                    let load = |o: usize| _mm_loadu_si128(src.add(o + i).cast());
                    let mut acc = load(offsets[0]);
                    for &o in &offsets[1..] {
                        acc = $max128(acc, load(o));
                    }
                    _mm_storeu_si128(out.add(i).cast(), acc);
                }
                i += 16;
            }
            if i < n {
                row_max(&mut dst[i..], &base[i..], offsets);
            }
        }
    };
}

row_max_avx2!(row_max_u8, u8, _mm256_max_epu8, _mm_max_epu8);
row_max_avx2!(row_max_i8, i8, _mm256_max_epi8, _mm_max_epi8);
