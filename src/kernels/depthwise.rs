//! Depthwise convolution (one input channel per group, `m` output channels per input channel,
//! 1-D or 2-D): the accumulators and saturated-pair count of [`super::conv_ref::conv_u8_i8_i32`], computed
//! directly instead of through im2col and a GEMM.
//!
//! Why a kernel of its own. Through the im2col GEMM a depthwise conv is one GEMM per channel with
//! N = m and K = taps: the transposes, the im2col copy and the tiny tiles cost far more than the
//! few multiply-adds per output (MobileNet v2 spent most of its int8 time there).
//!
//! Design. Per (image, input channel) the plane is copied once into a scratch buffer padded with
//! the raw zero-point byte (what the reference's im2col writes for padded taps) and split into `s`
//! column phases for a column stride `s`: phase `r` holds padded columns `r, r+s, r+2s, …`, so the
//! tap at column offset `kx·d` reads phase `(kx·d) mod s` from index `ox + (kx·d) div s`:
//! contiguous bytes along the output row for every tap, stride and dilation. Rows are not split (a
//! row stride only scales the row index). Each output row is computed in chunks of `L` outputs
//! held in `[i32; L]` arrays, walking the taps in row-major order two at a time, so the compiler
//! keeps a chunk in vector registers over all taps. The two raw u8×s8 products fit i16; their sum
//! is the reference's pair (saturated to i16 and counted when that changes it under `Im2colPairs`,
//! kept whole under `Exact`), and an odd last tap is alone. The zero-point corrections are the
//! reference's, from the channel's weight sum and, when the weight zero point is not 0, the
//! window's byte sum (padded bytes included, as in the reference). Phase rows carry enough trailing
//! zero-point bytes that the last chunk of a row reads in bounds; its lanes past the row end are
//! dropped from the outputs and from the saturation count.
//!
//! Tiers. The body is `#[inline(always)]` and generic over `L`; it is compiled plain for the scalar
//! tier (L = 8, whatever vectors the target's baseline has), under `avx2` for the AVX2 and AVX-VNNI
//! tiers (L = 16) and under `avx512f,avx512bw` for AVX-512 VNNI (L = 32). On aarch64 NEON is
//! baseline, so the NEON and dotprod tiers run the plain body with L = 16.
//!
//! `TapChannelPairs` with one channel per group has no pair to saturate and only skips padded taps,
//! which contribute exactly 0: it is `Exact` here.

use super::conv_ref::{ConvGeometry, PairModel, sized};
use crate::isa::{Isa, IsaError};
use std::cell::Cell;

/// Whether this kernel runs `g`: one input channel per group, 1 or 2 spatial dims.
pub fn supports(g: &ConvGeometry) -> bool {
    g.groups == g.in_channels && matches!(g.input.len(), 1 | 2)
}

/// [`conv_ref::conv_u8_i8_i32`] for a depthwise `g` ([`supports`]) on `tier`: the same
/// accumulators and saturated-pair count; an error when the host lacks the tier.
///
/// [`conv_ref::conv_u8_i8_i32`]: super::conv_ref::conv_u8_i8_i32
#[allow(clippy::too_many_arguments)]
pub fn conv_depthwise_on(
    tier: Isa,
    g: &ConvGeometry,
    x: &[u8],
    x_zp: i32,
    w: &[i8],
    w_zp: &[i32],
    model: PairModel,
    acc: &mut [i32],
) -> Result<u64, IsaError> {
    tier.check()?;
    let args = Args::new(g, x, x_zp, w, w_zp, model);
    // SAFETY: `check` just confirmed the host supports `tier`.
    Ok(unsafe { run(tier, &args, acc) })
}

/// The operands of one call, validated.
struct Args<'a> {
    g: &'a ConvGeometry,
    x: &'a [u8],
    x_zp: i32,
    w: &'a [i8],
    w_zp: &'a [i32],
    saturate: bool,
}

impl<'a> Args<'a> {
    fn new(
        g: &'a ConvGeometry,
        x: &'a [u8],
        x_zp: i32,
        w: &'a [i8],
        w_zp: &'a [i32],
        model: PairModel,
    ) -> Args<'a> {
        assert!(supports(g), "not a 1-D or 2-D depthwise conv: {g:?}");
        assert!(g.out_channels.is_multiple_of(g.in_channels));
        let in_positions: usize = g.input.iter().product();
        assert!(x.len() >= g.batch * g.in_channels * in_positions);
        assert!(w.len() >= g.out_channels * g.taps());
        assert!(w_zp.len() == 1 || w_zp.len() == g.out_channels);
        Args {
            g,
            x,
            x_zp,
            w,
            w_zp,
            saturate: model == PairModel::Im2colPairs,
        }
    }
}

