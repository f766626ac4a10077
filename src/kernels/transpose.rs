//! Matrix transposes, the layout changes between NCHW planes and channels-last rows: bytes in
//! 16×16 SSE2 blocks on x86-64 (a plain loop elsewhere and for sides shorter than 16), any
//! element type in cache-sized square blocks.

/// `dst[j·dst_stride + i] = src[i·src_stride + j]` for `i < rows`, `j < cols`. With both sides
/// at least 16 the last block of each dimension overlaps its neighbour instead of leaving a
/// scalar tail (it rewrites bytes with the values they already hold).
///
/// # Safety
/// `src` must be readable at every `i·src_stride + j` and `dst` writable at every
/// `j·dst_stride + i`, by this thread alone.
pub(crate) unsafe fn transpose_raw(
    src: *const u8,
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    dst_stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if rows >= 16 && cols >= 16 {
        let starts = |len: usize| (0..len.div_ceil(16)).map(move |b| (b * 16).min(len - 16));
        for i in starts(rows) {
            for j in starts(cols) {
                // SAFETY: the block's rows and columns lie inside the two rectangles.
                unsafe {
                    super::x86::sse2_pack::transpose16(
                        src.add(i * src_stride + j),
                        src_stride,
                        dst.add(j * dst_stride + i),
                        dst_stride,
                    )
                };
            }
        }
        return;
    }
    for i in 0..rows {
        for j in 0..cols {
            // SAFETY: in bounds by this function's contract.
            unsafe { *dst.add(j * dst_stride + i) = *src.add(i * src_stride + j) };
        }
    }
}

/// [`transpose_raw`] on slices, bounds checked.
pub(crate) fn transpose(
    src: &[u8],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(cols <= src_stride && rows <= dst_stride);
    assert!(src.len() >= (rows - 1) * src_stride + cols);
    assert!(dst.len() >= (cols - 1) * dst_stride + rows);
    // SAFETY: the assertions cover both rectangles; `dst` is borrowed mutably.
    unsafe {
        transpose_raw(
            src.as_ptr(),
            src_stride,
            rows,
            cols,
            dst.as_mut_ptr(),
            dst_stride,
        )
    };
}

/// `src` read as a `[rows, cols]` matrix, transposed into `dst` (`[cols, rows]`), in square
/// blocks so both the reads and the writes stay within a few cache lines per block (any element
/// type: `conv::reference` turns its i32 results back to NCHW with it).
pub(crate) fn transpose_blocked<T: Copy>(src: &[T], cols: usize, dst: &mut [T]) {
    const BLOCK: usize = 32;
    let rows = src.len() / cols;
    for r0 in (0..rows).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(rows);
        for c0 in (0..cols).step_by(BLOCK) {
            let c1 = (c0 + BLOCK).min(cols);
            for r in r0..r1 {
                for (c, &v) in (c0..c1).zip(&src[r * cols + c0..r * cols + c1]) {
                    dst[c * rows + r] = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SSE2 blocks (overlapping tails included) move every byte where the scalar loop does,
    /// and leave the bytes between the destination's rows alone.
    #[test]
    fn transpose_matches_the_scalar_loop() {
        for (rows, cols, stride, dst_stride) in [
            (16, 16, 16, 16),
            (64, 56, 3136, 64),
            (17, 33, 40, 20),
            (3, 20, 20, 5),
            (20, 16, 16, 23),
        ] {
            let src: Vec<u8> = (0..rows * stride).map(|i| (i * 31 % 251) as u8).collect();
            let mut fast = vec![7u8; cols * dst_stride];
            transpose(&src, stride, rows, cols, &mut fast, dst_stride);
            for j in 0..cols {
                for i in 0..dst_stride {
                    let want = if i < rows { src[i * stride + j] } else { 7 };
                    assert_eq!(fast[j * dst_stride + i], want, "{rows}×{cols} at {i},{j}");
                }
            }
        }
    }
}
