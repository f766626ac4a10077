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
//! fit i32). Where no pair can reach an int16 bound ([`PairSums::Bounded`]: the weight's pair
//! bound times the largest activation byte, e.g. fbgemm's 7-bit activations) exact and
//! saturating sums agree, and AVX2 runs its `vpmaddubsw` tile (6 × 16, on 16-column panels)
//! for both. Pair-saturating sums (fbgemm on AVX2 hosts, NUMERICS §8) exist on x86 only as the
//! AVX2 `vpmaddubsw` kernel; a tier that cannot saturate (either VNNI) falls back to it, and no
//! exact request ever reaches it.
//! On aarch64: NEON (i16 products, `sadalp`) exact and pair-saturating (`sqadd` pairs, the same
//! lanes as `vpmaddubsw`), and dotprod (`sdot` on `a − 128`, exact), whose saturating requests go
//! to the NEON kernel. Both use 8-column panels (slot 0).
//!
//! Files. The public entry points and their operand types are here; [`pack`] builds the weight
//! panels and their cache, [`micro`] is the contract a tier's register tile implements (the only
//! part of `gemm` the tier files under `x86/` and `aarch64/` import), [`route`] picks a tier's
//! kernel, and [`driver`] runs it over blocked, parallel tasks into the output sinks.

mod driver;
pub(crate) mod micro;
mod pack;
mod route;

use super::reference::{self, PairBound};
use super::requant::Requant;
use crate::isa::{Isa, IsaError};
use driver::{Left, RightOperand, SharedOut, Sink};
pub use pack::PackCache;
use pack::Panels;
pub use route::kernel_name;
use route::{route, tiled_on};
use std::borrow::Cow;

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

/// Which kernels may compute a request's raw dot products: whether it asks for saturating int16
/// pairs, and whether any pair can reach an int16 bound at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSums {
    /// Exact sums, and some pair may pass an int16 bound: no `vpmaddubsw`.
    Exact,
    /// No pair can reach an int16 bound with the largest activation byte
    /// ([`PairBound::fits`]): exact and saturating sums agree, nothing saturates, and any
    /// kernel computes them (on AVX2, `vpmaddubsw`'s wider tile).
    Bounded,
    /// fbgemm's saturating pairs (NUMERICS §8), and some pair may saturate.
    Saturating,
}

impl PairSums {
    /// Whether the reference computes these sums with saturating pairs.
    pub fn saturating(self) -> bool {
        self == PairSums::Saturating
    }
}

/// Panics unless `m` rows of `a`, the weight and an output of `out_len` values fit together;
/// returns the [`pair_sums`] of the request.
fn checked(
    tier: Isa,
    m: usize,
    a: &[u8],
    w: &GemmWeights,
    out_len: usize,
    saturate_pairs: bool,
) -> PairSums {
    assert!(a.len() >= m * w.k && w.data.len() >= w.n * w.k && out_len >= m * w.n);
    assert!(w.zero_points.len() == 1 || w.zero_points.len() == w.n);
    pair_sums(tier, saturate_pairs, &a[..m * w.k], w)
}

/// The [`PairSums`] of a request on `tier` whose activation bytes all come from `x`: bounded
/// when no pair can reach an int16 bound with the largest byte of `x`. With fbgemm's default
/// `reduce_range` activations (at most 127) that is every weight: 127·256 < 32768. The bound is
/// only looked for where it changes the kernel: saturating requests, and exact ones on AVX2.
pub fn pair_sums(tier: Isa, saturate_pairs: bool, x: &[u8], w: &GemmWeights) -> PairSums {
    let asked = if saturate_pairs {
        PairSums::Saturating
    } else {
        PairSums::Exact
    };
    if !saturate_pairs && tier != Isa::Avx2 {
        return asked;
    }
    if w.pair_bound().fits(x.iter().fold(0, |m, &v| m.max(v))) {
        PairSums::Bounded
    } else {
        asked
    }
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
    let sums = checked(tier, m, a, w, out.len(), saturate_pairs);
    let sink = Sink::RequantByColumn {
        rq,
        out: SharedOut(out.as_mut_ptr()),
    };
    let route = route(tier, sums);
    // SAFETY: `check` just confirmed the host supports `tier`; `out` holds the `m·n` outputs.
    if let Some(saturated) = unsafe { tiled_on(route, m, Left::Rows(a), a_zp, w, sink) } {
        return Ok(saturated);
    }
    // The reference route: accumulators, then the element rule.
    let mut acc = vec![0i32; m * w.n];
    // SAFETY: `check` confirmed the host supports `tier`.
    let saturated = unsafe { run(tier, saturate_pairs, m, a, a_zp, w, &mut acc) };
    rq.apply_runs(tier, &acc, 1, w.n, out);
    Ok(saturated)
}

