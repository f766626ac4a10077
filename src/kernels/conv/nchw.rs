//! Exact convolution straight from `NC[D]HW` activations, with no layout transposes.
//!
//! Design note. The reference driver (`conv::reference`) works channels-last like fbgemm: it
//! transposes the input, builds `[positions, taps·C]` rows, runs the GEMM with the activations as
//! rows and transposes the `[positions, out]` result back. For MobileNet's pointwise convs the two
//! transposes cost as much as the GEMM. Here the weights are the row operand instead
//! ([`gemm::gemm_weights_kmajor_on`]): the right operand is the input itself for a 1×1 stride-1
//! unpadded conv, otherwise a k-major im2col (`[C·taps, positions]`, built row by row from
//! contiguous input runs), and the result is already `[out, positions]`, i.e. NCHW.
//!
//! Only the exact sum is offered: which int16 pairs saturate depends on the kernel PyTorch runs
//! (channels-last K order, operand signs), so the pair-saturating models stay on `conv::reference`.
//! The K order is the weight's own `(channel, tap)` order; exact sums do not depend on it.

use super::buffers::{gather, sized};
use super::geometry::{ConvGeometry, odometer};
use crate::isa::{Isa, IsaError};
use crate::kernels::gemm::{self, KMajorU8};
use crate::kernels::requant::Requant;
use std::cell::Cell;

/// Whether [`conv_u8_i8_i32_exact`] handles `g` with weight zero points `w_zp`: one zero point
/// per group (the shifted-operand GEMM takes a scalar one), and at least 8 output channels per
/// group (a depthwise conv would run a one-row GEMM per channel).
pub fn supports(g: &ConvGeometry, w_zp: &[i32]) -> bool {
    let og = g.out_channels / g.groups;
    og >= 8 && w_zp.chunks(og).all(|z| z.iter().all(|&v| v == z[0]))
}

/// Whether this path is the faster one for `g`: pointwise convs over large planes (no im2col
/// at all) and convs with a short K (a stem conv on 3 channels, whose channels-last runs would
/// be 3 bytes). Deep spatial convs take the implicit channels-last GEMM (`conv_implicit`),
/// whose position rows fill the 12-row tiles better than a few dozen output channels do, and so
/// do pointwise convs over small planes — under 64 positions, or up to 1024 with at most 32
/// outputs per group — where this path's 32-position panels run part empty (a 7×7 plane fills
/// 49 of 64 columns) or its few output rows leave the 12-row tiles short. 3-D convs have no
/// channels-last path and stay here.
pub fn preferred(g: &ConvGeometry, w_zp: &[i32]) -> bool {
    let k = g.in_channels / g.groups * g.taps();
    let (positions, og) = (g.out_positions(), g.out_channels / g.groups);
    let small_plane = g.input.len() <= 2 && (positions < 64 || (og <= 32 && positions <= 1024));
    supports(g, w_zp) && ((g.taps() == 1 && !small_plane) || k < 64)
}

/// The operands of a convolution on this path: `w_flipped` holds the weights as
/// [`gemm::flip_weights`] of the `[out, C/groups · taps]` rows (channel-major, tap fastest:
/// PyTorch's weight layout).
pub struct Operands<'a> {
    pub g: &'a ConvGeometry,
    pub x: &'a [u8],
    pub x_zp: i32,
    pub w_flipped: &'a [u8],
    pub w_zp: &'a [i32],
}

/// The exact accumulators `acc[n, o, position]` of a convolution (the `Exact` model of
/// [`super::reference::conv_u8_i8_i32`]) on `tier` (an error when the host lacks it).
pub fn conv_u8_i8_i32_exact(tier: Isa, op: &Operands, acc: &mut [i32]) -> Result<(), IsaError> {
    per_group(op, |b, w_g, zw, o0, rows| {
        let out = &mut acc[o0 * b.n..][..rows * b.n];
        gemm::gemm_weights_kmajor_on(tier, rows, w_g, zw, b, out)
    })
}

/// [`conv_u8_i8_i32_exact`] with the requantization fused into the GEMM's tile epilogue:
/// `out[n, o, position]` is `rq` applied to the accumulator as channel `o`, and the i32
/// accumulators are never stored (for a pointwise conv with few input channels, writing and
/// re-reading them cost more than the GEMM).
pub fn conv_u8_i8_u8_exact(
    tier: Isa,
    op: &Operands,
    rq: &Requant,
    out: &mut [u8],
) -> Result<(), IsaError> {
    let channels = op.g.out_channels;
    per_group(op, |b, w_g, zw, o0, rows| {
        let (first, out) = (o0 % channels, &mut out[o0 * b.n..][..rows * b.n]);
        gemm::gemm_weights_kmajor_requant_on(tier, rows, w_g, zw, b, rq, first, out)
    })
}

