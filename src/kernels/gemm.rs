//! The u8×s8→i32 GEMM behind quantized Linear and Conv, dispatched over ISA tiers.
//!
//! Design note. Every tier computes `acc[i·n + c] = Σ_k (a[i,k] − a_zp)·(w[c,k] − w_zp[c])` the way
//! [`reference::gemm_u8_i8_i32`] does: raw dot products (pair-saturating only when asked), then
//! the exact zero-point corrections from row and column sums. The SIMD tiers only change how the
//! raw dots are computed, so the corrections are shared here and cannot drift between tiers.
//!
//! Layout. The weight is packed once into panels of `NR` columns: for each group of 4 consecutive
//! k, `NR` × 4 bytes (column-major within the group), K padded to a multiple of 4 and N to a
//! multiple of `NR` with zero weights. This is the `vpdpbusd` operand order, and also the
//! `vpmaddubsw` one, whose pairs (k, k+1) stay aligned to even k because groups start at k ≡ 0
//! (mod 4). Zero weights add nothing and never saturate, so padding is invisible. Activations are
//! copied per block of rows into a zero-padded buffer of row stride `kp` so the kernels read whole
//! groups without bounds checks at the tails; an implicit conv's rows are gathered into it from
//! runs of its padded channels-last input ([`RunRows`]).
//!
//! Output. Each corrected tile goes to a sink: i32 rows, their transpose (a conv computed
//! positions × channels lands in NCHW), or bytes requantized in the tile's epilogue with the
//! channel along the rows or the columns, so no i32 matrix is stored at all.
//!
//! Blocking. Rows are taken `MC` at a time (the packed block stays in L2); for each panel, tiles of
//! up to `MR` rows run over the whole K (the panel stays in L1/L2). Every output is produced by one
//! tile in a fixed order, so results are independent of blocking and of the tier.
//!
//! Semantics per tier. Exact sums: AVX-512 VNNI (zmm `vpdpbusd`), AVX-VNNI (ymm `vpdpbusd`, on
//! the AVX-512 kernel's panels), AVX2 (operands widened to i16 and `vpmaddwd`, whose pair sums
//! fit i32). Pair-saturating sums (fbgemm on AVX2 hosts, NUMERICS §8) exist on x86 only as the
//! AVX2 `vpmaddubsw` kernel; a tier that cannot saturate (either VNNI) falls back to it, and no
//! exact request ever reaches it.
//! On aarch64: NEON (i16 products, `sadalp`) exact and pair-saturating (`sqadd` pairs, the same
//! lanes as `vpmaddubsw`), and dotprod (`sdot` on `a − 128`, exact), whose saturating requests go
//! to the NEON kernel. Both use 8-column panels (slot 0).

use super::reference::{self, PairBound};
use super::requant::{Requant, TileBlock};
use super::transpose::transpose_raw;
use crate::isa::{self, Isa, IsaError};
use rayon::prelude::*;
use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

/// Rows of activations packed per block (a multiple of every kernel's `MR`).
const MC: usize = 192;

/// The weight operand: `data` is `[n, k]` row-major, `zero_points` has one entry or `n`.
#[derive(Clone, Copy)]
pub struct GemmWeights<'a> {
    pub data: &'a [i8],
    pub n: usize,
    pub k: usize,
    pub zero_points: &'a [i32],
    /// Where packed panels are kept between calls (packing per call when `None`).
    pub cache: Option<&'a PackCache>,
}

impl GemmWeights<'_> {
    /// The [`PairBound`] of the weight's pairs of k (an odd last k alone), kept in the cache
    /// when there is one.
    fn pair_bound(&self) -> PairBound {
        let compute = || {
            let rows = self.data[..self.n * self.k].chunks_exact(self.k.max(1));
            PairBound::of(rows.flat_map(|row| row.chunks(2)))
        };
        match self.cache {
            Some(cache) => *cache.pair_bound.get_or_init(compute),
            None => compute(),
        }
    }
}

/// Panics unless `m` rows of `a`, the weight and an output of `out_len` values fit together;
/// returns [`needs_saturation`] for them.
fn checked(m: usize, a: &[u8], w: &GemmWeights, out_len: usize, saturate_pairs: bool) -> bool {
    assert!(a.len() >= m * w.k && w.data.len() >= w.n * w.k && out_len >= m * w.n);
    assert!(w.zero_points.len() == 1 || w.zero_points.len() == w.n);
    needs_saturation(saturate_pairs, &a[..m * w.k], w)
}

/// `saturate_pairs`, unless no pair can reach an int16 bound with the largest activation byte
/// that `x` holds ([`PairBound::fits`]): the exact sums are then the saturating ones and nothing
/// saturates, so the exact kernels (VNNI's among them) run the request. With fbgemm's default
/// `reduce_range` activations (at most 127) that is every weight: 127·256 < 32768.
fn needs_saturation(saturate_pairs: bool, x: &[u8], w: &GemmWeights) -> bool {
    saturate_pairs && !w.pair_bound().fits(x.iter().fold(0, |m, &v| m.max(v)))
}

