//! Channels-last depthwise convolution, for many channels on small planes (MobileNet's 28×28,
//! 14×14 and 7×7 stages): the accumulators of [`super::reference::conv_u8_i8_i32`], requantized and
//! written NCHW.
//!
//! Why a second depthwise kernel. [`super::depthwise`] runs one channel's plane at a time; on a
//! 7×7 plane of 960 channels each plane's setup (phase planes, corrections, a requantization
//! call) costs more than its 441 multiply-adds. Here the input is laid out once as
//! `[H + 2p, W + 2p, C]` (the implicit GEMM's layout, padding written as the zero-point byte), so
//! every tap of an output position is a run of `C` contiguous bytes and the lanes run along the
//! channels: one pass per position for all channels. Blocks of positions are requantized with
//! channels along the columns (the GEMM epilogue's lanes) and transposed back to NCHW.
//!
//! Scope ([`supports`]): one output channel per input channel, 1-D or 2-D, every weight zero
//! point 0, and no pair that could saturate under `Im2colPairs` (checked per call with the
//! input's largest byte, as [`super::depthwise`] does). The sums are then exact integers, so
//! their order does not matter. The portable loop is compiled plain, for AVX2 and for AVX-512
//! per tier (`hwc_equals_reference_on_every_tier` in the integration tests); the AVX-512 one
//! runs four positions at a time so each tap's widened weights are loaded once for the four.

use super::buffers::sized;
use super::geometry::{Operands, PairModel};
use super::implicit::{Plane, pad_channels_last};
use crate::isa::{Isa, IsaError};
use crate::kernels::reference::PairBound;
use crate::kernels::requant::{Requant, TileBlock};
use crate::kernels::transpose::transpose;
use rayon::prelude::*;
use std::cell::Cell;

/// Whether this kernel computes `op`: depthwise with one output per channel, 1-D or 2-D,
/// symmetric weights, and sums that cannot saturate under the pair model.
pub fn supports(op: &Operands) -> bool {
    let g = op.g;
    let shape_fits = g.groups == g.in_channels
        && g.out_channels == g.in_channels
        && matches!(g.input.len(), 1 | 2);
    if !shape_fits || op.w_zp.iter().any(|&z| z != 0) {
        return false;
    }
    if op.model != PairModel::Im2colPairs {
        return true;
    }
    let x_max = op.x.iter().copied().max().unwrap_or(0).max(op.x_zp as u8);
    // Two products of at most 127 × 128 each cannot leave i16, whatever the weights (fbgemm's
    // `reduce_range` activations): no need to bound every channel's pairs.
    if x_max <= 127 {
        return true;
    }
    let taps = g.kernel.iter().product::<usize>().max(1);
    op.w.chunks(taps)
        .all(|w| PairBound::of(w.chunks(2)).fits(x_max))
}

/// Positions per block: accumulated, requantized and stored together (and a parallel task).
const BLOCK: usize = 16;

/// Channels summed together in registers.
const LANES: usize = 64;

/// The conv of `op` ([`supports`]) on `tier`, requantized by `rq` into `out` (`[N, C, positions]`).
pub fn conv_u8_i8_u8_on(
    tier: Isa,
    op: &Operands,
    rq: &Requant,
    out: &mut [u8],
) -> Result<(), IsaError> {
    tier.check()?;
    debug_assert!(supports(op));
    let g = op.g;
    let (c, positions) = (g.in_channels, g.out_positions());
    let p = Plane::of(g);
    let [hp, wp] = p.padded();
    let in_plane = p.input[0] * p.input[1];
    assert!(op.x.len() >= g.batch * c * in_plane && out.len() >= g.batch * c * positions);
    if c == 0 || positions == 0 {
        return Ok(());
    }
    let taps = p.kernel[0] * p.kernel[1];
    // The thread's buffers, taken and put back at the end: allocating them per call cost more
    // than the sums on 7×7 planes (zeroing and page faults). Every element is written below.
    let mut scratch = SCRATCH.take();
    let Scratch {
        wt,
        konst,
        padded,
        hwc,
    } = &mut scratch;
    // Weights tap-major ([taps][C], widened once) and each channel's `−x_zp·Σw` correction.
    let wt = sized(wt, taps * c);
    for (ch, w) in op.w.chunks_exact(taps).take(c).enumerate() {
        for (t, &v) in w.iter().enumerate() {
            wt[t * c + ch] = v as i32;
        }
    }
    let konst = sized(konst, c);
    for (k, w) in konst.iter_mut().zip(op.w.chunks_exact(taps)) {
        *k = -op.x_zp * w.iter().map(|&v| v as i32).sum::<i32>();
    }
    // Byte offsets of each tap from a position's first byte, and of each position.
    let line = wp * c;
    let tap_offsets: Vec<usize> = (0..taps)
        .map(|t| {
            let (ky, kx) = (t / p.kernel[1], t % p.kernel[1]);
            ky * p.dilation[0] * line + kx * p.dilation[1] * c
        })
        .collect();
    let bases: Vec<usize> = (0..positions)
        .map(|i| {
            let (oy, ox) = (i / p.output[1], i % p.output[1]);
            oy * p.stride[0] * line + ox * p.stride[1] * c
        })
        .collect();
    let padded = sized(padded, hp * line);
    let hwc = sized(hwc, positions * c);
    for n in 0..g.batch {
        let x = &op.x[n * c * in_plane..][..c * in_plane];
        pad_channels_last(x, c, &p, op.x_zp as u8, padded);
        let block = |(b, ys): (usize, &mut [u8])| {
            let bases = &bases[b * BLOCK..][..ys.len() / c];
            // Each task's own accumulators (also taken and put back): `run` writes them all.
            let mut acc_buf = ACC.take();
            let acc = sized(&mut acc_buf, bases.len() * c);
            let sums = Sums {
                x: padded,
                wt,
                konst,
                tap_offsets: &tap_offsets,
                bases,
            };
            sums.run(tier, acc);
            let tile = TileBlock {
                acc,
                acc_stride: c,
                rows: bases.len(),
                cols: c,
                first_channel: 0,
                by_row: false,
                out: ys.as_mut_ptr(),
                out_stride: c,
            };
            // SAFETY: the block's rows are `ys`, this task's alone; `rq` holds the C channels.
            unsafe { requant_columns(tier, rq, &tile) };
            ACC.set(acc_buf);
        };
        if rayon::current_num_threads() > 1 && positions > BLOCK {
            hwc.par_chunks_mut(BLOCK * c).enumerate().for_each(block);
        } else {
            hwc.chunks_mut(BLOCK * c).enumerate().for_each(block);
        }
        let y = &mut out[n * c * positions..][..c * positions];
        transpose(hwc, c, positions, c, y, positions);
    }
    SCRATCH.set(scratch);
    Ok(())
}

