//! Scalar reference convolution: quint8 `NC[D]HW` activations × qint8 weights → i32 accumulators,
//! for 1-, 2- and 3-D convs with stride, symmetric padding, dilation and groups.
//!
//! Padding positions hold the activation zero point (real 0). The exact accumulator
//! `Σ (x - z_x)·(w - z_w)` is the semantic truth; `PairModel` adds the int16 pair saturation of
//! the kernel PyTorch would have run, because the saturated pairs depend on the order in which
//! that kernel walks K:
//! * fbgemm works channels-last, so its im2col row is K = (kernel taps…, input channel of the
//!   group) with the channel fastest; pairs (2j, 2j+1) run along that flat row and cross tap
//!   boundaries when C/groups is odd. Padded taps are raw `z_x` bytes and take part in pairs.
//!   With one channel per group this is exactly the depthwise fast path's "consecutive taps in
//!   row-major order, odd last tap alone".
//! * oneDNN's direct AVX2 kernel pairs input channels within one tap (an odd channel alone) and
//!   skips padded taps, so they never saturate.

use super::buffers::sized;
use super::geometry::{ConvGeometry, PairModel};
use crate::kernels::gemm::{GemmWeights, PackCache};
use crate::kernels::reference::{dot_u8_i8_pairs_saturating, gemm_u8_i8_i32};
use crate::kernels::transpose::{transpose, transpose_blocked};
use std::cell::Cell;

/// A GEMM with the contract of [`gemm_u8_i8_i32`] over a [`GemmWeights`] operand: the
/// reference, or a fast tier bound by value ([`crate::kernels::gemm::gemm_on`]).
pub type GemmFn<'a> = &'a dyn Fn(usize, &[u8], i32, &GemmWeights, bool, &mut [i32]) -> u64;

/// Accumulators `acc[n, o, position]` of a convolution.
///
/// `x` is `[batch, in_channels, input…]`; `w` holds one row per output channel in
/// (tap, channel-of-group) order with the channel fastest, i.e. `[out, taps · C/groups]`;
/// `w_zp` has one zero point or one per output channel. Returns the number of saturated pairs.
pub fn conv_u8_i8_i32(
    g: &ConvGeometry,
    x: &[u8],
    x_zp: i32,
    w: &[i8],
    w_zp: &[i32],
    model: PairModel,
    acc: &mut [i32],
) -> u64 {
    let reference: GemmFn = &|m, a, a_zp, w, saturate, acc| {
        gemm_u8_i8_i32(m, w.n, w.k, a, a_zp, w.data, w.zero_points, saturate, acc)
    };
    conv_u8_i8_i32_with(g, x, x_zp, w, w_zp, model, acc, reference, &[])
}

/// [`conv_u8_i8_i32`] with the im2col GEMM (the `Exact` and `Im2colPairs` models) done by `gemm`;
/// the `TapChannelPairs` model always runs its scalar loop. `caches` holds one [`PackCache`] per
/// group for the group's weight rows (so a module packs its weights once), or is empty.
#[allow(clippy::too_many_arguments)]
pub fn conv_u8_i8_i32_with(
    g: &ConvGeometry,
    x: &[u8],
    x_zp: i32,
    w: &[i8],
    w_zp: &[i32],
    model: PairModel,
    acc: &mut [i32],
    gemm: GemmFn<'_>,
    caches: &[PackCache],
) -> u64 {
    assert!(caches.is_empty() || caches.len() == g.groups);
    let (taps, positions) = (g.taps(), g.out_positions());
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let k = taps * cg;
    // A 1x1, stride-1, unpadded conv reads every input position once, in order: its im2col
    // matrix is just the channels-last input, and no source table is needed to build it.
    let pointwise =
        taps == 1 && g.stride.iter().all(|&s| s == 1) && g.padding.iter().all(|&p| p == 0);
    let sources = if pointwise && model != PairModel::TapChannelPairs {
        Vec::new()
    } else {
        g.sources()
    };
    // Taken, not borrowed, so a `gemm` that ran a conv itself would just get fresh buffers.
    let mut scratch = SCRATCH.take();
    let channels_last = sized(
        &mut scratch.channels_last,
        if pointwise { 0 } else { g.in_positions() * cg },
    );
    let cols = sized(&mut scratch.cols, positions * k);
    let tile = sized(&mut scratch.tile, positions * og);
    let mut saturated = 0u64;
    for n in 0..g.batch {
        for grp in 0..g.groups {
            let plane = g.in_positions();
            let x_g = &x[(n * g.in_channels + grp * cg) * plane..][..cg * plane];
            // [cg, plane] → [plane, cg].
            if pointwise {
                transpose(x_g, plane, cg, plane, cols, cg);
            } else {
                transpose(x_g, plane, cg, plane, channels_last, cg);
                im2col(channels_last, cg, x_zp as u8, &sources, cols);
            }
            let w_g = &w[grp * og * k..(grp + 1) * og * k];
            let zp_g = if w_zp.len() == 1 {
                w_zp
            } else {
                &w_zp[grp * og..(grp + 1) * og]
            };
            saturated += match model {
                PairModel::Exact | PairModel::Im2colPairs => gemm(
                    positions,
                    cols,
                    x_zp,
                    &GemmWeights {
                        data: w_g,
                        n: og,
                        k,
                        zero_points: zp_g,
                        cache: caches.get(grp),
                    },
                    model == PairModel::Im2colPairs,
                    tile,
                ),
                PairModel::TapChannelPairs => {
                    tap_channel_pairs(g, cols, x_zp, w_g, zp_g, &sources, tile)
                }
            };
            // The group's output channels are one contiguous [og, positions] block of `acc`.
            let out = &mut acc[(n * g.out_channels + grp * og) * positions..][..og * positions];
            transpose_blocked(tile, og, out);
        }
    }
    SCRATCH.set(scratch);
    saturated
}

