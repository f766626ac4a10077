//! Max pooling on every tier the host has against the reference (qlab's original per-element
//! max, PyTorch's loop): the kernel's bytes identical for u8 and i8, and `qnn::pool::max_pool2d`
//! (the op, on contiguous and strided inputs) returning the same integers.
//!
//! Shapes: planes from 1×1 up, rows and columns down to smaller than the kernel under padding,
//! widths past 64 so every tier meets whole vectors and tails, kernels 1..=5, strides 1..=3,
//! padding up to half the kernel, dilation 1..=2, ceil_mode on and off. Values lean to the
//! extremes so ties and the type's minimum (also what an empty window yields) are common.
//! Tiers the host lacks are reported as `skipped <tier>: <reason>`.

use crate::support::{self, Stream};
use proptest::prelude::*;
use qlab::engine::Numerics;
use qlab::isa::{ALL, Isa};
use qlab::kernels::pool::{MaxPool, PoolAxis, PoolInt, max_pool2d_on};
use qlab::kernels::reference;
use qlab::qnn::pool::{MaxPool2d, max_pool2d};
use qlab::tensor::{QDType, QParams, QStorage, QTensor};

fn tiers() -> Vec<Isa> {
    support::tiers(|_| "max_pool2d_on".into())
}

/// PyTorch's `pooling_output_shape` for a valid axis.
fn out_len(len: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> usize {
    let span = d * (k - 1) + 1;
    let extra = if ceil { s - 1 } else { 0 };
    let mut out = (len + 2 * p - span + extra) / s + 1;
    if ceil && (out - 1) * s >= len + p {
        out -= 1;
    }
    out
}

/// One axis, always valid: the input is at least the dilated window minus both paddings.
fn axis(max_extra: usize) -> impl Strategy<Value = AxisSpec> {
    (1usize..=5, 1usize..=3, 1usize..=2, 0usize..=max_extra)
        .prop_flat_map(|(k, s, d, extra)| (Just((k, s, d, extra)), 0..=k / 2))
        .prop_map(|((k, s, d, extra), p)| {
            let span = d * (k - 1) + 1;
            (span.saturating_sub(2 * p).max(1) + extra, k, s, p, d)
        })
}

#[derive(Debug, Clone)]
struct Case {
    planes: [usize; 2],
    rows: (usize, usize, usize, usize, usize),
    cols: (usize, usize, usize, usize, usize),
    ceil: bool,
    seed: u64,
    extreme: u64,
}

type AxisSpec = (usize, usize, usize, usize, usize);

/// Cases over `planes` (batch, channels), `rows` and `cols` axes, either ceil mode, random bytes.
fn case_of(
    planes: impl Strategy<Value = (usize, usize)>,
    rows: impl Strategy<Value = AxisSpec>,
    cols: impl Strategy<Value = AxisSpec>,
) -> impl Strategy<Value = Case> {
    (planes, rows, cols, any::<bool>(), any::<u64>(), 0u64..=8).prop_map(
        |((n, c), rows, cols, ceil, seed, extreme)| Case {
            planes: [n, c],
            rows,
            cols,
            ceil,
            seed: seed | 1,
            extreme,
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    case_of(
        (1usize..=2, 1usize..=3),
        axis(12),
        prop_oneof![axis(8), axis(140)],
    )
}

impl Case {
    fn geometry(&self) -> MaxPool {
        let axis = |(len, k, s, p, d): (usize, usize, usize, usize, usize)| PoolAxis {
            len,
            kernel: k,
            stride: s,
            pad: p,
            dilation: d,
            out: out_len(len, k, s, p, d, self.ceil),
        };
        MaxPool {
            planes: self.planes[0] * self.planes[1],
            rows: axis(self.rows),
            cols: axis(self.cols),
        }
    }

    fn op(&self) -> MaxPool2d {
        let (r, c) = (self.rows, self.cols);
        MaxPool2d {
            kernel: [r.1, c.1],
            stride: [r.2, c.2],
            padding: [r.3, c.3],
            dilation: [r.4, c.4],
            ceil_mode: self.ceil,
        }
    }

    fn bytes(&self, lo: u8, hi: u8) -> Vec<u8> {
        let mut s = Stream(self.seed);
        (0..self.geometry().in_len())
            .map(|_| s.byte(self.extreme, lo, hi))
            .collect()
    }
}

/// Every tier's kernel equals the reference on `x`.
fn kernel_matches<T: PoolInt + std::fmt::Debug>(g: &MaxPool, x: &[T]) -> Vec<T> {
    let mut want = vec![T::MIN; g.out_len()];
    reference::max_pool2d(g, x, &mut want);
    for tier in tiers() {
        let mut got = vec![T::MIN; g.out_len()];
        max_pool2d_on(tier, g, x, &mut got).unwrap();
        assert_eq!(got, want, "{tier} {g:?}");
    }
    want
}

/// The op on every tier, on `x` as given and on a transposed (strided) copy of it.
fn op_matches(c: &Case, x: QStorage, dtype: QDType, want: &[i32]) {
    let [n, ch] = c.planes;
    let (h, w) = (c.rows.0, c.cols.0);
    let qparams = QParams::PerTensor {
        scale: 0.5,
        zero_point: if dtype == QDType::QUInt8 { 7 } else { -3 },
    };
    let x = QTensor::from_int_repr(x, &[n, ch, h, w], qparams.clone()).unwrap();
    // The same logical values through a transposed view: [N, C, W, H] storage, viewed as NCHW.
    let xt = x.transpose(2, 3).unwrap().contiguous();
    let strided = xt.transpose(2, 3).unwrap();
    assert!(!strided.is_contiguous() || h == 1 || w == 1);
    for tier in tiers() {
        let numerics = Numerics::default().on(tier).unwrap();
        for input in [&x, &strided] {
            let y = max_pool2d(input, &c.op(), numerics).unwrap();
            assert_eq!(y.int_values(), want, "{tier} {c:?}");
            assert_eq!(y.dtype(), dtype);
            assert_eq!(y.qparams(), &qparams);
        }
    }
}

fn widened<T: Copy + Into<i32>>(v: &[T]) -> Vec<i32> {
    v.iter().map(|&x| x.into()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn tiers_equal_reference(c in case()) {
        let g = c.geometry();
        let u: Vec<u8> = c.bytes(0, 255);
        let want_u = kernel_matches(&g, &u);
        let i: Vec<i8> = c.bytes(0x80, 0x7f).into_iter().map(|b| b as i8).collect();
        let want_i = kernel_matches(&g, &i);
        op_matches(&c, QStorage::U8(u), QDType::QUInt8, &widened(&want_u));
        op_matches(&c, QStorage::I8(i), QDType::QInt8, &widened(&want_i));
    }
}

fn many_planes_case() -> impl Strategy<Value = Case> {
    // At least 16 planes of at most 14×14 outputs: the channels-last path.
    case_of((1usize..=2, 16usize..=40), axis(9), axis(9))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Many small planes pool channels-last (transposed, a row max per output position over
    /// all planes): every tier still equals the reference, empty windows included.
    #[test]
    fn many_small_planes_equal_reference(c in many_planes_case()) {
        let g = c.geometry();
        let u: Vec<u8> = c.bytes(0, 255);
        kernel_matches(&g, &u);
        let i: Vec<i8> = c.bytes(0x80, 0x7f).into_iter().map(|b| b as i8).collect();
        kernel_matches(&g, &i);
    }
}

/// A window with no tap in bounds (2-tap dilated window straddling a 1-wide input) yields the
/// type's minimum on every tier, as PyTorch's initial max.
#[test]
fn empty_window_yields_the_minimum() {
    let axis = PoolAxis {
        len: 1,
        kernel: 2,
        stride: 1,
        pad: 1,
        dilation: 2,
        out: out_len(1, 2, 1, 1, 2, false),
    };
    let g = MaxPool {
        planes: 1,
        rows: axis,
        cols: axis,
    };
    assert_eq!(kernel_matches(&g, &[9u8]), vec![0]);
    assert_eq!(kernel_matches(&g, &[9i8]), vec![-128]);
}

/// The networks' pools: ResNet's 3×3 s2 p1 stem pool and GoogLeNet's 3×3 s2 ceil_mode pool,
/// on 9 planes: the 112×112 ones are split into parallel tasks of whole planes (the last
/// partial).
#[test]
fn network_pools_match() {
    for (len, pad, ceil) in [(112, 1, false), (56, 0, true), (28, 0, true), (7, 1, false)] {
        let axis = PoolAxis {
            len,
            kernel: 3,
            stride: 2,
            pad,
            dilation: 1,
            out: out_len(len, 3, 2, pad, 1, ceil),
        };
        // 9 planes pool per plane; 48 planes of at most 14×14 outputs pool channels-last.
        for planes in [9, 48] {
            let g = MaxPool {
                planes,
                rows: axis,
                cols: axis,
            };
            let mut s = Stream(0x9e37_79b9_7f4a_7c15);
            let x: Vec<u8> = (0..g.in_len()).map(|_| s.byte(2, 0, 255)).collect();
            kernel_matches(&g, &x);
        }
    }
}

#[test]
fn unavailable_tier_is_an_error() {
    let axis = PoolAxis {
        len: 1,
        kernel: 1,
        stride: 1,
        pad: 0,
        dilation: 1,
        out: 1,
    };
    let g = MaxPool {
        planes: 1,
        rows: axis,
        cols: axis,
    };
    for tier in ALL.into_iter().filter(|t| !t.is_available()) {
        assert!(max_pool2d_on(tier, &g, &[1u8], &mut [0]).is_err(), "{tier}");
    }
}