/// [`reference::gemm_u8_i8_i32`] on `tier`; an error when the host lacks it.
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
    let sums = checked(tier, m, a, w, acc.len(), saturate_pairs);
    let sink = Sink::Acc(SharedOut(acc.as_mut_ptr()));
    // SAFETY: forwarded from this function's contract; `acc` holds the `m·n` outputs.
    unsafe { tiled_on(route(tier, sums), m, Left::Rows(a), a_zp, w, sink) }.unwrap_or_else(|| {
        reference::gemm_u8_i8_i32(
            m,
            w.n,
            w.k,
            a,
            a_zp,
            w.data,
            w.zero_points,
            sums.saturating(),
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
    src: &'a [u8],
    bases: &'a [usize],
    offsets: &'a [usize],
    run: usize,
}

impl<'a> RunRows<'a> {
    /// The rows of `bases` × `offsets` runs of `run` bytes of `src`. Panics unless every run
    /// lies inside `src` (checked once here, so the per-row copies need no bounds checks).
    pub fn new(src: &'a [u8], bases: &'a [usize], offsets: &'a [usize], run: usize) -> Self {
        let reach = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
        if !bases.is_empty() && !offsets.is_empty() {
            let end = reach(bases)
                .checked_add(reach(offsets))
                .and_then(|e| e.checked_add(run));
            assert!(
                end.is_some_and(|e| e <= src.len()),
                "runs outside the source"
            );
        }
        Self {
            src,
            bases,
            offsets,
            run,
        }
    }

    pub fn k(&self) -> usize {
        self.offsets.len() * self.run
    }

    /// The buffer every run reads from.
    pub fn src(&self) -> &'a [u8] {
        self.src
    }

    /// Row `i` into `dst[..k]`, copied 16 bytes at a time (a run's tail as a last 16 bytes
    /// overlapping the previous copy): a `memcpy` call per run would cost more than the copy
    /// for the few dozen bytes of a run.
    #[inline(always)]
    fn gather(&self, i: usize, dst: &mut [u8]) {
        let (run, base) = (self.run, self.bases[i]);
        for (d, &off) in dst.chunks_exact_mut(run).zip(self.offsets) {
            // SAFETY: `new` checked that every base + offset + run lies inside `src`.
            let s = unsafe { self.src.get_unchecked(base + off..base + off + run) };
            if run < 16 {
                d.copy_from_slice(s);
                continue;
            }
            for (d, s) in d.chunks_exact_mut(16).zip(s.chunks_exact(16)) {
                d.copy_from_slice(s);
            }
            if run % 16 != 0 {
                // The tail as one more 16-byte copy, overlapping the last whole one.
                d[run - 16..].copy_from_slice(&s[run - 16..]);
            }
        }
    }
}

/// The product of `m` rows gathered by `a` (zero point `a_zp`) with the weight `w`, written
/// transposed: `out`'s element `c·m + i` is `Σ_k (a[i,k] − a_zp)·(w[c,k] − w_zp[c])` (pair
/// saturating as in [`reference::gemm_u8_i8_i32`] when asked), or its requantization as channel
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
    let sums = pair_sums(tier, saturate_pairs, a.src(), w);
    let sink = out.sink(m * n, true);
    let route = route(tier, sums);
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
    let saturated = reference::gemm_u8_i8_i32(
        m,
        n,
        k,
        &rows,
        a_zp,
        w.data,
        zps,
        sums.saturating(),
        &mut acc,
    );
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
        tier,
        b: *b,
        zero_points: [b.zero_point - 128],
    };
    // SAFETY: forwarded from this function's contract.
    if unsafe {
        tiled_on(
            route(tier, PairSums::Exact),
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
    /// The tier the panels are packed with.
    tier: Isa,
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
        Cow::Owned(Panels::from_kmajor_u8(
            self.tier,
            self.b.data,
            self.b.n,
            self.b.k,
            nr,
        ))
    }
    fn zero_points(&self) -> &[i32] {
        &self.zero_points
    }
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

#[cfg(test)]
mod tests {
    use super::RunRows;

    /// Rows are the runs in tap order, for runs shorter than, equal to and longer than a
    /// 16-byte copy (tails overlapping the last whole copy).
    #[test]
    fn gathered_rows_are_the_runs_in_order() {
        let src: Vec<u8> = (0..=255).collect();
        for run in [1, 7, 16, 21, 32, 45] {
            let (bases, offsets) = ([0, 3, 60], [0, 50, 100]);
            let rows = RunRows::new(&src, &bases, &offsets, run);
            for (i, &b) in bases.iter().enumerate() {
                let mut got = vec![0u8; rows.k()];
                rows.gather(i, &mut got);
                let want: Vec<u8> = offsets
                    .iter()
                    .flat_map(|&o| src[b + o..b + o + run].iter().copied())
                    .collect();
                assert_eq!(got, want, "run {run}, row {i}");
            }
        }
    }

    /// A run past the end of the source is refused when the rows are described, before any
    /// unchecked copy could read it.
    #[test]
    #[should_panic(expected = "runs outside the source")]
    fn runs_past_the_source_are_refused() {
        let src = [0u8; 64];
        let _ = RunRows::new(&src, &[0, 40], &[0, 8], 17);
    }
}