/// Per-thread buffers for the channels-last input, the im2col matrix and the GEMM result: every
/// element is written before it is read, and reusing them spares the page faults of fresh
/// multi-megabyte allocations on every call (a third of a 3x3 conv's time before).
#[derive(Default)]
struct Scratch {
    channels_last: Vec<u8>,
    cols: Vec<u8>,
    tile: Vec<i32>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::default();
}

/// The channels-last im2col matrix `[positions, taps · c]` from the channels-last input: each
/// (position, tap) slot is one run of `c` bytes, or the raw activation zero point when padded.
fn im2col(channels_last: &[u8], c: usize, pad: u8, sources: &[Option<usize>], cols: &mut [u8]) {
    for (slot, src) in cols.chunks_exact_mut(c).zip(sources) {
        match src {
            Some(s) => slot.copy_from_slice(&channels_last[s * c..(s + 1) * c]),
            None => slot.fill(pad),
        }
    }
}

/// oneDNN's order: per in-bounds tap, a pair-saturating channel dot plus that tap's exact
/// zero-point terms; padded taps contribute exactly 0 and are skipped.
fn tap_channel_pairs(
    g: &ConvGeometry,
    cols: &[u8],
    x_zp: i32,
    w: &[i8],
    w_zp: &[i32],
    sources: &[Option<usize>],
    tile: &mut [i32],
) -> u64 {
    let (taps, cg) = (g.taps(), g.in_channels / g.groups);
    let og = g.out_channels / g.groups;
    let mut saturated = 0u64;
    for p in 0..g.out_positions() {
        for oc in 0..og {
            let zw = w_zp[if w_zp.len() == 1 { 0 } else { oc }];
            let mut sum = 0i32;
            for t in (0..taps).filter(|&t| sources[p * taps + t].is_some()) {
                let xs = &cols[(p * taps + t) * cg..(p * taps + t + 1) * cg];
                let ws = &w[(oc * taps + t) * cg..(oc * taps + t + 1) * cg];
                let (raw, sat) = dot_u8_i8_pairs_saturating(xs, ws);
                saturated += sat as u64;
                let xsum: i32 = xs.iter().map(|&v| v as i32).sum();
                let wsum: i32 = ws.iter().map(|&v| v as i32).sum();
                sum += raw - x_zp * wsum - zw * xsum + cg as i32 * x_zp * zw;
            }
            tile[p * og + oc] = sum;
        }
    }
    saturated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry_1d(len: usize, k: usize, pad: usize, cin: usize, groups: usize) -> ConvGeometry {
        ConvGeometry {
            batch: 1,
            in_channels: cin,
            out_channels: groups,
            groups,
            input: vec![len],
            kernel: vec![k],
            stride: vec![1],
            padding: vec![pad],
            dilation: vec![1],
            output: vec![len + 2 * pad - k + 1],
        }
    }

    #[test]
    fn padded_taps_are_real_zero_in_every_model() {
        // One channel, kernel 3, pad 1: the first output reads [pad, x0, x1].
        let g = geometry_1d(2, 3, 1, 1, 1);
        for model in [
            PairModel::Exact,
            PairModel::Im2colPairs,
            PairModel::TapChannelPairs,
        ] {
            let mut acc = [0i32; 2];
            conv_u8_i8_i32(&g, &[10, 20], 7, &[1, 2, 3], &[0], model, &mut acc);
            assert_eq!(acc, [2 * 3 + 3 * 13, 3 + 2 * 13], "{model:?}");
        }
    }

    #[test]
    fn im2col_pairs_cross_taps_when_channels_are_odd() {
        // One channel per group: pairs are taps (0,1) and (2) alone. Taps 0 and 1 both hold 255
        // against weight 127, so that pair saturates at 32767 instead of 64770.
        let g = geometry_1d(3, 3, 0, 1, 1);
        // oneDNN's per-tap channel pairs never pair two taps of a single channel.
        for (model, want) in [
            (PairModel::Im2colPairs, (32767, 1)),
            (PairModel::TapChannelPairs, (64770, 0)),
        ] {
            let mut acc = [0i32; 1];
            let sat = conv_u8_i8_i32(&g, &[255, 255, 0], 0, &[127; 3], &[0], model, &mut acc);
            assert_eq!((acc[0], sat), want, "{model:?}");
        }
    }
}