/// Packed panels of one weight, per panel width, built on first use.
///
/// Equality ignores the contents: the panels are a pure function of the weight they belong to.
#[derive(Clone, Default)]
pub struct PackCache {
    /// Indexed by [`MicroKernel::SLOT`]: 8-column panels (AVX2, NEON, dotprod), 32-column panels
    /// (AVX-512).
    slots: [OnceLock<Box<Panels>>; 2],
    /// [`GemmWeights::pair_bound`].
    pair_bound: OnceLock<PairBound>,
}

impl PartialEq for PackCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for PackCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built: Vec<usize> = self
            .slots
            .iter()
            .filter_map(|s| s.get().map(|p| p.nr))
            .collect();
        write!(f, "PackCache{built:?}")
    }
}

/// A weight packed into `NR`-column panels (see the module note).
#[derive(Clone)]
pub(crate) struct Panels {
    nr: usize,
    /// Columns and depth of the operand.
    n: usize,
    k: usize,
    /// K rounded up to a multiple of 4.
    kp: usize,
    data: Vec<i8>,
    /// `Σ_k w[c,k]` per column.
    colsum: Vec<i32>,
}

impl Panels {
    fn new(w: &GemmWeights, nr: usize) -> Panels {
        let (n, k) = (w.n, w.k);
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(nr);
        let mut data = vec![0i8; blocks * kp * nr];
        for c in 0..n {
            let (block, col) = (c / nr, c % nr);
            let row = &w.data[c * k..(c + 1) * k];
            for (kk, &v) in row.iter().enumerate() {
                data[block * kp * nr + (kk / 4) * nr * 4 + col * 4 + kk % 4] = v;
            }
        }
        let colsum = (0..n)
            .map(|c| w.data[c * k..(c + 1) * k].iter().map(|&v| v as i32).sum())
            .collect();
        Panels {
            nr,
            n,
            k,
            kp,
            data,
            colsum,
        }
    }

    /// Panels of the s8 operand `b[kk, c] − 128` for a u8 `b` stored k-major (`[k, n]`, the
    /// channels × positions layout of an NCHW activation): XOR 0x80 is that shift, bytewise.
    /// Four rows at a time are interleaved into the panels' 4-byte column groups (16 columns at
    /// a time by SSE2 unpacks on x86-64, one u32 per column otherwise and for the tails); rows
    /// past `k` read as zero weights.
    fn from_kmajor_u8(b: &[u8], n: usize, k: usize, nr: usize) -> Panels {
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(nr);
        let mut data = vec![0i8; blocks * kp * nr];
        let mut colsum = vec![0i32; n];
        // A padding row: 0x80 flips to the zero weight.
        let pad = vec![0x80u8; n];
        for g in 0..kp / 4 {
            let rows: [&[u8]; 4] = std::array::from_fn(|q| {
                b.get((4 * g + q) * n..(4 * g + q + 1) * n)
                    .filter(|_| 4 * g + q < k)
                    .unwrap_or(&pad)
            });
            // One pass per group: a padding row adds 0x80 − 128 = 0.
            let [r0, r1, r2, r3] = rows;
            for ((((s, &x0), &x1), &x2), &x3) in colsum.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                *s += x0 as i32 + x1 as i32 + x2 as i32 + x3 as i32 - 512;
            }
            for block in 0..blocks {
                let c0 = block * nr;
                let cols = nr.min(n - c0);
                let dst = &mut data[block * kp * nr + g * nr * 4..][..cols * 4];
                let rows = rows.map(|r| &r[c0..c0 + cols]);
                #[cfg(target_arch = "x86_64")]
                let done = super::x86::sse2_pack::interleave4(rows, dst);
                #[cfg(not(target_arch = "x86_64"))]
                let done = 0;
                let [r0, r1, r2, r3] = rows.map(|r| &r[done..]);
                for ((((d, &x0), &x1), &x2), &x3) in dst[done * 4..]
                    .chunks_exact_mut(4)
                    .zip(r0)
                    .zip(r1)
                    .zip(r2)
                    .zip(r3)
                {
                    let word = u32::from_le_bytes([x0, x1, x2, x3]) ^ 0x8080_8080;
                    d.copy_from_slice(&word.to_le_bytes().map(|v| v as i8));
                }
            }
        }
        Panels {
            nr,
            n,
            k,
            kp,
            data,
            colsum,
        }
    }
}

/// A register-tile kernel over packed operands.
pub(crate) trait MicroKernel {
    /// Most rows per tile.
    const MR: usize;
    /// Columns per tile (the panel width).
    const NR: usize;
    /// Index of this kernel's panels in [`PackCache`].
    const SLOT: usize;
    /// [`task`] built with this kernel's target features ([`task_avx2`], [`task_avx512`], or
    /// `task::<Self>` where the baseline has them).
    const TASK: TaskFn;

