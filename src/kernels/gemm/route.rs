//! Which kernel runs a request: the requested tier and the pair semantics asked for pick a
//! [`Route`], and [`tiled_on`] runs the route's tier kernel through the blocked driver.
//!
//! This is the only part of `gemm` that names the tier files, so adding a tier touches the
//! ladder here and nothing in the driver.

use super::PairSums;
use super::driver::{Left, RightOperand, Sink, tiled};
use crate::isa::Isa;

/// The kernel a tier runs for the requested semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Reference,
    #[cfg(target_arch = "x86_64")]
    Avx2Bounded,
    #[cfg(target_arch = "x86_64")]
    Avx2Exact,
    #[cfg(target_arch = "x86_64")]
    Avx2Saturating,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    #[cfg(target_arch = "aarch64")]
    NeonExact,
    #[cfg(target_arch = "aarch64")]
    NeonSaturating,
    #[cfg(target_arch = "aarch64")]
    Dotprod,
}

/// The kernel `tier` runs for sums `sums`. Bounded sums are both exact and saturating, so any
/// kernel of the tier computes them; only AVX2 has one faster for them.
pub(super) fn route(tier: Isa, sums: PairSums) -> Route {
    #[cfg(target_arch = "x86_64")]
    match (tier, sums) {
        (Isa::Avx512Vnni, PairSums::Exact | PairSums::Bounded) => return Route::Avx512Vnni,
        (Isa::AvxVnni, PairSums::Exact | PairSums::Bounded) => return Route::AvxVnni,
        (Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni, PairSums::Saturating) => {
            return Route::Avx2Saturating;
        }
        (Isa::Avx2, PairSums::Bounded) => return Route::Avx2Bounded,
        (Isa::Avx2, PairSums::Exact) => return Route::Avx2Exact,
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    match (tier, sums) {
        (Isa::Neon | Isa::Dotprod, PairSums::Saturating) => return Route::NeonSaturating,
        (Isa::Neon, PairSums::Exact | PairSums::Bounded) => return Route::NeonExact,
        (Isa::Dotprod, PairSums::Exact | PairSums::Bounded) => return Route::Dotprod,
        _ => {}
    }
    let _ = (tier, sums);
    Route::Reference
}

/// The kernel name a tier uses for sums `sums` (for reports and benches; [`super::pair_sums`]
/// tells which sums a request has).
pub fn kernel_name(tier: Isa, sums: PairSums) -> &'static str {
    match route(tier, sums) {
        Route::Reference => "reference",
        #[cfg(target_arch = "x86_64")]
        Route::Avx2Bounded => "avx2_gemm_bounded_6x16",
        #[cfg(target_arch = "x86_64")]
        Route::Avx2Exact => "avx2_gemm_exact_4x8",
        #[cfg(target_arch = "x86_64")]
        Route::Avx2Saturating => "avx2_gemm_pairsat_4x8",
        #[cfg(target_arch = "x86_64")]
        Route::Avx512Vnni => "avx512vnni_gemm_12x32",
        #[cfg(target_arch = "x86_64")]
        Route::AvxVnni => "avxvnni_gemm_2x32",
        #[cfg(target_arch = "aarch64")]
        Route::NeonExact => "neon_gemm_exact_4x8",
        #[cfg(target_arch = "aarch64")]
        Route::NeonSaturating => "neon_gemm_pairsat_4x8",
        #[cfg(target_arch = "aarch64")]
        Route::Dotprod => "dotprod_gemm_8x8",
    }
}

/// `route`'s SIMD kernel run by the blocked driver, or `None` for the reference route (and for
/// empty operands, which have nothing to tile: zero-width panels cannot be chunked).
///
/// # Safety
/// The host must support the route's tier; `sink` must hold the `m·n` outputs, which nothing
/// else accesses meanwhile.
pub(super) unsafe fn tiled_on(
    route: Route,
    m: usize,
    a: Left,
    a_zp: i32,
    b: &dyn RightOperand,
    sink: Sink,
) -> Option<u64> {
    if m == 0 || b.n() == 0 || b.k() == 0 {
        return None;
    }
    // SAFETY (every arm): forwarded from this function's contract.
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::x86::{avx2_bounded_gemm, avx2_gemm, avx512vnni_gemm, avxvnni_gemm};
        match route {
            Route::Reference => None,
            Route::Avx2Bounded => {
                Some(unsafe { tiled::<avx2_bounded_gemm::Bounded>(m, a, a_zp, b, sink) })
            }
            Route::Avx2Exact => Some(unsafe { tiled::<avx2_gemm::Exact>(m, a, a_zp, b, sink) }),
            Route::Avx2Saturating => {
                Some(unsafe { tiled::<avx2_gemm::PairSaturating>(m, a, a_zp, b, sink) })
            }
            Route::Avx512Vnni => {
                Some(unsafe { tiled::<avx512vnni_gemm::Vnni>(m, a, a_zp, b, sink) })
            }
            Route::AvxVnni => Some(unsafe { tiled::<avxvnni_gemm::AvxVnni>(m, a, a_zp, b, sink) }),
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use crate::kernels::aarch64::{dotprod_gemm, neon_gemm};
        match route {
            Route::Reference => None,
            Route::NeonExact => Some(unsafe { tiled::<neon_gemm::Exact>(m, a, a_zp, b, sink) }),
            Route::NeonSaturating => {
                Some(unsafe { tiled::<neon_gemm::PairSaturating>(m, a, a_zp, b, sink) })
            }
            Route::Dotprod => Some(unsafe { tiled::<dotprod_gemm::Dotprod>(m, a, a_zp, b, sink) }),
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    None
}
