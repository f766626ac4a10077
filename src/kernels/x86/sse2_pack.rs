//! SSE2 (x86-64 baseline) byte shuffles behind operand layouts: the GEMM's k-major panels
//! (`gemm::Panels`) and the 16×16 blocks of `kernels::transpose`.
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

/// `dst[j·dst_stride + i] = src[i·src_stride + j]` for a 16×16 block of bytes, by four rounds of
/// unpacks (bytes, words, dwords, qwords), each of which doubles the run of one source column
/// held together in a register.
///
/// # Safety
/// The 16 rows of 16 bytes at `src + i·src_stride` must be readable and those at
/// `dst + j·dst_stride` writable, by this thread alone.
pub(crate) unsafe fn transpose16(
    src: *const u8,
    src_stride: usize,
    dst: *mut u8,
    dst_stride: usize,
) {
    // SAFETY: SSE2 is part of the x86-64 baseline; the rows are in bounds by this function's
    // contract.
    unsafe {
        let a: [__m128i; 16] =
            std::array::from_fn(|i| _mm_loadu_si128(src.add(i * src_stride).cast()));
        // Branch-free loops over fixed indices, which unroll into straight register code.
        let mut b = [_mm_setzero_si128(); 16];
        // b[2j], b[2j + 1]: rows 2j and 2j + 1 paired per column, columns 0–7 and 8–15.
        for j in 0..8 {
            b[2 * j] = _mm_unpacklo_epi8(a[2 * j], a[2 * j + 1]);
            b[2 * j + 1] = _mm_unpackhi_epi8(a[2 * j], a[2 * j + 1]);
        }
        // c[4g + j]: rows 4g..4g + 4 of columns 4j..4j + 4.
        let mut c = [_mm_setzero_si128(); 16];
        for g in 0..4 {
            for h in 0..2 {
                let (x, y) = (b[4 * g + h], b[4 * g + 2 + h]);
                c[4 * g + 2 * h] = _mm_unpacklo_epi16(x, y);
                c[4 * g + 2 * h + 1] = _mm_unpackhi_epi16(x, y);
            }
        }
        // e[8h + m]: rows 8h..8h + 8 of columns 2m, 2m + 1.
        let mut e = [_mm_setzero_si128(); 16];
        for h in 0..2 {
            for j in 0..4 {
                let (x, y) = (c[8 * h + j], c[8 * h + 4 + j]);
                e[8 * h + 2 * j] = _mm_unpacklo_epi32(x, y);
                e[8 * h + 2 * j + 1] = _mm_unpackhi_epi32(x, y);
            }
        }
        let d = dst;
        for m in 0..8 {
            let (x, y) = (e[m], e[8 + m]);
            _mm_storeu_si128(d.add(2 * m * dst_stride).cast(), _mm_unpacklo_epi64(x, y));
            _mm_storeu_si128(
                d.add((2 * m + 1) * dst_stride).cast(),
                _mm_unpackhi_epi64(x, y),
            );
        }
    }
}