    /// Raw dot products of `rows` (1..=MR) packed activation rows `a` (stride `kp`) with one
    /// panel `b` (`kp·NR` bytes) into `out[r·NR + c]`; returns the saturated pairs.
    ///
    /// # Safety
    /// The host must support the kernel's target features.
    unsafe fn tile(rows: usize, a: &[u8], kp: usize, b: &[i8], out: &mut [i32]) -> u64;

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

/// The kernel a tier runs for the requested semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Reference,
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

fn route(tier: Isa, saturate_pairs: bool) -> Route {
    #[cfg(target_arch = "x86_64")]
    match (tier, saturate_pairs) {
        (Isa::Avx512Vnni, false) => return Route::Avx512Vnni,
        (Isa::AvxVnni, false) => return Route::AvxVnni,
        (Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni, true) => return Route::Avx2Saturating,
        (Isa::Avx2, false) => return Route::Avx2Exact,
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    match (tier, saturate_pairs) {
        (Isa::Neon | Isa::Dotprod, true) => return Route::NeonSaturating,
        (Isa::Neon, false) => return Route::NeonExact,
        (Isa::Dotprod, false) => return Route::Dotprod,
        _ => {}
    }
    let _ = (tier, saturate_pairs);
    Route::Reference
}

/// The kernel name a tier uses for the requested semantics (for reports and benches).
pub fn kernel_name(tier: Isa, saturate_pairs: bool) -> &'static str {
    match route(tier, saturate_pairs) {
        Route::Reference => "reference",
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

/// [`reference::gemm_u8_i8_i32`] on the tier in force ([`isa::selected`]).
pub fn gemm_u8_i8_i32(
    m: usize,
    a: &[u8],
    a_zp: i32,
    w: &GemmWeights,
    saturate_pairs: bool,
    acc: &mut [i32],
) -> u64 {
    // SAFETY: `selected` only returns tiers the host supports.
    unsafe { run(isa::selected(), saturate_pairs, m, a, a_zp, w, acc) }
}

/// [`gemm_on`] requantized in the tiles' epilogue: `out[i·n + c]` is `rq` applied to
/// accumulator `(i, c)` as channel `c` (a Linear layer's output features), and no i32 matrix is
/// stored. Returns the saturated pairs.
#[allow(clippy::too_many_arguments)]
pub fn gemm_u8_i8_u8_on(
    tier: Isa,
    m: usize,
    a: &[u8],
    a_zp: i32,
    w: &GemmWeights,
    saturate_pairs: bool,
    rq: &Requant,
    out: &mut [u8],
) -> Result<u64, IsaError> {
    tier.check()?;
    let saturate_pairs = checked(m, a, w, out.len(), saturate_pairs);
    let sink = Sink::RequantByColumn {
        rq,
        out: SharedOut(out.as_mut_ptr()),
    };
    let route = route(tier, saturate_pairs);
    // SAFETY: `check` just confirmed the host supports `tier`; `out` holds the `m·n` outputs.
    if let Some(saturated) = unsafe { tiled_on(route, m, Left::Rows(a), a_zp, w, sink) } {
        return Ok(saturated);
    }
    // The reference route: accumulators, then the element rule.
    let mut acc = vec![0i32; m * w.n];
    // SAFETY: `check` confirmed the host supports `tier`.
    let saturated = unsafe { run(tier, saturate_pairs, m, a, a_zp, w, &mut acc) };
    rq.apply_runs(&acc, 1, w.n, out);
    Ok(saturated)
}

/// [`gemm_u8_i8_i32`] on an explicit tier; an error when the host lacks it.
pub fn gemm_on(
    tier: Isa,
    m: usize,
    a: &[u8],
    a_zp: i32,
    w: &GemmWeights,
    saturate_pairs: bool,
    acc: &mut [i32],
) -> Result<u64, IsaError> {
    tier.check()?;
    // SAFETY: `check` just confirmed the host supports `tier`.
    Ok(unsafe { run(tier, saturate_pairs, m, a, a_zp, w, acc) })
}

/// # Safety
/// The host must support `tier`.
unsafe fn run(
    tier: Isa,
    saturate_pairs: bool,
    m: usize,
    a: &[u8],
    a_zp: i32,
    w: &GemmWeights,
    acc: &mut [i32],
) -> u64 {
    let saturate_pairs = checked(m, a, w, acc.len(), saturate_pairs);
    let sink = Sink::Acc(SharedOut(acc.as_mut_ptr()));
    // SAFETY: forwarded from this function's contract; `acc` holds the `m·n` outputs.
    unsafe { tiled_on(route(tier, saturate_pairs), m, Left::Rows(a), a_zp, w, sink) }
        .unwrap_or_else(|| {
            reference::gemm_u8_i8_i32(
                m,
                w.n,
                w.k,
                a,
                a_zp,
                w.data,
                w.zero_points,
                saturate_pairs,
                acc,
            )
        })
}

/// The right operand of [`gemm_weights_kmajor_on`]: u8 values stored k-major (`[k, n]`, row `kk`
/// at `data[kk·n..]`) with one zero point, e.g. an NCHW activation's channels × positions.
#[derive(Clone, Copy)]
pub struct KMajorU8<'a> {
    pub data: &'a [u8],
    pub n: usize,
    pub k: usize,
    pub zero_point: i32,
}

/// `w[o,k] as u8 ^ 0x80`, i.e. `w + 128` as u8: the form [`gemm_weights_kmajor_on`] takes int8
/// weights in, made once per weight.
pub fn flip_weights(w: &[i8]) -> Vec<u8> {
    w.iter().map(|&v| v as u8 ^ 0x80).collect()
}

/// `acc[o·n + p] = Σ_kk (w[o,kk] − w_zp)·(b[kk,p] − b_zp)`, exact, on `tier` (an error when
/// the host lacks it), with the int8 weights as the row operand: a convolution's accumulators
/// come out channels × positions (NCHW) with no transposes.
///
/// The kernels take u8 rows × s8 panels, so both operands are shifted by 128 (`w_flipped` is
/// [`flip_weights`], the panels hold `b − 128`) and the zero points with them; in exact
/// arithmetic `(w + 128 − (w_zp + 128))·(b − 128 − (b_zp − 128))` is the same product. There is
/// no pair-saturating form: the shift changes which int16 pairs would overflow.
pub fn gemm_weights_kmajor_on(
    tier: Isa,
    rows: usize,
    w_flipped: &[u8],
    w_zp: i32,
    b: &KMajorU8,
    acc: &mut [i32],
) -> Result<(), IsaError> {
    tier.check()?;
    // SAFETY: `check` just confirmed the host supports `tier`.
    unsafe { run_kmajor(tier, rows, w_flipped, w_zp, b, Output::Acc(acc)) };
    Ok(())
}

/// [`gemm_weights_kmajor_on`] with the requantization fused into the tiles' epilogue:
/// `out[o·n + p]` is `rq` applied to accumulator `(o, p)` as channel `first_channel + o`, so no
/// i32 matrix is ever stored.
#[allow(clippy::too_many_arguments)]
pub fn gemm_weights_kmajor_requant_on(
    tier: Isa,
    rows: usize,
    w_flipped: &[u8],
    w_zp: i32,
    b: &KMajorU8,
    rq: &Requant,
    first_channel: usize,
    out: &mut [u8],
) -> Result<(), IsaError> {
    tier.check()?;
    let out = Output::Requant {
        rq,
        first_channel,
        out,
    };
    // SAFETY: `check` just confirmed the host supports `tier`.
    unsafe { run_kmajor(tier, rows, w_flipped, w_zp, b, out) };
    Ok(())
}

/// What a GEMM producing a conv's `[channels, positions]` block writes: the accumulators, or
/// their bytes requantized with row (channel) `i` as channel `first_channel + i` of `rq`.
pub enum Output<'a> {
    Acc(&'a mut [i32]),
    Requant {
        rq: &'a Requant,
        first_channel: usize,
        out: &'a mut [u8],
    },
}

impl<'a> Output<'a> {
    /// The task sink writing this output, which must hold `len` values: by rows, or by
    /// `columns` when the GEMM's columns are the output's rows (channels).
    fn sink(&mut self, len: usize, columns: bool) -> Sink<'a> {
        match self {
            Output::Acc(acc) => {
                assert!(acc.len() >= len);
                let acc = SharedOut(acc.as_mut_ptr());
                if columns {
                    Sink::AccColumns(acc)
                } else {
                    Sink::Acc(acc)
                }
            }
            Output::Requant {
                rq,
                first_channel,
                out,
            } => {
                assert!(out.len() >= len);
                let (rq, first_channel, out) = (*rq, *first_channel, SharedOut(out.as_mut_ptr()));
                if columns {
                    Sink::RequantColumns {
                        rq,
                        first_channel,
                        out,
                    }
                } else {
                    Sink::Requant {
                        rq,
                        first_channel,
                        out,
                    }
                }
            }
        }
    }
}

/// A left operand gathered from runs of one buffer, an implicit im2col: row `i` is the runs
/// `src[bases[i] + offsets[t]..][..run]` for each `t` in turn, so `k = offsets.len()·run`
/// (a conv's position `i` over a padded channels-last input: one run of channels per tap).
#[derive(Clone, Copy)]
pub struct RunRows<'a> {
    pub src: &'a [u8],
    pub bases: &'a [usize],
    pub offsets: &'a [usize],
    pub run: usize,
}

