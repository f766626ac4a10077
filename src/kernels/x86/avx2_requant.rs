//! AVX2 build of the requantization epilogue.
//!
//! Design note. The element rules of [`crate::kernels::requant`] are kept as they are and only
//! compiled with AVX2 (hence SSE4.1) enabled: `round_ties_even` then becomes `vroundss` inline
//! instead of a `rintf` call per element, which dominated the epilogue. Same IEEE operations,
//! so the same bytes.

use crate::kernels::requant::Requant;

/// [`Requant::apply_runs`] compiled for AVX2.
///
/// # Safety
/// The host must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn apply_runs(rq: &Requant, acc: &[i32], run: usize, channels: usize, out: &mut [u8]) {
    rq.apply_runs_portable(acc, run, channels, out);
}

/// [`Requant::apply_rows`] compiled for AVX2.
///
/// # Safety
/// The host must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn apply_rows(
    rq: &Requant,
    acc: &[i32],
    stride: usize,
    cols: usize,
    c: usize,
    out: &mut [u8],
) {
    rq.apply_rows_portable(acc, stride, cols, c, out);
}
