//! The depthwise kernel on every tier the host has against the reference conv: accumulators and
//! saturated-pair counts identical, under every pair model.
//!
//! Shapes are 1-D and 2-D depthwise convs (one input channel per group, channel multiplier 1 or
//! 2) with kernels 1..7, strides 1..3, dilation 1..2, padding 0..k and widths that leave tails
//! against every tier's chunk of 8, 16 or 32 outputs. Values are drawn towards the extremes (0 /
//! 255 activations, −128 / 127 weights) so int16 pairs saturate often. Tiers the host lacks are
//! reported as `skipped <tier>: <reason>`.

use crate::support::{self, Stream};
use proptest::prelude::*;
use qlab::isa::{ALL, Isa};
use qlab::kernels::conv_ref::{ConvGeometry, PairModel, conv_u8_i8_i32};
use qlab::kernels::depthwise::{Operands, conv_depthwise_on};

const MODELS: [PairModel; 3] = [
    PairModel::Exact,
    PairModel::Im2colPairs,
    PairModel::TapChannelPairs,
];

fn tiers() -> Vec<Isa> {
    support::tiers(|_| "conv_depthwise_on".into())
}

#[derive(Debug, Clone)]
struct Case {
    g: ConvGeometry,
    x_zp: i32,
    /// Empty: per-channel zero points drawn from the seed; otherwise the per-tensor one.
    w_zp: Vec<i32>,
    seed: u64,
    extreme: u64,
}

/// One spatial dim: (kernel, stride, padding, dilation, input size), always a valid geometry.
fn dim(max_extra: usize) -> impl Strategy<Value = (usize, usize, usize, usize, usize)> {
    (
        prop_oneof![1 => 1usize..=7, 1 => Just(3usize), 1 => Just(5usize)],
        1usize..=3,
        1usize..=2,
        0usize..=max_extra,
    )
        .prop_flat_map(|(k, s, d, extra)| (Just((k, s, d, extra)), 0..=k))
        .prop_map(|((k, s, d, extra), p)| {
            let span = d * (k - 1) + 1;
            (k, s, p, d, span.saturating_sub(2 * p).max(1) + extra)
        })
}

fn case() -> impl Strategy<Value = Case> {
    let dims = prop_oneof![
        dim(80).prop_map(|c| vec![c]),
        (dim(12), dim(50)).prop_map(|(r, c)| vec![r, c]),
    ];
    (
        dims,
        1usize..=4,
        1usize..=2,
        1usize..=2,
        prop_oneof![prop::sample::select(vec![0, 128, 255]), 0i32..=255],
        prop_oneof![
            Just(vec![0]),
            (-128i32..=127).prop_map(|z| vec![z]),
            Just(vec![])
        ],
        any::<u64>(),
        0u64..=8,
    )
        .prop_map(
            |(dims, channels, multiplier, batch, x_zp, w_zp, seed, extreme)| {
                let g = support::depthwise_geometry(batch, channels, multiplier, &dims);
                Case {
                    g,
                    x_zp,
                    w_zp,
                    seed: seed | 1,
                    extreme,
                }
            },
        )
}

/// Runs every tier under every model against the reference; returns the reference's saturated
/// pair count under `Im2colPairs`.
fn check_all(g: &ConvGeometry, x: &[u8], x_zp: i32, w: &[i8], w_zp: &[i32]) -> u64 {
    let len = g.batch * g.out_channels * g.out_positions();
    let mut pairs_saturated = 0;
    for model in MODELS {
        let mut want = vec![0i32; len];
        let want_sat = conv_u8_i8_i32(g, x, x_zp, w, w_zp, model, &mut want);
        if model == PairModel::Im2colPairs {
            pairs_saturated = want_sat;
        }
        let op = Operands {
            g,
            x,
            x_zp,
            w,
            w_zp,
            model,
        };
        for tier in tiers() {
            let mut got = vec![i32::MIN; len];
            let sat = conv_depthwise_on(tier, &op, &mut got).unwrap();
            assert_eq!(got, want, "{tier} {model:?} {g:?}");
            assert_eq!(sat, want_sat, "{tier} {model:?} count {g:?}");
        }
    }
    pairs_saturated
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn tiers_equal_reference(c in case()) {
        let g = &c.g;
        let mut s = Stream(c.seed);
        let in_len = g.batch * g.in_channels * g.input.iter().product::<usize>();
        let x: Vec<u8> = (0..in_len).map(|_| s.byte(c.extreme, 0, 255)).collect();
        let w: Vec<i8> = (0..g.out_channels * g.taps())
            .map(|_| s.byte(c.extreme, 0x80, 0x7f) as i8)
            .collect();
        let w_zp = if c.w_zp.is_empty() {
            (0..g.out_channels).map(|_| (s.next() % 256) as i32 - 128).collect()
        } else {
            c.w_zp.clone()
        };
        check_all(g, &x, c.x_zp, &w, &w_zp);
    }
}

/// MobileNet-like 3x3 convs on all-255 activations against all-127 / all-−128 weights: every
/// pair saturates, padded taps (x_zp = 255) included, and the counts must agree on every tier.
#[test]
fn saturation_is_counted_on_every_tier() {
    for (stride, width) in [(1, 37), (2, 37), (2, 16), (3, 9)] {
        let g = ConvGeometry {
            batch: 2,
            in_channels: 3,
            out_channels: 6,
            groups: 3,
            input: vec![5, width],
            kernel: vec![3, 3],
            stride: vec![stride; 2],
            padding: vec![1, 1],
            dilation: vec![1, 1],
            output: vec![(5 - 1) / stride + 1, (width - 1) / stride + 1],
        };
        let x = vec![255u8; 2 * 3 * 5 * width];
        let w: Vec<i8> = (0..6 * 9)
            .map(|i| if (i / 9) % 2 == 0 { 127 } else { -128 })
            .collect();
        for w_zp in [vec![0], vec![3], (0..6).map(|o| o - 3).collect()] {
            let saturated = check_all(&g, &x, 255, &w, &w_zp);
            // Four saturating pairs per output (the ninth tap is alone).
            assert_eq!(saturated, 4 * 2 * 6 * g.out_positions() as u64, "{g:?}");
        }
    }
}

#[test]
fn unavailable_tier_is_an_error() {
    let g = ConvGeometry {
        batch: 1,
        in_channels: 1,
        out_channels: 1,
        groups: 1,
        input: vec![1],
        kernel: vec![1],
        stride: vec![1],
        padding: vec![0],
        dilation: vec![1],
        output: vec![1],
    };
    let op = Operands {
        g: &g,
        x: &[1],
        x_zp: 0,
        w: &[1],
        w_zp: &[0],
        model: PairModel::Exact,
    };
    for tier in ALL.into_iter().filter(|t| !t.is_available()) {
        let r = conv_depthwise_on(tier, &op, &mut [0]);
        assert!(r.is_err(), "{tier}");
    }
}