impl RunRows<'_> {
    pub fn k(&self) -> usize {
        self.offsets.len() * self.run
    }

    /// Row `i` into `dst` (`k` bytes), copied 16 bytes at a time: a `memcpy` call per run
    /// would cost more than the copy for the few dozen bytes of a run.
    #[inline(always)]
    fn gather(&self, i: usize, dst: &mut [u8]) {
        for (d, &off) in dst.chunks_exact_mut(self.run).zip(self.offsets) {
            let s = &self.src[self.bases[i] + off..][..self.run];
            let whole = s.len() / 16 * 16;
            for (d, s) in d.chunks_exact_mut(16).zip(s.chunks_exact(16)) {
                d.copy_from_slice(s);
            }
            for (d, &s) in d[whole..].iter_mut().zip(&s[whole..]) {
                *d = s;
            }
        }
    }
}

/// The left operand of the tiled driver.
#[derive(Clone, Copy)]
enum Left<'a> {
    /// Row-major `[m, k]`.
    Rows(&'a [u8]),
    Runs(RunRows<'a>),
}

/// The product of `m` rows gathered by `a` (zero point `a_zp`) with the weight `w`, written
/// transposed: `out`'s element `c·m + i` is `Σ_k (a[i,k] − a_zp)·(w[c,k] − w_zp[c])` (pair
/// saturating as in [`gemm_u8_i8_i32`] when asked), or its requantization as channel
/// `first_channel + c`, on `tier` (an error when the host lacks it). A convolution over
/// channels-last positions thus lands in NCHW with no im2col matrix and no transposes of its
/// own. Returns the saturated pairs.
pub fn gemm_runs_on(
    tier: Isa,
    m: usize,
    a: &RunRows,
    a_zp: i32,
    w: &GemmWeights,
    saturate_pairs: bool,
    mut out: Output,
) -> Result<u64, IsaError> {
    tier.check()?;
    let (n, k) = (w.n, w.k);
    assert!(a.k() == k && w.data.len() >= n * k);
    assert!(w.zero_points.len() == 1 || w.zero_points.len() == n);
    // Every byte the rows gather comes from `src`.
    let saturate_pairs = needs_saturation(saturate_pairs, a.src, w);
    let sink = out.sink(m * n, true);
    let route = route(tier, saturate_pairs);
    // SAFETY: `check` just confirmed the host supports `tier`; `sink` holds the `m·n` outputs.
    if let Some(saturated) = unsafe { tiled_on(route, m, Left::Runs(*a), a_zp, w, sink) } {
        return Ok(saturated);
    }
    // The scalar tier: the rows made explicit, the reference GEMM, then the columns written out.
    let mut rows = vec![0u8; m * k];
    for (i, row) in rows.chunks_exact_mut(k.max(1)).enumerate() {
        a.gather(i, row);
    }
    let mut acc = vec![0i32; m * n];
    let zps = w.zero_points;
    let saturated =
        reference::gemm_u8_i8_i32(m, n, k, &rows, a_zp, w.data, zps, saturate_pairs, &mut acc);
    let mut column = vec![0i32; m];
    for c in 0..n {
        for (v, row) in column.iter_mut().zip(acc.chunks_exact(n)) {
            *v = row[c];
        }
        match &mut out {
            Output::Acc(acc) => acc[c * m..(c + 1) * m].copy_from_slice(&column),
            Output::Requant {
                rq,
                first_channel,
                out,
            } => rq.apply_channel_portable(&column, *first_channel + c, &mut out[c * m..][..m]),
        }
    }
    Ok(saturated)
}

/// # Safety
/// The host must support `tier`.
unsafe fn run_kmajor(
    tier: Isa,
    rows: usize,
    w_flipped: &[u8],
    w_zp: i32,
    b: &KMajorU8,
    mut out: Output,
) {
    let (n, k) = (b.n, b.k);
    assert!(w_flipped.len() >= rows * k && b.data.len() >= k * n);
    let sink = out.sink(rows * n, false);
    if n == 0 {
        return;
    }
    let operand = KMajorOperand {
        b: *b,
        zero_points: [b.zero_point - 128],
    };
    // SAFETY: forwarded from this function's contract.
    if unsafe {
        tiled_on(
            route(tier, false),
            rows,
            Left::Rows(w_flipped),
            w_zp + 128,
            &operand,
            sink,
        )
    }
    .is_some()
    {
        return;
    }
    // The scalar tier: the defining sum, accumulated row by row of `b`, then the element rule.
    let mut scratch = vec![0i32; n];
    for o in 0..rows {
        let acc = match &mut out {
            Output::Acc(acc) => &mut acc[o * n..(o + 1) * n],
            Output::Requant { .. } => &mut scratch[..],
        };
        acc.fill(0);
        for (kk, brow) in b.data.chunks_exact(n).take(k).enumerate() {
            let wv = (w_flipped[o * k + kk] ^ 0x80) as i8 as i32 - w_zp;
            for (o, &x) in acc.iter_mut().zip(brow) {
                *o += wv * (x as i32 - b.zero_point);
            }
        }
        if let Output::Requant {
            rq,
            first_channel,
            out,
        } = &mut out
        {
            rq.apply_channel_portable(&scratch, *first_channel + o, &mut out[o * n..(o + 1) * n]);
        }
    }
}

struct KMajorOperand<'a> {
    b: KMajorU8<'a>,
    /// The panels' zero point, shifted with them.
    zero_points: [i32; 1],
}

