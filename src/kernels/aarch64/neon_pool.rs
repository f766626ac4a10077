//! NEON row max of [`crate::kernels::pool`]: `umax` / `smax` on 16 lanes, the scalar twin for
//! the last bytes.

use crate::kernels::pool::{check_row_max, row_max};
use std::arch::aarch64::*;

macro_rules! row_max_neon {
    ($name:ident, $t:ty, $load:ident, $max:ident, $store:ident) => {
        /// `dst[i] = max_j base[offsets[j] + i]` ([`row_max`]) on NEON.
        ///
        /// # Safety
        /// The host must support NEON.
        #[target_feature(enable = "neon")]
        pub unsafe fn $name(dst: &mut [$t], base: &[$t], offsets: &[usize]) {
            let n = dst.len();
            check_row_max(n, base.len(), offsets);
            let (src, out) = (base.as_ptr(), dst.as_mut_ptr());
            let mut i = 0;
            while i + 16 <= n {
                // SAFETY: `check_row_max` bounds every `o + i + 16` by `base.len()`.
                unsafe {
                    let mut acc = $load(src.add(offsets[0] + i));
                    for &o in &offsets[1..] {
                        acc = $max(acc, $load(src.add(o + i)));
                    }
                    $store(out.add(i), acc);
                }
                i += 16;
            }
            if i < n {
                row_max(&mut dst[i..], &base[i..], offsets);
            }
        }
    };
}

row_max_neon!(row_max_u8, u8, vld1q_u8, vmaxq_u8, vst1q_u8);
row_max_neon!(row_max_i8, i8, vld1q_s8, vmaxq_s8, vst1q_s8);
