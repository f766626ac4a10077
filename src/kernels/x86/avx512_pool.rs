//! AVX-512 row max of [`crate::kernels::pool`]: `vpmaxub` / `vpmaxsb` on 64 lanes, the last
//! partial chunk through masked loads and a masked store (masked-off lanes neither fault nor
//! write), so a row of any length is whole vectors.

use crate::kernels::pool::check_row_max;
use std::arch::x86_64::*;

macro_rules! row_max_avx512 {
    ($name:ident, $t:ty, $max:ident) => {
        /// `dst[i] = max_j base[offsets[j] + i]` ([`crate::kernels::pool::row_max`]) on
        /// AVX-512 BW.
        ///
        /// # Safety
        /// The host must support AVX-512 F and BW.
        #[target_feature(enable = "avx512f,avx512bw")]
        pub unsafe fn $name(dst: &mut [$t], base: &[$t], offsets: &[usize]) {
            let n = dst.len();
            check_row_max(n, base.len(), offsets);
            let (src, out) = (base.as_ptr(), dst.as_mut_ptr());
            let mut i = 0;
            while i < n {
                let mask: __mmask64 = if n - i >= 64 {
                    !0
                } else {
                    (1u64 << (n - i)) - 1
                };
                // SAFETY: `check_row_max` bounds `o + i + lane` by `base.len()` and `i + lane`
                // by `n` for every enabled lane; `o + i < base.len()` keeps the pointers in
                // bounds.
                unsafe {
                    let load = |o: usize| _mm512_maskz_loadu_epi8(mask, src.add(o + i).cast());
                    let mut acc = load(offsets[0]);
                    for &o in &offsets[1..] {
                        acc = $max(acc, load(o));
                    }
                    _mm512_mask_storeu_epi8(out.add(i).cast(), mask, acc);
                }
                i += 64;
            }
        }
    };
}

row_max_avx512!(row_max_u8, u8, _mm512_max_epu8);
row_max_avx512!(row_max_i8, i8, _mm512_max_epi8);