impl RightOperand for KMajorOperand<'_> {
    fn n(&self) -> usize {
        self.b.n
    }
    fn k(&self) -> usize {
        self.b.k
    }
    fn panels(&self, nr: usize, _slot: usize) -> Cow<'_, Panels> {
        Cow::Owned(Panels::from_kmajor_u8(self.b.data, self.b.n, self.b.k, nr))
    }
    fn zero_points(&self) -> &[i32] {
        &self.zero_points
    }
}

/// The right-hand operand of the tiled driver: where its panels for a kernel come from.
trait RightOperand {
    fn n(&self) -> usize;
    fn k(&self) -> usize;
    /// Panels `nr` columns wide (`slot` indexes a [`PackCache`]).
    fn panels(&self, nr: usize, slot: usize) -> Cow<'_, Panels>;
    /// One zero point or one per column.
    fn zero_points(&self) -> &[i32];
}

impl RightOperand for GemmWeights<'_> {
    fn n(&self) -> usize {
        self.n
    }
    fn k(&self) -> usize {
        self.k
    }
    fn panels(&self, nr: usize, slot: usize) -> Cow<'_, Panels> {
        match self.cache {
            Some(cache) => {
                Cow::Borrowed(cache.slots[slot].get_or_init(|| Box::new(Panels::new(self, nr))))
            }
            None => Cow::Owned(Panels::new(self, nr)),
        }
    }
    fn zero_points(&self) -> &[i32] {
        self.zero_points
    }
}

