//! The micro-kernel contract between the GEMM driver and the ISA tier files: what a register
//! tile computes and which build of the driver's task runs it.
//!
//! A leaf on purpose: it imports nothing else of `gemm`, so the tier files under `x86/` and
//! `aarch64/` depend only on this file, while the driver depends on them through `route` — the
//! dependency runs one way and a tier can be read (or replaced) without the driver.

use crate::kernels::requant::{Requant, TileBlock};

/// The target features the driver's task for a kernel is compiled with (its packing,
/// corrections and epilogue loops; the tile itself has its own `#[target_feature]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskBuild {
    /// The target's baseline (aarch64, where NEON is always there).
    #[cfg(not(target_arch = "x86_64"))]
    Baseline,
    /// AVX2 + FMA: the least an x86-64 task is compiled with.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 F/BW/VL, for kernels whose epilogue uses zmm lanes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// A register-tile kernel over packed operands.
pub(crate) trait MicroKernel {
    /// Most rows per tile.
    const MR: usize;
    /// Columns per tile (the panel width).
    const NR: usize;
    /// Index of this kernel's panels in a pack cache (`gemm::PackCache`).
    const SLOT: usize;
    /// The build of the driver's task that runs this kernel's tiles: one with at least the
    /// kernel's target features, or the baseline where it has them.
    const TASK: TaskBuild;

    /// Raw dot products of `rows` (1..=MR) packed activation rows `a` (stride `kp`) with one
    /// panel `b` (`kp·NR` bytes) into `out[r·NR + c]`; returns the saturated pairs.
    ///
    /// # Safety
    /// The host must support the kernel's target features.
    unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64;

    /// [`Self::tile`], also asking the cache for the bytes of `ahead` (a part of the panel the
    /// task runs next) a little at a time across the tile's K loop; kernels without prefetches
    /// ignore it.
    ///
    /// # Safety
    /// As [`Self::tile`].
    #[inline(always)]
    unsafe fn tile_ahead(
        rows: usize,
        a: &[u8],
        kp: usize,
        b: &[i8],
        out: &mut [i32],
        ahead: &[i8],
    ) -> u64 {
        let _ = ahead;
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::tile(rows, a, kp, b, out) }
    }

    /// Requantizes tile rows whose columns are channels ([`TileBlock`]):
    /// [`Requant::apply_tile_block_in_task`], or wider lanes where a kernel overrides it.
    ///
    /// # Safety
    /// As [`TileBlock`]; the host must support the kernel's target features, and the caller
    /// be compiled with them (and with AVX2 on x86-64, as every task is).
    #[inline(always)]
    unsafe fn requant_tile(rq: &Requant, block: &TileBlock) {
        // SAFETY: forwarded from this function's contract.
        unsafe { rq.apply_tile_block_in_task(block) };
    }
}

/// The exact and pair-saturating kernel pair that AVX2 and NEON both have: 4 rows × the
/// invoking file's `NR` (8) columns on the 8-column panels (slot 0), differing only in the
/// `SAT` flag passed to the file's tile `$rows::<R, SAT>` (R = 1..=4 rows). Implements
/// [`MicroKernel`] for the file's `Exact` and `PairSaturating` with tasks built as `$task`, and
/// defines the row-count dispatch they share; the SIMD bodies stay in the tier files.
macro_rules! exact_and_pair_saturating {
    (task: $task:expr, rows: $rows:ident) => {
        $crate::kernels::gemm::micro::exact_and_pair_saturating!(@kernel Exact, false, $task);
        $crate::kernels::gemm::micro::exact_and_pair_saturating!(
            @kernel PairSaturating, true, $task
        );

        /// # Safety
        /// The tier's target features on the host.
        unsafe fn dispatch_rows<const SAT: bool>(
            rows: usize,
            a: &[u8],
            kp: usize,
            b: &[i8],
            out: &mut [i32],
        ) -> u64 {
            $crate::kernels::tile::check_tile(rows, 4, NR, a, kp, b, out);
            // SAFETY: the caller guarantees the tier's features; lengths are checked above.
            unsafe {
                match rows {
                    1 => $rows::<1, SAT>(a, kp, b, out),
                    2 => $rows::<2, SAT>(a, kp, b, out),
                    3 => $rows::<3, SAT>(a, kp, b, out),
                    _ => $rows::<4, SAT>(a, kp, b, out),
                }
            }
        }
    };
    (@kernel $kernel:ident, $sat:literal, $task:expr) => {
        impl $crate::kernels::gemm::micro::MicroKernel for $kernel {
            const MR: usize = 4;
            const NR: usize = NR;
            const SLOT: usize = 0;
            const TASK: $crate::kernels::gemm::micro::TaskBuild = $task;

            unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64 {
                // SAFETY: forwarded (the tier's target features on the host).
                unsafe { dispatch_rows::<$sat>(rows, a, kp, b, out) }
            }
        }
    };
}
pub(crate) use exact_and_pair_saturating;
