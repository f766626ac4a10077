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

/// [`Requant::apply_channel`] compiled for AVX2.
///
/// # Safety
/// The host must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn apply_channel(rq: &Requant, acc: &[i32], c: usize, out: &mut [u8]) {
    rq.apply_channel_portable(acc, c, out);
}