/// `route`'s SIMD kernel run by the blocked driver, or `None` for the reference route (and for
/// empty operands, which have nothing to tile: zero-width panels cannot be chunked).
///
/// # Safety
/// The host must support the route's tier; `sink` must hold the `m·n` outputs, which nothing
/// else accesses meanwhile.
unsafe fn tiled_on(
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
        use super::x86::{avx2_gemm, avx512vnni_gemm, avxvnni_gemm};
        match route {
            Route::Reference => None,
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
        use super::aarch64::{dotprod_gemm, neon_gemm};
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

/// The blocked driver shared by every SIMD kernel: output tiles are split into fixed tasks (a
/// block of up to MC rows × some panels), each run by `K::TASK`; every output is computed by
/// one task with exact sums, so the result is the same for any thread count and task order.
///
/// # Safety
/// As [`tiled_on`], for `K`'s target features.
unsafe fn tiled<K: MicroKernel>(
    m: usize,
    a: Left,
    a_zp: i32,
    b: &dyn RightOperand,
    sink: Sink,
) -> u64 {
    let (n, k) = (b.n(), b.k());
    let panels = b.panels(K::NR, K::SLOT);
    let zero_points = b.zero_points();
    debug_assert_eq!((panels.nr, panels.n, panels.k), (K::NR, n, k));
    let kp = panels.kp;
    // The corrections split into a per-column constant and a per-column multiple of the row sum
    // (wrapping: equal to the reference wherever its i32 sums do not overflow), laid out so the
    // per-row loop of `task` is a plain element-wise pass the compiler vectorises.
    // Both are padded with zeros to whole panels, so `task` corrects whole tile rows: a fixed
    // trip count stores each row in full registers, which the epilogue's loads then forward
    // from (partial-register stores would stall them).
    let blocks = panels.data.len() / (kp * K::NR);
    let zw: Vec<i32> = (0..blocks * K::NR)
        .map(|c| match zero_points.len() {
            _ if c >= n => 0,
            1 => zero_points[0],
            _ => zero_points[c],
        })
        .collect();
    let kz = k as i32;
    let colterm: Vec<i32> = (0..blocks * K::NR)
        .map(|c| {
            let colsum = panels.colsum.get(c).copied().unwrap_or(0);
            a_zp.wrapping_mul(colsum)
                .wrapping_sub(kz.wrapping_mul(a_zp).wrapping_mul(zw[c]))
        })
        .collect();
    let parallel = m * n * k >= PARALLEL_MACS && rayon::current_num_threads() > 1;
    // On one thread a task takes all panels, so each row block is packed once.
    let per_task = if parallel { TASK_PANELS } else { blocks.max(1) };
    let tasks: Vec<(usize, usize)> = (0..m)
        .step_by(MC)
        .flat_map(|m0| (0..blocks).step_by(per_task).map(move |p0| (m0, p0)))
        .collect();
    let job = Job {
        m,
        n,
        k,
        kp,
        per_task,
        left: a,
        panels: &panels,
        colterm: &colterm,
        rowsums: zw.iter().any(|&z| z != 0),
        zw: &zw,
        sink,
    };
    // SAFETY: forwarded from this function's contract; tasks write disjoint tiles of `acc`.
    let each = |t| unsafe { (K::TASK)(&job, t) };
    if parallel && tasks.len() > 1 {
        tasks.into_par_iter().map(each).sum()
    } else {
        tasks.into_iter().map(each).sum()
    }
}

/// What the tasks of one tiled GEMM share.
pub(crate) struct Job<'a> {
    m: usize,
    n: usize,
    k: usize,
    kp: usize,
    /// Panels per task.
    per_task: usize,
    left: Left<'a>,
    panels: &'a Panels,
    colterm: &'a [i32],
    zw: &'a [i32],
    /// Whether any `zw` is non-zero: otherwise the row sums are multiplied by 0 and not taken.
    rowsums: bool,
    sink: Sink<'a>,
}

/// Where the tasks put their corrected accumulators, row-major with `n` columns.
#[derive(Clone, Copy)]
enum Sink<'a> {
    Acc(SharedOut<i32>),
    /// Requantized to u8 in the tile epilogue, row `i` as channel `first_channel + i` (the rows
    /// of the k-major GEMM are a conv's output channels).
    Requant {
        rq: &'a Requant,
        first_channel: usize,
        out: SharedOut<u8>,
    },
    /// Requantized to u8 in the tile epilogue, column `c` as channel `c` (a Linear layer).
    RequantByColumn {
        rq: &'a Requant,
        out: SharedOut<u8>,
    },
    /// Transposed (`[n, m]`, column `c` at `c·m`): the rows of [`gemm_runs_on`] are a conv's
    /// positions and its columns the channels.
    AccColumns(SharedOut<i32>),
    /// Transposed and requantized, column `c` as channel `first_channel + c`.
    RequantColumns {
        rq: &'a Requant,
        first_channel: usize,
        out: SharedOut<u8>,
    },
}