/// # Safety
/// The host must support `tier`.
unsafe fn run(tier: Isa, args: &Args, acc: &mut [i32]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    match tier {
        // SAFETY (both): forwarded from this function's contract.
        Isa::Avx2 | Isa::AvxVnni => return unsafe { avx2(args, acc) },
        Isa::Avx512Vnni => return unsafe { avx512(args, acc) },
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(tier, Isa::Neon | Isa::Dotprod) {
        return drive::<16>(args, acc);
    }
    let _ = tier;
    drive::<8>(args, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2(args: &Args, acc: &mut [i32]) -> u64 {
    drive::<16>(args, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn avx512(args: &Args, acc: &mut [i32]) -> u64 {
    drive::<32>(args, acc)
}

/// One spatial dim of the conv.
#[derive(Debug, Clone, Copy)]
struct Axis {
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    output: usize,
}

/// Where every tap of a chunk reads in the phase planes of one input channel.
struct Plan {
    rows: Axis,
    cols: Axis,
    /// Bytes per phase row: the output chunks rounded up to `L` plus the widest tap shift.
    width: usize,
    /// Rows per phase plane: the padded input height.
    height: usize,
    /// Per tap (row-major), the offset of the byte it reads for output (0, 0).
    taps: Vec<usize>,
}

impl Plan {
    fn new(g: &ConvGeometry, lanes: usize) -> Plan {
        let axis = |d: usize| Axis {
            input: g.input[d],
            kernel: g.kernel[d],
            stride: g.stride[d],
            padding: g.padding[d],
            dilation: g.dilation[d],
            output: g.output[d],
        };
        // A 1-D conv is a 2-D one with a single row.
        let (rows, cols) = match g.input.len() {
            1 => (
                Axis {
                    input: 1,
                    kernel: 1,
                    stride: 1,
                    padding: 0,
                    dilation: 1,
                    output: 1,
                },
                axis(0),
            ),
            _ => (axis(0), axis(1)),
        };
        let shift = |kx: usize| kx * cols.dilation / cols.stride;
        let width = cols.output.div_ceil(lanes) * lanes + shift(cols.kernel - 1);
        let height = rows.input + 2 * rows.padding;
        let taps = (0..rows.kernel)
            .flat_map(|ky| (0..cols.kernel).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| {
                let phase = kx * cols.dilation % cols.stride;
                (phase * height + ky * rows.dilation) * width + shift(kx)
            })
            .collect();
        Plan {
            rows,
            cols,
            width,
            height,
            taps,
        }
    }

    fn plane_bytes(&self) -> usize {
        self.cols.stride * self.height * self.width
    }

    /// Writes the phase planes of one input channel `x` (`[rows.input, cols.input]`).
    #[inline(always)]
    fn fill(&self, x: &[u8], pad: u8, planes: &mut [u8]) {
        planes.fill(pad);
        let (s, p, w) = (self.cols.stride, self.cols.padding, self.cols.input);
        for phase in 0..s {
            // Phase column j is padded column j·s + phase, i.e. input column j·s + phase − p: the
            // first real one is j0. The same for every row, so no division runs per row.
            let j0 = p.saturating_sub(phase).div_ceil(s);
            let col0 = j0 * s + phase - p;
            if j0 >= self.width || col0 >= w {
                continue;
            }
            let n = (self.width - j0).min((w - col0).div_ceil(s));
            for (y, src) in x.chunks_exact(w).enumerate() {
                let row = (phase * self.height + y + self.rows.padding) * self.width + j0;
                gather(&mut planes[row..row + n], &src[col0..], s);
            }
        }
    }
}

/// `dst[j] = src[j·s]` for every `j` of `dst`.
#[inline(always)]
fn gather(dst: &mut [u8], src: &[u8], s: usize) {
    // A constant stride lets the compiler unroll whole blocks into plain byte moves: with a
    // strided iterator, MobileNet's stride-2 convs spent more time gathering than in their taps.
    // (The blocks are still scalar loads; an even/odd deinterleave of both phases would not be.)
    let done = match s {
        1 => {
            dst.copy_from_slice(&src[..dst.len()]);
            dst.len()
        }
        2 => gather_blocks::<2>(dst, src),
        3 => gather_blocks::<3>(dst, src),
        _ => 0,
    };
    for (d, &v) in dst[done..]
        .iter_mut()
        .zip(src[done * s..].iter().step_by(s))
    {
        *d = v;
    }
}

/// [`gather`] over whole blocks of 16 outputs with stride `S`; returns how many it wrote.
#[inline(always)]
fn gather_blocks<const S: usize>(dst: &mut [u8], src: &[u8]) -> usize {
    const B: usize = 16;
    let mut done = 0;
    for (d, c) in dst.chunks_exact_mut(B).zip(src.chunks_exact(B * S)) {
        for (i, v) in d.iter_mut().enumerate() {
            *v = c[i * S];
        }
        done += B;
    }
    done
}

thread_local! {
    /// Per-thread phase planes, reused across calls (see `conv_ref`'s scratch).
    static PLANES: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The whole conv, `L` outputs per chunk.
#[inline(always)]
fn drive<const L: usize>(a: &Args, acc: &mut [i32]) -> u64 {
    let g = a.g;
    let plan = Plan::new(g, L);
    let (taps, positions) = (plan.taps.len(), g.out_positions());
    let m = g.out_channels / g.in_channels;
    let in_plane = plan.rows.input * plan.cols.input;
    assert!(acc.len() >= g.batch * g.out_channels * positions);
    let mut scratch = PLANES.take();
    let planes = sized(&mut scratch, plan.plane_bytes());
    let mut saturated = 0u64;
    for n in 0..g.batch {
        for c in 0..g.in_channels {
            let x = &a.x[(n * g.in_channels + c) * in_plane..][..in_plane];
            plan.fill(x, a.x_zp as u8, planes);
            for o in c * m..(c + 1) * m {
                let w = &a.w[o * taps..][..taps];
                let zw = a.w_zp[if a.w_zp.len() == 1 { 0 } else { o }];
                let wsum: i32 = w.iter().map(|&v| v as i32).sum();
                let konst = taps as i32 * a.x_zp * zw - a.x_zp * wsum;
                let out = &mut acc[(n * g.out_channels + o) * positions..][..positions];
                let ch = Channel {
                    plan: &plan,
                    planes,
                    w,
                    zw,
                    konst,
                };
                saturated += match (a.saturate, zw != 0) {
                    (false, false) => ch.run::<L, false, false>(out),
                    (false, true) => ch.run::<L, false, true>(out),
                    (true, false) => ch.run::<L, true, false>(out),
                    (true, true) => ch.run::<L, true, true>(out),
                };
            }
        }
    }
    PLANES.set(scratch);
    saturated
}

/// One output channel over its input channel's phase planes.
struct Channel<'a> {
    plan: &'a Plan,
    planes: &'a [u8],
    /// The channel's weights, one per tap.
    w: &'a [i8],
    zw: i32,
    /// `taps·x_zp·w_zp − x_zp·Σw`: the window-independent corrections.
    konst: i32,
}

/// The running sums of one chunk of `L` outputs.
struct Lanes<const L: usize> {
    /// Raw pair sums (clamped when saturating).
    raw: [i32; L],
    /// Window byte sums (only kept when the weight zero point is not 0).
    xsum: [i32; L],
    /// Saturated pairs per lane.
    sat: [i32; L],
}

impl<const L: usize> Lanes<L> {
    /// Adds the pair `(a·wa, b·wb)` of two taps, or the lone tap `a` when `!pair`.
    #[inline(always)]
    fn add<const SAT: bool, const XSUM: bool>(
        &mut self,
        a: &[u8; L],
        wa: i8,
        b: &[u8; L],
        wb: i8,
        pair: bool,
    ) {
        let (wa, wb) = (wa as i16, if pair { wb as i16 } else { 0 });
        for l in 0..L {
            // |u8 × s8| ≤ 32640: each product fits i16, their sum fits i32.
            let (pa, pb) = (a[l] as i16 * wa, b[l] as i16 * wb);
            if SAT {
                // The pair in saturating i16 (fbgemm's `vpmaddubsw`): it saturated exactly when
                // the wrapping i16 sum differs. Kept in i16 lanes, twice as many per vector.
                let c = pa.saturating_add(pb);
                self.sat[l] += (c != pa.wrapping_add(pb)) as i32;
                self.raw[l] += c as i32;
            } else {
                self.raw[l] += pa as i32 + pb as i32;
            }
            if XSUM {
                self.xsum[l] += a[l] as i32 + if pair { b[l] as i32 } else { 0 };
            }
        }
    }
}

impl Channel<'_> {
    /// Writes `out` (`[rows.output, cols.output]`); returns the saturated pairs.
    #[inline(always)]
    fn run<const L: usize, const SAT: bool, const XSUM: bool>(&self, out: &mut [i32]) -> u64 {
        let p = self.plan;
        let load = |at: usize| -> &[u8; L] {
            self.planes[at..at + L]
                .try_into()
                .expect("slice of L bytes")
        };
        let pairs = p.taps.chunks_exact(2).zip(self.w.chunks_exact(2));
        let lone = p.taps.chunks_exact(2).remainder().first();
        let lone_w = self.w.chunks_exact(2).remainder().first();
        let mut saturated = 0u64;
        for (oy, out_row) in out.chunks_exact_mut(p.cols.output).enumerate() {
            let row = oy * p.rows.stride * p.width;
            for (i, out) in out_row.chunks_mut(L).enumerate() {
                let base = row + i * L;
                let mut s = Lanes {
                    raw: [0; L],
                    xsum: [0; L],
                    sat: [0; L],
                };
                for (t, w) in pairs.clone() {
                    s.add::<SAT, XSUM>(load(base + t[0]), w[0], load(base + t[1]), w[1], true);
                }
                if let (Some(&t), Some(&w)) = (lone, lone_w) {
                    let a = load(base + t);
                    s.add::<SAT, XSUM>(a, w, a, 0, false);
                }
                // Constant indices only, with the row end as a lane mask: slicing the sums by
                // the tail length kept them in memory across the taps instead of in registers.
                let (mut done, mut sat) = ([0i32; L], 0i32);
                for (l, d) in done.iter_mut().enumerate() {
                    *d = s.raw[l] - self.zw * s.xsum[l] + self.konst;
                    sat += if l < out.len() { s.sat[l] } else { 0 };
                }
                out.copy_from_slice(&done[..out.len()]);
                saturated += sat as u64;
            }
        }
        saturated
    }
}
