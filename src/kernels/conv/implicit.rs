//! Convolution as an implicit GEMM over a padded channels-last input: no im2col matrix.
//!
//! Design note. `conv::reference` builds the channels-last im2col matrix `[positions, taps·C]`,
//! runs the GEMM with it as the row operand and transposes the `[positions, out]` result back to
//! NCHW; for a 3×3 conv of 64 channels on 56×56 that matrix is 1.8 MB (nine copies of the input)
//! and the i32 result another 0.8 MB, all written and read again around a 0.23 GOP GEMM. Here the
//! input is laid out once as `[H + 2p, W + 2p, C]` with the padding written as the activation zero
//! point, so each (position, tap) slot of an im2col row is one run of `C` contiguous bytes at a
//! fixed offset from the position's base ([`gemm::RunRows`]): the GEMM gathers its row blocks
//! straight from it while packing them, and writes its result transposed, already NCHW (requantized
//! in the same pass when asked). The rows it packs are byte for byte the im2col rows of
//! `conv::reference`, K in the same (tap, channel) order, so the pair-saturating model pairs the
//! same bytes and the weights' packed panels are shared with it.
//!
//! 1-D convs run as 2-D ones of height 1; 3-D convs and oneDNN's tap-channel pairing stay on
//! `conv::reference`.

use super::buffers::sized;
use super::geometry::{ConvGeometry, Operands, PairModel};
use crate::isa::{Isa, IsaError};
use crate::kernels::gemm::{self, GemmWeights, Output, PackCache, RunRows};
use crate::kernels::requant::Requant;
use crate::kernels::transpose::transpose;
use rayon::prelude::*;
use std::cell::Cell;

/// Whether this path computes `g` under `model`.
pub fn supports(g: &ConvGeometry, model: PairModel) -> bool {
    model != PairModel::TapChannelPairs && matches!(g.input.len(), 1 | 2)
}

/// The accumulators `acc[n, o, position]` of [`super::reference::conv_u8_i8_i32`] on `tier` (an
/// error when the host lacks it), with the weight's panels kept in `caches` (one [`PackCache`]
/// per group, or none: packed per call); returns the saturated pairs.
pub fn conv_u8_i8_i32_on(
    tier: Isa,
    op: &Operands,
    caches: &[PackCache],
    acc: &mut [i32],
) -> Result<u64, IsaError> {
    per_group(op, caches, acc, |a, w, o0, len, acc| {
        let acc = Output::Acc(&mut acc[o0 * len..][..w.n * len]);
        gemm::gemm_runs_on(
            tier,
            len,
            a,
            op.x_zp,
            w,
            op.model == PairModel::Im2colPairs,
            acc,
        )
    })
}

/// [`conv_u8_i8_i32_on`] requantized by `rq` in the GEMM's epilogue: `out[n, o, position]` as
/// channel `o`, with no i32 tensor stored.
pub fn conv_u8_i8_u8_on(
    tier: Isa,
    op: &Operands,
    caches: &[PackCache],
    rq: &Requant,
    out: &mut [u8],
) -> Result<u64, IsaError> {
    per_group(op, caches, out, |a, w, o0, len, out| {
        let out = Output::Requant {
            rq,
            first_channel: o0,
            out: &mut out[o0 * len..][..w.n * len],
        };
        gemm::gemm_runs_on(
            tier,
            len,
            a,
            op.x_zp,
            w,
            op.model == PairModel::Im2colPairs,
            out,
        )
    })
}

/// A geometry's spatial dims as 2-D ones (a 1-D conv has height 1): `[height, width]` each.
pub(super) struct Plane {
    pub(super) input: [usize; 2],
    pub(super) kernel: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) padding: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) output: [usize; 2],
}

impl Plane {
    pub(super) fn of(g: &ConvGeometry) -> Plane {
        let two = |v: &[usize], one: usize| match v {
            [w] => [one, *w],
            _ => [v[0], v[1]],
        };
        Plane {
            input: two(&g.input, 1),
            kernel: two(&g.kernel, 1),
            stride: two(&g.stride, 1),
            padding: two(&g.padding, 0),
            dilation: two(&g.dilation, 1),
            output: two(&g.output, 1),
        }
    }

    /// The padded input's sizes.
    pub(super) fn padded(&self) -> [usize; 2] {
        [0, 1].map(|d| self.input[d] + 2 * self.padding[d])
    }
}

