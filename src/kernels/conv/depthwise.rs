//! Depthwise convolution (one input channel per group, `m` output channels per input channel, 1-D
//! or 2-D): the accumulators and saturated-pair count of [`super::reference::conv_u8_i8_i32`],
//! computed directly instead of through im2col and a GEMM.
//!
//! Why a kernel of its own. Through the im2col GEMM a depthwise conv is one GEMM per channel with
//! N = m and K = taps: the transposes, the im2col copy and the tiny tiles cost far more than the
//! few multiply-adds per output (MobileNet v2 spent most of its int8 time there).
//!
//! Design. Per (image, input channel) the plane is copied once into scratch phase planes padded
//! with the raw zero-point byte (what the reference's im2col writes for padded taps): for strides
//! `(s_r, s_c)` there are `s_r·s_c` planes, plane `(r, c)` holding padded rows `r, r+s_r, …` and
//! columns `c, c+s_c, …`. Tap `(ky, kx)` of output `(oy, ox)` then reads plane
//! `((ky·d_r) mod s_r, (kx·d_c) mod s_c)` at row `oy + (ky·d_r) div s_r`, column
//! `ox + (kx·d_c) div s_c`. With phase rows `width = out_cols + reach` bytes wide, that is flat
//! index `oy·width + ox` plus a per-tap offset: every tap reads contiguous bytes along the flat
//! positions of the whole plane, for every stride and dilation. So a channel is computed over its
//! flat positions in chunks of `L`, rows run together (a 7×7 plane fills 64-lane chunks instead
//! of one short chunk per row); the `reach` positions past each row's end read the next row and
//! are dropped when the rows are compacted, from the outputs and from the saturation count. The
//! padding bytes of the planes are the same for every channel, so they are written once per call.
//!
//! Sums. The taps are walked in row-major order two at a time. The two raw u8×s8 products fit
//! i16; their sum is the reference's pair (saturated to i16 and counted when that changes it
//! under `Im2colPairs`, kept whole under `Exact`), and an odd last tap is alone. The zero-point
//! corrections are the reference's, from the channel's weight sum and, when the weight zero point
//! is not 0, the window's byte sum (padded bytes included, as in the reference). A channel whose
//! pair sums cannot leave i16 with its largest input byte (padding included; see
//! `reference::PairBound`) takes the exact sums even under `Im2colPairs`: the same integers, at the exact
//! kernel's speed. With fbgemm's default `reduce_range` activations (at most 127) that is every
//! channel, since 127·256 < 32768.
//!
//! Tiers. The portable body is `#[inline(always)]` and generic over `L`, holding a chunk in
//! `[i32; L]` arrays the compiler keeps in vector registers; it is compiled plain for the scalar
//! tier (L = 8, whatever vectors the target's baseline has), under `avx2` for the AVX2 and
//! AVX-VNNI tiers (L = 16) and on aarch64 for NEON and dotprod (L = 16, NEON is baseline). The
//! AVX-512 VNNI tier runs 64-lane chunks through hand-written kernels
//! ([`crate::kernels::x86::avx512_depthwise`]) for channels whose weight zero point is 0, the
//! portable body (L = 64) otherwise.
//!
//! Each finished output plane goes to a sink ([`conv_depthwise_with`]): `QConv::forward`
//! requantizes it while it is still in cache instead of in a pass over all accumulators.
//!
//! `TapChannelPairs` with one channel per group has no pair to saturate and only skips padded taps,
//! which contribute exactly 0: it is `Exact` here.

#[cfg(target_arch = "x86_64")]
use super::buffers::gather_avx512;
use super::buffers::{gather, sized};
use super::geometry::{ConvGeometry, PairModel};
use crate::isa::{Isa, IsaError};
use crate::kernels::reference::PairBound;
use std::cell::Cell;

/// Whether this kernel runs `g`: one input channel per group, 1 or 2 spatial dims.
pub fn supports(g: &ConvGeometry) -> bool {
    g.groups == g.in_channels && matches!(g.input.len(), 1 | 2)
}

