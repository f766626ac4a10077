//! AVX-512 VBMI byte lookup: [`crate::kernels::lut::map_bytes_portable`] 64 bytes per step, the
//! tail under a byte mask.

use std::arch::x86_64::*;

/// `dst[i] = table[src[i]]`.
///
/// # Safety
/// The host must support AVX-512 F, BW and VBMI; `src` and `dst` must have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn map_bytes(src: &[u8], table: &[u8; 256], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len().min(dst.len());
    // SAFETY (every load and store): offsets below `n` (masked on the tail), AVX-512 per the
    // contract; the table reads cover its 256 bytes.
    unsafe {
        let t = table.as_ptr();
        let quarter = |q: usize| _mm512_loadu_si512(t.add(64 * q).cast());
        let (t0, t1, t2, t3) = (quarter(0), quarter(1), quarter(2), quarter(3));
        // Index bits 0–6 pick one of 128 entries in a pair of quarters, bit 7 the pair.
        let look = |idx: __m512i| {
            let low = _mm512_permutex2var_epi8(t0, idx, t1);
            let high = _mm512_permutex2var_epi8(t2, idx, t3);
            _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high)
        };
        let mut i = 0;
        while i + 64 <= n {
            let idx = _mm512_loadu_si512(src.as_ptr().add(i).cast());
            _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), look(idx));
            i += 64;
        }
        if i < n {
            let mask: u64 = (1u64 << (n - i)) - 1;
            let idx = _mm512_maskz_loadu_epi8(mask, src.as_ptr().add(i).cast());
            _mm512_mask_storeu_epi8(dst.as_mut_ptr().add(i).cast(), mask, look(idx));
        }
    }
}