/// A thread's reused buffers of [`conv_u8_i8_u8_on`].
#[derive(Default)]
struct Scratch {
    wt: Vec<i32>,
    konst: Vec<i32>,
    padded: Vec<u8>,
    hwc: Vec<u8>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
    /// One block's accumulators (blocks may run on other threads than the call's).
    static ACC: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// One block of positions' sums over the padded channels-last input.
struct Sums<'a> {
    x: &'a [u8],
    /// `[taps][C]` weights.
    wt: &'a [i32],
    /// `[C]` window-independent corrections.
    konst: &'a [i32],
    tap_offsets: &'a [usize],
    bases: &'a [usize],
}

impl Sums<'_> {
    /// `acc[p][ch] = konst[ch] + Σ_t x[bases[p] + tap_offsets[t] + ch]·wt[t][ch]` on `tier`.
    fn run(&self, tier: Isa, acc: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if tier == Isa::Avx512Vnni && tier.is_available() {
            // SAFETY: the host has the tier, which includes AVX-512 F/BW/VL/VNNI, AVX2 and FMA.
            return unsafe { self.avx512(acc) };
        }
        #[cfg(target_arch = "x86_64")]
        if tier.is_x86_simd() && tier.is_available() {
            // SAFETY: the host has the tier, which includes AVX2 and FMA.
            return unsafe { self.avx2(acc) };
        }
        let _ = tier;
        self.portable(acc, 0);
    }

    /// The loop every tier compiles: per position and run of [`LANES`] channels, the
    /// corrections, then tap by tap the run's bytes times the tap's weights (exact i32 sums),
    /// held in a fixed-size array the compiler keeps in registers across the taps.
    /// Channels from `first` on (the AVX-512 body hands its partial run here).
    #[inline(always)]
    fn portable(&self, acc: &mut [i32], first: usize) {
        let c = self.konst.len();
        for (a, &base) in acc.chunks_exact_mut(c).zip(self.bases) {
            for j0 in (first..c).step_by(LANES) {
                let n = LANES.min(c - j0);
                if n == LANES {
                    let mut s: [i32; LANES] = self.konst[j0..][..LANES].try_into().unwrap();
                    for (t, &off) in self.tap_offsets.iter().enumerate() {
                        let x: &[u8; LANES] =
                            self.x[base + off + j0..][..LANES].try_into().unwrap();
                        let w: &[i32; LANES] = self.wt[t * c + j0..][..LANES].try_into().unwrap();
                        for l in 0..LANES {
                            s[l] += x[l] as i32 * w[l];
                        }
                    }
                    a[j0..j0 + LANES].copy_from_slice(&s);
                    continue;
                }
                let a = &mut a[j0..j0 + n];
                a.copy_from_slice(&self.konst[j0..j0 + n]);
                for (t, &off) in self.tap_offsets.iter().enumerate() {
                    let x = &self.x[base + off + j0..][..n];
                    let w = &self.wt[t * c + j0..][..n];
                    for ((a, &x), &w) in a.iter_mut().zip(x).zip(w) {
                        *a += x as i32 * w;
                    }
                }
            }
        }
    }

    /// # Safety
    /// The host must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(&self, acc: &mut [i32]) {
        self.portable(acc, 0);
    }

    /// [`Sums::portable`] with each full run of 64 channels in four zmm accumulators: a tap's
    /// bytes widened to i32 lanes times its weights and added by `vpdpwssd` (each lane's high
    /// half is 0 in x, so the pair sum is the one product, exact): one µop where `vpmaddwd` and
    /// `vpaddd` take two. A partial last run takes the portable loop.
    ///
    /// # Safety
    /// The host must support AVX-512 F, BW, VL and VNNI, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn avx512(&self, acc: &mut [i32]) {
        let c = self.konst.len();
        let full = c / LANES * LANES;
        if full < c {
            self.portable(acc, full);
        }
        let last = self.tap_offsets.iter().max().copied().unwrap_or(0);
        // Every byte read is x[base + off + j0 .. + 64] with off <= last, j0 + 64 <= c.
        assert!(self.bases.iter().all(|&b| b + last + c <= self.x.len()));
        // Four positions at a time share each tap's weight loads (per position, 64 channels'
        // i32 weights are as many bytes as their activations widened: the loads bound it).
        let mut quads = acc.chunks_exact_mut(4 * c).zip(self.bases.chunks_exact(4));
        for (a, bases) in quads.by_ref() {
            for j0 in (0..full).step_by(LANES) {
                // SAFETY: reads in bounds by the assert above; `a` holds 4·c values.
                unsafe { self.run_avx512::<4>(a, bases, j0) };
            }
        }
        let done = self.bases.len() / 4 * 4;
        for (a, base) in acc[done * c..].chunks_exact_mut(c).zip(&self.bases[done..]) {
            for j0 in (0..full).step_by(LANES) {
                // SAFETY: as above; `a` holds c values.
                unsafe { self.run_avx512::<1>(a, std::slice::from_ref(base), j0) };
            }
        }
    }

    /// Channels `j0..j0 + 64` of the `P` positions at `bases` into `a` (`P` rows of C), the
    /// taps' weights loaded once for all `P`.
    ///
    /// # Safety
    /// As [`Sums::avx512`]; `bases` holds `P` positions whose reads are in bounds, `a` holds
    /// `P·c` values and `j0 + 64 <= c`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn run_avx512<const P: usize>(&self, a: &mut [i32], bases: &[usize], j0: usize) {
        use std::arch::x86_64::*;
        let c = self.konst.len();
        // SAFETY: forwarded from this function's contract (`wt`/`konst` hold taps·c and c).
        unsafe {
            let k = self.konst.as_ptr().add(j0);
            let konst = [0, 1, 2, 3].map(|q| _mm512_loadu_si512(k.add(16 * q).cast()));
            let mut s = [konst; P];
            for (t, &off) in self.tap_offsets.iter().enumerate() {
                let w = self.wt.as_ptr().add(t * c + j0);
                let wv = [0, 1, 2, 3].map(|q| _mm512_loadu_si512(w.add(16 * q).cast()));
                for (s, &base) in s.iter_mut().zip(bases) {
                    let x = self.x.as_ptr().add(base + off + j0);
                    for (q, s) in s.iter_mut().enumerate() {
                        let xv = _mm512_cvtepu8_epi32(_mm_loadu_si128(x.add(16 * q).cast()));
                        // High halves: 0 in x (a byte), w's sign in w, so the pair sum is
                        // x·w exactly, added to the lane in i32.
                        *s = _mm512_dpwssd_epi32(*s, xv, wv[q]);
                    }
                }
            }
            for (p, s) in s.iter().enumerate() {
                for (q, s) in s.iter().enumerate() {
                    _mm512_storeu_si512(a.as_mut_ptr().add(p * c + j0 + 16 * q).cast(), *s);
                }
            }
        }
    }
}