/// [`reference::conv_u8_i8_i32`] for a depthwise conv ([`supports`]) on `tier`: the same
/// accumulators and saturated-pair count; an error when the host lacks the tier.
///
/// [`reference::conv_u8_i8_i32`]: super::reference::conv_u8_i8_i32
pub fn conv_depthwise_on(tier: Isa, op: &Operands, acc: &mut [i32]) -> Result<u64, IsaError> {
    let g = op.g;
    let positions = g.out_positions();
    assert!(acc.len() >= g.batch * g.out_channels * positions);
    conv_depthwise_with(tier, op, &mut |nc, plane| {
        let out = &mut acc[nc * positions..][..positions];
        for (oy, row) in out.chunks_exact_mut(plane.cols).enumerate() {
            row.copy_from_slice(plane.row(oy));
        }
    })
}

/// One finished output plane: row `oy` is `flat[oy·stride..][..cols]`.
pub struct Plane<'a> {
    pub flat: &'a [i32],
    pub stride: usize,
    pub cols: usize,
}

impl Plane<'_> {
    pub fn row(&self, oy: usize) -> &[i32] {
        &self.flat[oy * self.stride..][..self.cols]
    }
}

/// Receives each output plane's accumulators as it is finished, with its index
/// `n·out_channels + o`: a caller can requantize it while it is still in cache, straight from
/// the kernel's strided rows.
pub type Sink<'s> = &'s mut dyn FnMut(usize, Plane);

pub use super::geometry::Operands;

/// [`conv_depthwise_on`] handing each output plane to `sink` instead of writing them all.
pub fn conv_depthwise_with(tier: Isa, op: &Operands, sink: Sink) -> Result<u64, IsaError> {
    tier.check()?;
    op.check();
    // SAFETY: `check` just confirmed the host supports `tier`.
    Ok(unsafe { run(tier, op, sink) })
}

impl Operands<'_> {
    /// Panics unless the operands fit the geometry, which must be a supported one.
    fn check(&self) {
        let g = self.g;
        assert!(supports(g), "not a 1-D or 2-D depthwise conv: {g:?}");
        assert!(g.out_channels.is_multiple_of(g.in_channels));
        let in_positions: usize = g.input.iter().product();
        assert!(self.x.len() >= g.batch * g.in_channels * in_positions);
        assert!(self.w.len() >= g.out_channels * g.taps());
        assert!(self.w_zp.len() == 1 || self.w_zp.len() == g.out_channels);
    }
}

