//! x86-64 kernels, one file per ISA and op; each is a `#[target_feature]` tier of a reference
//! kernel in [`super::reference`], dispatched from [`super::gemm`].

pub mod avx2_gemm;
pub mod avx2_requant;
pub mod avx512vnni_gemm;

/// Reads the 4 activation bytes of group `g` of packed row `r` as one little-endian i32.
///
/// # Safety
/// `a` must hold at least `(r + 1)·kp` bytes and `4·g + 4 <= kp`.
#[inline(always)]
unsafe fn group(a: *const u8, kp: usize, r: usize, g: usize) -> i32 {
    // SAFETY: in bounds by the caller's contract; `read_unaligned` has no alignment need.
    unsafe { a.add(r * kp + 4 * g).cast::<i32>().read_unaligned() }
}