/// One task of [`tiled`]: `(first row, first panel)`; returns the saturated pairs.
pub(crate) type TaskFn = unsafe fn(&Job, (usize, usize)) -> u64;

/// Packs the task's row block, runs `K`'s tiles over its panels and writes the corrected
/// accumulators. A plain function (not a closure) so that it can be compiled per ISA below:
/// closures do not inherit the target features of the function they are written in.
///
/// # Safety
/// The host must support `K`'s target features, and on x86-64 this must be compiled with AVX2
/// (as [`task_avx2`] and [`task_avx512`] are); `job.sink` must hold `m·n` values, and no other
/// task may write this task's tiles.
#[inline(always)]
pub(crate) unsafe fn task<K: MicroKernel>(job: &Job, (m0, p0): (usize, usize)) -> u64 {
    let (n, kp) = (job.n, job.kp);
    let mb = MC.min(job.m - m0);
    let (block, rowsum) = pack_rows(job, m0, mb, K::MR);
    let mut tile = vec![0i32; K::MR * K::NR];
    // Requantized column-sink rows are staged as bytes, `[mb, NR]`, and transposed into the
    // output once the panel is done (a byte transpose moves a quarter of an i32 one's data).
    let staged = matches!(job.sink, Sink::RequantColumns { .. });
    let mut bytes = vec![0u8; if staged { mb * K::NR } else { 0 }];
    let mut saturated = 0u64;
    let panels = job.panels.data.chunks_exact(kp * K::NR).enumerate();
    for (p, panel) in panels.skip(p0).take(job.per_task) {
        let c0 = p * K::NR;
        let cols = K::NR.min(n - c0);
        for r0 in (0..mb).step_by(K::MR) {
            let rows = K::MR.min(mb - r0);
            // SAFETY: forwarded from this function's contract.
            saturated += unsafe { K::tile(rows, &block[r0 * kp..], kp, panel, &mut tile) };
            for (r, row) in tile.chunks_exact_mut(K::NR).take(rows).enumerate() {
                let cols_at = c0..c0 + K::NR;
                let rs = rowsum[r0 + r];
                let terms = job.colterm[cols_at.clone()].iter().zip(&job.zw[cols_at]);
                for (t, (&ct, &z)) in row.iter_mut().zip(terms) {
                    *t = t.wrapping_sub(ct).wrapping_sub(z.wrapping_mul(rs));
                }
            }
            let at = Placed {
                i0: m0 + r0,
                rows,
                c0,
                cols,
            };
            // SAFETY: forwarded from this function's contract; `bytes` holds row r0 + rows.
            unsafe {
                store_tile::<K>(
                    job,
                    &tile,
                    at,
                    &mut bytes[if staged { r0 * K::NR } else { 0 }..],
                )
            };
        }
        if let Sink::RequantColumns { out, .. } = job.sink {
            // SAFETY: columns c0..c0 + cols, rows m0..m0 + mb of the transposed output belong
            // to this task; `bytes` holds its mb rows of NR.
            unsafe {
                transpose_raw(
                    bytes.as_ptr(),
                    K::NR,
                    mb,
                    cols,
                    out.ptr(c0 * job.m + m0),
                    job.m,
                )
            };
        }
    }
    saturated
}