/// # Safety
/// The host must support `tier`.
unsafe fn run(tier: Isa, args: &Operands, sink: Sink) -> u64 {
    #[cfg(target_arch = "x86_64")]
    match tier {
        // SAFETY (both): forwarded from this function's contract.
        Isa::Avx2 | Isa::AvxVnni => return unsafe { avx2(args, sink) },
        Isa::Avx512Vnni => return unsafe { avx512(args, sink) },
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(tier, Isa::Neon | Isa::Dotprod) {
        return drive::<16, false>(args, sink, portable);
    }
    let _ = tier;
    drive::<8, false>(args, sink, portable)
}

/// The hand-written kernel of a tier for one channel, if it takes the channel: writes the
/// channel's flat accumulators (and saturation counts) and returns whether any pair saturated,
/// or returns `None` to leave the channel to the portable body.
type Fast = fn(&Channel, bool, &mut [i32], &mut [i32]) -> Option<bool>;

fn portable(_: &Channel, _: bool, _: &mut [i32], _: &mut [i32]) -> Option<bool> {
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2(args: &Operands, sink: Sink) -> u64 {
    drive::<16, false>(args, sink, portable)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn avx512(args: &Operands, sink: Sink) -> u64 {
    drive::<64, true>(args, sink, |ch, saturate, flat, sat| {
        use crate::kernels::x86::avx512_depthwise::{Chunks, exact, saturating};
        if ch.zw != 0 {
            return None;
        }
        let chunks = Chunks {
            planes: ch.planes,
            taps: &ch.plan.taps,
            w: ch.w,
            konst: ch.konst,
        };
        // SAFETY: this tier runs only where the host has AVX-512 F/BW and VNNI.
        Some(unsafe {
            if saturate {
                saturating(&chunks, flat, sat)
            } else {
                exact(&chunks, flat);
                false
            }
        })
    })
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

impl Axis {
    /// How far (in phase columns or rows) the last tap reads past the first.
    fn reach(&self) -> usize {
        (self.kernel - 1) * self.dilation / self.stride
    }

    /// Phase index `(k·d) mod s` and shift `(k·d) div s` of tap `k`.
    fn tap(&self, k: usize) -> (usize, usize) {
        let at = k * self.dilation;
        (at % self.stride, at / self.stride)
    }
}

/// Where every tap reads in the phase planes of one input channel, and how output positions
/// map onto them.
struct Plan {
    rows: Axis,
    cols: Axis,
    /// Bytes per phase row, `cols.output + cols.reach()`: a whole output row and its taps.
    width: usize,
    /// Rows per phase plane, `rows.output + rows.reach()`.
    height: usize,
    /// Per tap (row-major), the offset of the byte it reads for output (0, 0).
    taps: Vec<usize>,
    /// Per column phase, `(j0, c0, n)`: its real bytes are `n` phase columns from `j0`,
    /// gathered from input column `c0` on.
    col_runs: Vec<(usize, usize, usize)>,
    /// Positions computed per channel: `rows.output · width` rounded up to whole chunks.
    flat: usize,
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
        let width = cols.output + cols.reach();
        let height = rows.output + rows.reach();
        let taps = (0..rows.kernel)
            .flat_map(|ky| (0..cols.kernel).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| {
                let ((pr, sy), (pc, sx)) = (rows.tap(ky), cols.tap(kx));
                (pr * cols.stride + pc) * height * width + sy * width + sx
            })
            .collect();
        let (s, p, w) = (cols.stride, cols.padding, cols.input);
        let col_runs = (0..s)
            .map(|pc| {
                // Phase column j is padded column j·s + pc, i.e. input column j·s + pc − p: the
                // first real one is j0.
                let j0 = p.saturating_sub(pc).div_ceil(s);
                let col0 = j0 * s + pc - p;
                if j0 >= width || col0 >= w {
                    return (0, 0, 0);
                }
                (j0, col0, (width - j0).min((w - col0).div_ceil(s)))
            })
            .collect();
        Plan {
            rows,
            cols,
            width,
            height,
            taps,
            col_runs,
            flat: (rows.output * width).div_ceil(lanes) * lanes,
        }
    }

    /// The phase planes' bytes, with the slack the last chunk reads past the last plane.
    fn plane_bytes(&self) -> usize {
        let phases = self.rows.stride * self.cols.stride;
        phases * self.height * self.width + self.flat - self.rows.output * self.width
            + self.cols.reach()
    }

    /// Writes the phase planes of one input channel `x` (`[rows.input, cols.input]`): plane
    /// `(r, c)` holds padded row `i·s_r + r`, column `j·s_c + c` at `(i, j)`. The bytes it
    /// leaves alone are the padding, the same for every channel: `planes` is filled with the
    /// padding byte once per call, not per channel.
    /// With `WIDE` the rows are gathered with AVX-512 BW ([`gather_avx512`]): only for a
    /// caller compiled with it, on a host that has it.
    #[inline(always)]
    fn fill<const WIDE: bool>(&self, x: &[u8], planes: &mut [u8]) {
        let (rows, s) = (&self.rows, self.cols.stride);
        // Input row y is padded row y + p: phase (y + p) mod s_r, row (y + p) div s_r, stepped
        // rather than divided per row.
        let (mut pr, mut i) = (rows.padding % rows.stride, rows.padding / rows.stride);
        for src in x.chunks_exact(self.cols.input) {
            if i >= self.height {
                break;
            }
            for (pc, &(j0, col0, n)) in self.col_runs.iter().enumerate() {
                let row = ((pr * s + pc) * self.height + i) * self.width + j0;
                let (dst, src) = (&mut planes[row..row + n], &src[col0..]);
                #[cfg(target_arch = "x86_64")]
                if WIDE {
                    // SAFETY: `WIDE` is only set by `avx512`, compiled with AVX-512 F/BW/VL and
                    // run on hosts that have them (see `drive`).
                    unsafe { gather_avx512(dst, src, s) };
                    continue;
                }
                gather(dst, src, s);
            }
            pr += 1;
            if pr == rows.stride {
                (pr, i) = (0, i + 1);
            }
        }
    }
}

thread_local! {
    /// Per-thread phase planes, reused across calls (see `conv::reference`'s scratch).
    static PLANES: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// Per-thread flat accumulators and saturation counts of one channel.
    static FLAT: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// The whole conv, `L` outputs per chunk; hands each channel's plane to `sink`. `WIDE` (phase
/// planes gathered with AVX-512 BW) only from a caller compiled with AVX-512 F/BW/VL on a host
/// that has them.
#[inline(always)]
fn drive<const L: usize, const WIDE: bool>(a: &Operands, sink: Sink, fast: Fast) -> u64 {
    let g = a.g;
    let plan = Plan::new(g, L);
    let taps = plan.taps.len();
    let m = g.out_channels / g.in_channels;
    let in_plane = plan.rows.input * plan.cols.input;
    let (oh, ow, width) = (plan.rows.output, plan.cols.output, plan.width);
    let (mut plane_buf, mut flat_buf) = (PLANES.take(), FLAT.take());
    let planes = sized(&mut plane_buf, plan.plane_bytes());
    planes.fill(a.x_zp as u8);
    let (flat, sat) = sized(&mut flat_buf, 2 * plan.flat).split_at_mut(plan.flat);
    let saturate = a.model == PairModel::Im2colPairs;
    let mut saturated = 0u64;
    for n in 0..g.batch {
        for c in 0..g.in_channels {
            let x = &a.x[(n * g.in_channels + c) * in_plane..][..in_plane];
            plan.fill::<WIDE>(x, planes);
            // The largest byte the taps read (padding included), when pairs may saturate.
            let x_max = if saturate {
                x.iter().fold(a.x_zp as u8, |m, &v| m.max(v))
            } else {
                0
            };
            for o in c * m..(c + 1) * m {
                let w = &a.w[o * taps..][..taps];
                let saturate = saturate && !PairBound::of(w.chunks(2)).fits(x_max);
                let zw = a.w_zp[if a.w_zp.len() == 1 { 0 } else { o }];
                let wsum: i32 = w.iter().map(|&v| v as i32).sum();
                let ch = Channel {
                    plan: &plan,
                    planes,
                    w,
                    zw,
                    konst: taps as i32 * a.x_zp * zw - a.x_zp * wsum,
                };
                let any =
                    fast(&ch, saturate, flat, sat).unwrap_or_else(|| match (saturate, zw != 0) {
                        (false, false) => ch.run::<L, false, false>(flat, sat),
                        (false, true) => ch.run::<L, false, true>(flat, sat),
                        (true, false) => ch.run::<L, true, false>(flat, sat),
                        (true, true) => ch.run::<L, true, true>(flat, sat),
                    });
                // The positions past each row's end read the next row: they are not outputs.
                if any {
                    for oy in 0..oh {
                        let s: i32 = sat[oy * width..][..ow].iter().sum();
                        saturated += s as u64;
                    }
                }
                let plane = Plane {
                    flat,
                    stride: width,
                    cols: ow,
                };
                sink(n * g.out_channels + o, plane);
            }
        }
    }
    PLANES.set(plane_buf);
    FLAT.set(flat_buf);
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
    /// Writes the channel's accumulators at every flat position `oy·width + ox` into `flat`
    /// and, when saturating, each position's saturated pairs into `sat`; returns whether any
    /// pair saturated.
    #[inline(always)]
    fn run<const L: usize, const SAT: bool, const XSUM: bool>(
        &self,
        flat: &mut [i32],
        sat: &mut [i32],
    ) -> bool {
        let p = self.plan;
        let load = |at: usize| -> &[u8; L] {
            self.planes[at..at + L]
                .try_into()
                .expect("slice of L bytes")
        };
        let pairs = p.taps.chunks_exact(2).zip(self.w.chunks_exact(2));
        let lone = p.taps.chunks_exact(2).remainder().first();
        let lone_w = self.w.chunks_exact(2).remainder().first();
        let mut any = false;
        for (i, (out, sat)) in flat
            .chunks_exact_mut(L)
            .zip(sat.chunks_exact_mut(L))
            .enumerate()
        {
            let base = i * L;
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
            for ((o, &raw), &xsum) in out.iter_mut().zip(&s.raw).zip(&s.xsum) {
                *o = raw - self.zw * xsum + self.konst;
            }
            if SAT {
                sat.copy_from_slice(&s.sat);
                any |= s.sat.iter().any(|&n| n != 0);
            }
        }
        any
    }
}
