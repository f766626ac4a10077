//! What every SIMD GEMM tile shares, whatever the ISA: the operand-size contract checked before
//! a `#[target_feature]` tile runs, and the read of one 4-byte activation group of a packed row.

/// Checks a tile call's operand sizes against `R ≤ mr` rows, `kp`-byte rows and an `nr` panel.
pub(crate) fn check_tile(
    rows: usize,
    mr: usize,
    nr: usize,
    a: &[u8],
    kp: usize,
    b: &[i8],
    out: &[i32],
) {
    assert!((1..=mr).contains(&rows) && kp.is_multiple_of(4));
    assert!(a.len() >= rows * kp && b.len() >= kp * nr);
    assert!(out.len() >= rows * nr);
}

/// Reads the 4 activation bytes of group `g` of packed row `r` as one little-endian u32.
///
/// # Safety
/// `a` must hold at least `(r + 1)·kp` bytes and `4·g + 4 <= kp`.
#[inline(always)]
pub(crate) unsafe fn group(a: *const u8, kp: usize, r: usize, g: usize) -> u32 {
    // SAFETY: in bounds by the caller's contract; `read_unaligned` has no alignment need.
    unsafe { a.add(r * kp + 4 * g).cast::<u32>().read_unaligned() }
}