/// `tile` (channels along the columns) requantized by the tier's lanes.
///
/// # Safety
/// As [`TileBlock`]; `rq` must hold the block's channels.
unsafe fn requant_columns(tier: Isa, rq: &Requant, tile: &TileBlock) {
    #[cfg(target_arch = "x86_64")]
    if tier == Isa::Avx512Vnni && tier.is_available() {
        // SAFETY: forwarded; the host has AVX-512 F/BW/VL.
        return unsafe { requant_avx512(rq, tile) };
    }
    #[cfg(target_arch = "x86_64")]
    if tier.is_x86_simd() && tier.is_available() {
        // SAFETY: forwarded; the host has AVX2.
        return unsafe { requant_avx2(rq, tile) };
    }
    let _ = tier;
    // SAFETY: forwarded from this function's contract.
    unsafe { rq.apply_tile_block_portable(tile) }
}

/// # Safety
/// As [`requant_columns`], on a host with AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
unsafe fn requant_avx512(rq: &Requant, tile: &TileBlock) {
    // SAFETY: forwarded from this function's contract.
    unsafe { crate::kernels::x86::avx512_requant::apply_tile_block(rq, tile) }
}

/// # Safety
/// As [`requant_columns`], on a host with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn requant_avx2(rq: &Requant, tile: &TileBlock) {
    // SAFETY: forwarded from this function's contract.
    unsafe { crate::kernels::x86::avx2_requant::tile_block(rq, tile) }
}
