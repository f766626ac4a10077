//! SSE2 (x86-64 baseline) interleave behind the GEMM's k-major panels (`gemm::Panels`).
//!
//! Design note. Four k-major rows become 4-byte column groups with two rounds of unpacks:
//! bytes of rows (0, 1) and (2, 3) pair up, then the pairs' 16-bit words, which leaves 16
//! columns' groups in column order in four registers. The bytes are moved, not computed (the
//! XOR with 0x80 is the operand shift), so the result is the scalar interleave's.

use std::arch::x86_64::*;

/// `dst[4c + q] = rows[q][c] ^ 0x80` for the first multiple of 16 columns `c` that `dst` (4
/// bytes per column) and every row hold; returns that column count, leaving the tail to the
/// caller.
pub(crate) fn interleave4(rows: [&[u8]; 4], dst: &mut [i8]) -> usize {
    let cols = rows.iter().fold(dst.len() / 4, |c, r| c.min(r.len()));
    let whole = cols / 16 * 16;
    // SAFETY: SSE2 is part of the x86-64 baseline.
    let flip = unsafe { _mm_set1_epi8(0x80u8 as i8) };
    for c in (0..whole).step_by(16) {
        // SAFETY: SSE2 as above; `c + 16 <= whole`, which every row holds and `dst` holds four
        // times over.
        unsafe {
            let [r0, r1, r2, r3] =
                rows.map(|r| _mm_xor_si128(_mm_loadu_si128(r.as_ptr().add(c).cast()), flip));
            let (lo01, hi01) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
            let (lo23, hi23) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
            let d = dst.as_mut_ptr().add(4 * c);
            _mm_storeu_si128(d.cast(), _mm_unpacklo_epi16(lo01, lo23));
            _mm_storeu_si128(d.add(16).cast(), _mm_unpackhi_epi16(lo01, lo23));
            _mm_storeu_si128(d.add(32).cast(), _mm_unpacklo_epi16(hi01, hi23));
            _mm_storeu_si128(d.add(48).cast(), _mm_unpackhi_epi16(hi01, hi23));
        }
    }
    whole
}