/// Rows `m0..m0 + mb` of the left operand packed at stride `kp` (zero-padded, whole tiles of
/// `mr` rows), with their byte sums when the corrections need them.
#[inline(always)]
fn pack_rows(job: &Job, m0: usize, mb: usize, mr: usize) -> (Vec<u8>, Vec<i32>) {
    let (k, kp) = (job.k, job.kp);
    let mut block = vec![0u8; mb.div_ceil(mr) * mr * kp];
    let mut rowsum = vec![0i32; mb];
    for (r, sum) in rowsum.iter_mut().enumerate() {
        let row = &mut block[r * kp..r * kp + k];
        match job.left {
            Left::Rows(a) => row.copy_from_slice(&a[(m0 + r) * k..(m0 + r + 1) * k]),
            Left::Runs(a) => a.gather(m0 + r, row),
        }
        if job.rowsums {
            *sum = row.iter().map(|&v| v as i32).sum();
        }
    }
    (block, rowsum)
}

/// Where a corrected tile belongs: output rows `i0..i0 + rows`, columns `c0..c0 + cols`.
#[derive(Clone, Copy)]
struct Placed {
    i0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
}

/// Hands a corrected tile (`rows` rows of `NR` in `tile`) to the job's sink: copied or
/// scattered as i32, or requantized whole (each channel's constants loaded once) into the
/// output rows or, for a transposed output, into `staged` (the tile's rows of `NR` bytes).
///
/// # Safety
/// As [`task`], whose tile this is.
#[inline(always)]
unsafe fn store_tile<K: MicroKernel>(job: &Job, tile: &[i32], at: Placed, staged: &mut [u8]) {
    let Placed { i0, rows, c0, cols } = at;
    let n = job.n;
    let rows_of = || tile.chunks_exact(K::NR).take(rows).map(|r| &r[..cols]);
    // SAFETY (every use of `out`): the tile's rows i0.., columns c0..c0 + cols lie inside the
    // output (at (i, c), or at (c, i) for column sinks) and belong to this task only.
    let (rq, first, by_row, out, stride) = match job.sink {
        Sink::Acc(out) => {
            for (r, row) in rows_of().enumerate() {
                unsafe { out.slice((i0 + r) * n + c0, cols) }.copy_from_slice(row);
            }
            return;
        }
        Sink::AccColumns(out) => {
            for (r, row) in rows_of().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    unsafe { *out.ptr((c0 + c) * job.m + i0 + r) = v };
                }
            }
            return;
        }
        Sink::Requant {
            rq,
            first_channel,
            out,
        } => (
            rq,
            first_channel + i0,
            true,
            unsafe { out.ptr(i0 * n + c0) },
            n,
        ),
        Sink::RequantByColumn { rq, out } => (rq, c0, false, unsafe { out.ptr(i0 * n + c0) }, n),
        Sink::RequantColumns {
            rq, first_channel, ..
        } => (rq, first_channel + c0, false, staged.as_mut_ptr(), K::NR),
    };
    let block = TileBlock {
        acc: tile,
        acc_stride: K::NR,
        rows,
        cols,
        first_channel: first,
        by_row,
        out,
        out_stride: stride,
    };
    // SAFETY: the block's rows are this task's (see above; `staged` holds rows × NR bytes);
    // the host supports K's features by this function's contract.
    unsafe { K::requant_tile(rq, &block) };
}

/// [`task`] compiled for AVX2, so its own loops (row sums, corrections) are not SSE2 code.
///
/// # Safety
/// As [`task`], on a host with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn task_avx2<K: MicroKernel>(job: &Job, t: (usize, usize)) -> u64 {
    // SAFETY: forwarded from this function's contract.
    unsafe { task::<K>(job, t) }
}

/// [`task`] compiled for AVX-512.
///
/// # Safety
/// As [`task`], on a host with AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn task_avx512<K: MicroKernel>(job: &Job, t: (usize, usize)) -> u64 {
    // SAFETY: forwarded from this function's contract.
    unsafe { task::<K>(job, t) }
}

/// Panels per parallel task: 128 output columns of the AVX-512 kernel, 32 of the 8-wide ones.
const TASK_PANELS: usize = 4;

/// Below this many multiply-adds a GEMM runs on the calling thread (spawning costs more).
const PARALLEL_MACS: usize = 1 << 21;

/// The output matrix shared by the tasks of [`tiled`], each of which writes only its own tile.
struct SharedOut<T>(*mut T);

// Not derived: the derives would require `T: Copy` for a pointer that is always Copy.
impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}

// SAFETY: tasks write disjoint tiles (see `tiled`), and the matrix outlives them.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// # Safety
    /// `start..start + len` must be in bounds and written by no other task.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: forwarded from this function's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }

    /// # Safety
    /// `at` must be in bounds.
    unsafe fn ptr(&self, at: usize) -> *mut T {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.0.add(at) }
    }
}