/// Buffers reused across calls on one thread: the padded channels-last input and the row
/// tables of the GEMM's left operand.
#[derive(Default)]
struct Scratch {
    padded: Vec<u8>,
    bases: Vec<usize>,
    offsets: Vec<usize>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// Runs `gemm(a, w, o0, positions, out_n)` for every (batch item, group): `a` gathers the
/// group's im2col rows, `w` is its weight, `o0` the group's first output channel and `out_n`
/// the item's `[out_channels, positions]` block of `out`. Sums the saturated pairs.
///
/// Batch items run in parallel (each GEMM may split further): items write disjoint blocks and
/// every output is one GEMM's, so the result does not depend on the thread count.
fn per_group<T: Send>(
    op: &Operands,
    caches: &[PackCache],
    out: &mut [T],
    gemm: impl Fn(&RunRows, &GemmWeights, usize, usize, &mut [T]) -> Result<u64, IsaError> + Sync,
) -> Result<u64, IsaError> {
    let g = op.g;
    assert!(supports(g, op.model) && (caches.is_empty() || caches.len() == g.groups));
    let p = Plane::of(g);
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let [hp, wp] = p.padded();
    let positions = g.out_positions();
    let item = g.out_channels * positions;
    assert!(out.len() >= g.batch * item);
    if item == 0 {
        return Ok(0);
    }
    let plane = p.input[0] * p.input[1];
    let one = |(n, out_n): (usize, &mut [T])| -> Result<u64, IsaError> {
        // Taken, not borrowed, so that a nested conv (or another item this thread picks up
        // while its GEMM waits) just gets fresh buffers.
        let mut scratch = SCRATCH.take();
        let padded = sized(&mut scratch.padded, hp * wp * cg);
        // Bases: each output position's first input byte; offsets: each tap's from there.
        // Undilated columns make a kernel row's taps adjacent, so each row is one run of
        // `kw·cg` bytes (the same row bytes, gathered in fewer and longer copies).
        grid(&mut scratch.bases, p.output, p.stride, wp * cg, cg);
        let (taps, run) = match p.dilation[1] {
            1 => ([p.kernel[0], 1], p.kernel[1] * cg),
            _ => (p.kernel, cg),
        };
        grid(&mut scratch.offsets, taps, p.dilation, wp * cg, cg);
        let k = scratch.offsets.len() * run;
        let mut saturated = Ok(0u64);
        for grp in 0..g.groups {
            let x_g = &op.x[(n * g.in_channels + grp * cg) * plane..][..cg * plane];
            pad_channels_last(x_g, cg, &p, op.x_zp as u8, padded);
            let a = RunRows::new(padded, &scratch.bases, &scratch.offsets, run);
            let w = GemmWeights {
                data: &op.w[grp * og * k..(grp + 1) * og * k],
                n: og,
                k,
                zero_points: if op.w_zp.len() == 1 {
                    op.w_zp
                } else {
                    &op.w_zp[grp * og..(grp + 1) * og]
                },
                cache: caches.get(grp),
            };
            saturated = saturated.and_then(|s| Ok(s + gemm(&a, &w, grp * og, positions, out_n)?));
            if saturated.is_err() {
                break;
            }
        }
        SCRATCH.set(scratch);
        saturated
    };
    let items = &mut out[..g.batch * item];
    if g.batch > 1 && rayon::current_num_threads() > 1 {
        let each = items.par_chunks_mut(item).enumerate().map(one);
        each.try_reduce(|| 0, |a, b| Ok(a + b))
    } else {
        items.chunks_mut(item).enumerate().map(one).sum()
    }
}

/// `out` := `(y·step[0])·line + (x·step[1])·cell` for `y < extent[0]`, `x < extent[1]`, row-major.
fn grid(out: &mut Vec<usize>, extent: [usize; 2], step: [usize; 2], line: usize, cell: usize) {
    out.clear();
    for y in 0..extent[0] {
        let row = y * step[0] * line;
        out.extend((0..extent[1]).map(|x| row + x * step[1] * cell));
    }
}

/// `dst` (`[H + 2p, W + 2p, c]`) := the `[c, H, W]` input `x` channels-last, with `fill` in the
/// padding (only the padding is filled: the interior is written once, by the transposes).
///
/// Rows narrower than 16 (7×7 and 14×14 planes) would transpose byte by byte, so such an
/// input is transposed whole (`[c, H·W]`, SSE2 blocks) and its rows copied into place.
pub(super) fn pad_channels_last(x: &[u8], c: usize, p: &Plane, fill: u8, dst: &mut [u8]) {
    let ([h, w], [_, wp], [ph, pw]) = (p.input, p.padded(), p.padding);
    let line = wp * c;
    dst[..ph * line].fill(fill);
    dst[(ph + h) * line..].fill(fill);
    let whole = if w < 16 && h > 1 {
        let mut t = vec![0u8; h * w * c];
        transpose(x, h * w, c, h * w, &mut t, c);
        Some(t)
    } else {
        None
    };
    for y in 0..h {
        let row = &mut dst[(y + ph) * line..][..line];
        row[..pw * c].fill(fill);
        row[(pw + w) * c..].fill(fill);
        let interior = &mut row[pw * c..][..w * c];
        match &whole {
            Some(t) => interior.copy_from_slice(&t[y * w * c..][..w * c]),
            None => transpose(&x[y * w..], h * w, c, w, interior, c),
        }
    }
}