/// Runs `gemm(b, w_g, zw, o0, rows)` for every (batch item, group): `b` is the group's k-major
/// operand, `w_g` its `rows` flipped weight rows, `zw` their zero point, and
/// `o0 = n·out + the group's first output channel` (its first output row, counted across the
/// batch).
fn per_group(
    op: &Operands,
    mut gemm: impl FnMut(&KMajorU8, &[u8], i32, usize, usize) -> Result<(), IsaError>,
) -> Result<(), IsaError> {
    let Operands {
        g,
        x,
        x_zp,
        w_flipped,
        w_zp,
    } = *op;
    assert!(supports(g, w_zp));
    let (taps, positions) = (g.taps(), g.out_positions());
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let k = cg * taps;
    let plane: usize = g.input.iter().product();
    let direct = taps == 1 && g.stride.iter().all(|&s| s == 1) && g.padding.iter().all(|&p| p == 0);
    let mut cols = COLS.take();
    let mut result = Ok(());
    'all: for n in 0..g.batch {
        for grp in 0..g.groups {
            let x_g = &x[(n * g.in_channels + grp * cg) * plane..][..cg * plane];
            let data = if direct {
                x_g
            } else {
                let cols = sized(&mut cols, k * positions);
                im2col_kmajor(g, x_g, x_zp as u8, cols);
                cols
            };
            let b = KMajorU8 {
                data,
                n: positions,
                k,
                zero_point: x_zp,
            };
            let zw = w_zp[if w_zp.len() == 1 { 0 } else { grp * og }];
            let w_g = &w_flipped[grp * og * k..(grp + 1) * og * k];
            result = gemm(&b, w_g, zw, n * g.out_channels + grp * og, og);
            if result.is_err() {
                break 'all;
            }
        }
    }
    COLS.set(cols);
    result
}

thread_local! {
    /// The im2col buffer, reused across calls: every byte of the used prefix is written before
    /// it is read, and fresh multi-megabyte buffers per call cost page faults.
    static COLS: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Row `c·taps + t` of `cols` holds, for every output position, the input byte tap `t` of
/// channel `c` reads there, or `pad` (the raw zero point) in the padding.
///
/// The last spatial dim is copied as runs: for a fixed tap and outer output index, the output
/// row reads input `ox·s + t·d − p`, contiguous when `s = 1`, with the out-of-range ends padded.
fn im2col_kmajor(g: &ConvGeometry, x: &[u8], pad: u8, cols: &mut [u8]) {
    let dims = g.input.len();
    let last = dims - 1;
    let (ow, iw) = (g.output[last], g.input[last]);
    let (s, d, p) = (g.stride[last], g.dilation[last], g.padding[last]);
    let outer_out: usize = g.output[..last].iter().product();
    let plane: usize = g.input.iter().product();
    let taps = g.taps();
    let mut tap = vec![0usize; dims];
    let mut row = 0usize;
    for c in 0..g.in_channels / g.groups {
        let x_c = &x[c * plane..(c + 1) * plane];
        for _ in 0..taps {
            let dst = &mut cols[row * outer_out * ow..(row + 1) * outer_out * ow];
            // Output columns whose input lies inside: ox·s + t·d − p ∈ [0, iw).
            let shift = tap[last] * d;
            let lo = p.saturating_sub(shift).div_ceil(s).min(ow);
            let hi = if iw + p > shift {
                ((iw + p - shift - 1) / s + 1).min(ow)
            } else {
                0
            }
            .max(lo);
            let mut outer = vec![0usize; last];
            for run in dst.chunks_exact_mut(ow) {
                match outer_input_row(g, &outer, &tap) {
                    Some(r) if hi > lo => {
                        let src = &x_c[r * iw..(r + 1) * iw];
                        run[..lo].fill(pad);
                        let first = lo * s + shift - p;
                        gather(&mut run[lo..hi], &src[first..], s);
                        run[hi..].fill(pad);
                    }
                    _ => run.fill(pad),
                }
                odometer(&mut outer, &g.output[..last]);
            }
            odometer(&mut tap, &g.kernel);
            row += 1;
        }
    }
}

/// The flat index over the input's outer dims (all but the last) that output index `outer`
/// reads at `tap`, or `None` in the padding.
fn outer_input_row(g: &ConvGeometry, outer: &[usize], tap: &[usize]) -> Option<usize> {
    outer
        .iter()
        .enumerate()
        .try_fold(0usize, |flat, (dim, &o)| {
            let i = (o * g.stride[dim] + tap[dim] * g.dilation[dim]).checked_sub(g.padding[dim])?;
            (i < g.input[dim]).then_some(flat * g.input[dim] + i)
        })
}
