//! Property tests: under the exact profile, quantized conv (1-, 2- and 3-D) and Linear equal a
//! plain direct-loop computation with i64 accumulation, requantized with the engine's rule.
//! Under the other profiles, any difference from exact must come with counted saturated pairs.
//! Every SIMD tier's conv (channels-last im2col, cached panels) equals the reference conv, and
//! so do the exact NCHW path (weights as rows) and the implicit channels-last GEMM on every tier.

use proptest::prelude::*;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::isa::{ALL, Isa};
use qlab::kernels::conv_ref::{self, ConvGeometry, PairModel};
use qlab::kernels::gemm::{GemmWeights, PackCache, flip_weights, gemm_on};
use qlab::kernels::requant::{FbgemmRequant, QnnpackRequant, Requant};
use qlab::kernels::{conv_implicit, conv_nchw, depthwise_hwc};
use qlab::qnn::{ConvParams, QConv, QLinear};
use qlab::tensor::{QDType, QParams, QStorage, QTensor};
use std::ops::RangeInclusive;

/// One random conv problem.
#[derive(Debug, Clone)]
struct Problem {
    batch: usize,
    groups: usize,
    cg: usize,
    og: usize,
    input: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    x: Vec<i32>,
    x_zp: i64,
    w: Vec<i32>,
    /// One (per-tensor) or one per output channel (per-channel).
    w_zp: Vec<i64>,
    w_scale: Vec<f64>,
    bias: Option<Vec<f32>>,
    relu: bool,
    engine: Engine,
}

/// Per spatial dim: (kernel, stride, padding, dilation, input size), always a valid geometry.
fn dim() -> impl Strategy<Value = (usize, usize, usize, usize, usize)> {
    (1usize..=3, 1usize..=3, 0usize..=2, 1usize..=2, 0usize..=3).prop_map(|(k, s, p, d, extra)| {
        let span = d * (k - 1) + 1;
        let input = span.saturating_sub(2 * p).max(1) + extra;
        (k, s, p, d, input)
    })
}

fn problem() -> impl Strategy<Value = Problem> {
    // Groups of 8+ outputs also reach the exact NCHW path.
    let shape = (
        1usize..=3,
        prop::collection::vec(dim(), 1..=3),
        1usize..=2,
        1usize..=3,
        prop_oneof![3 => 1usize..=3, 1 => 8usize..=10],
    );
    let choices = (
        prop::sample::select(vec![0i64, 128, 255]),
        prop::sample::select(vec![Engine::Fbgemm, Engine::X86, Engine::Qnnpack]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        -6i64..=6,
    );
    (shape, choices)
        .prop_flat_map(
            |((groups, dims, batch, cg, og), (x_zp, engine, per_channel, relu, bias, zp))| {
                let cin = groups * cg;
                let cout = groups * og;
                let in_len: usize = batch * cin * dims.iter().map(|d| d.4).product::<usize>();
                let w_len: usize = cout * cg * dims.iter().map(|d| d.0).product::<usize>();
                let channels = if per_channel { cout } else { 1 };
                (
                    Just((groups, dims, batch, cg, og, x_zp, engine, relu, zp)),
                    prop::collection::vec(0i32..=255, in_len),
                    prop::collection::vec(-128i32..=127, w_len),
                    prop::collection::vec(-4i64..=4, channels),
                    prop::collection::vec(0.001f64..0.05, channels),
                    prop::option::weighted(
                        if bias { 0.8 } else { 0.2 },
                        prop::collection::vec(-3.0f32..3.0, cout),
                    ),
                )
            },
        )
        .prop_map(
            |((groups, dims, batch, cg, og, x_zp, engine, relu, zp), x, w, zps, w_scale, bias)| {
                // Per-tensor weights use the drawn zero point (often non-zero), per-channel ones
                // a zero point per channel.
                let w_zp = if zps.len() == 1 { vec![zp] } else { zps };
                Problem {
                    batch,
                    groups,
                    cg,
                    og,
                    input: dims.iter().map(|d| d.4).collect(),
                    kernel: dims.iter().map(|d| d.0).collect(),
                    stride: dims.iter().map(|d| d.1).collect(),
                    padding: dims.iter().map(|d| d.2).collect(),
                    dilation: dims.iter().map(|d| d.3).collect(),
                    x,
                    x_zp,
                    w,
                    w_zp,
                    w_scale,
                    bias,
                    relu,
                    engine,
                }
            },
        )
}

const X_SCALE: f64 = 0.03;
const OUT_SCALE: f64 = 0.4;
const OUT_ZP: i64 = 100;

fn qparams(scales: &[f64], zps: &[i64]) -> QParams {
    if scales.len() == 1 {
        QParams::PerTensor {
            scale: scales[0],
            zero_point: zps[0],
        }
    } else {
        QParams::PerChannel {
            scales: scales.to_vec(),
            zero_points: zps.to_vec(),
            axis: 0,
        }
    }
}

fn input_tensor(p: &Problem) -> QTensor {
    let mut shape = vec![p.batch, p.groups * p.cg];
    shape.extend(&p.input);
    QTensor::from_int_repr(
        QStorage::from_i32(QDType::QUInt8, p.x.iter().copied()),
        &shape,
        QParams::PerTensor {
            scale: X_SCALE,
            zero_point: p.x_zp,
        },
    )
    .unwrap()
}

fn module(p: &Problem) -> QConv {
    let mut shape = vec![p.groups * p.og, p.cg];
    shape.extend(&p.kernel);
    let w = QTensor::from_int_repr(
        QStorage::from_i32(QDType::QInt8, p.w.iter().copied()),
        &shape,
        qparams(&p.w_scale, &p.w_zp),
    )
    .unwrap();
    let params = ConvParams {
        stride: p.stride.clone(),
        padding: p.padding.clone(),
        dilation: p.dilation.clone(),
        groups: p.groups,
    };
    QConv::new(&w, p.bias.clone(), params, OUT_SCALE, OUT_ZP, p.relu).unwrap()
}

/// Pads a per-dim list to three dims (leading dims of size 1) so one 3-D loop covers all ranks.
fn three(v: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

/// The direct convolution: `acc[n][o][od][oh][ow]` in i64, padding as real zero.
fn direct_conv(p: &Problem) -> (Vec<i64>, Vec<usize>) {
    let input = three(&p.input, 1);
    let kernel = three(&p.kernel, 1);
    let stride = three(&p.stride, 1);
    let pad = three(&p.padding, 0);
    let dil = three(&p.dilation, 1);
    let out: Vec<usize> = (0..3)
        .map(|d| (input[d] + 2 * pad[d] - dil[d] * (kernel[d] - 1) - 1) / stride[d] + 1)
        .collect();
    let (cin, cout) = (p.groups * p.cg, p.groups * p.og);
    let x_at = |n: usize, c: usize, i: [usize; 3]| {
        p.x[(((n * cin + c) * input[0] + i[0]) * input[1] + i[1]) * input[2] + i[2]] as i64
    };
    let w_at = |o: usize, c: usize, t: [usize; 3]| {
        p.w[(((o * p.cg + c) * kernel[0] + t[0]) * kernel[1] + t[1]) * kernel[2] + t[2]] as i64
    };
    let mut acc = Vec::new();
    for n in 0..p.batch {
        for o in 0..cout {
            let g = o / p.og;
            let wz = p.w_zp[if p.w_zp.len() == 1 { 0 } else { o }];
            for od in 0..out[0] {
                for oh in 0..out[1] {
                    for ow in 0..out[2] {
                        let mut sum = 0i64;
                        for c in 0..p.cg {
                            for kd in 0..kernel[0] {
                                for kh in 0..kernel[1] {
                                    for kw in 0..kernel[2] {
                                        let pos = [(od, kd), (oh, kh), (ow, kw)];
                                        let mut at = [0usize; 3];
                                        let mut inside = true;
                                        for d in 0..3 {
                                            let i = (pos[d].0 * stride[d] + pos[d].1 * dil[d])
                                                as i64
                                                - pad[d] as i64;
                                            inside &= i >= 0 && i < input[d] as i64;
                                            at[d] = i.max(0) as usize;
                                        }
                                        if inside {
                                            let xv = x_at(n, g * p.cg + c, at) - p.x_zp;
                                            let wv = w_at(o, c, [kd, kh, kw]) - wz;
                                            sum += xv * wv;
                                        }
                                    }
                                }
                            }
                        }
                        acc.push(sum);
                    }
                }
            }
        }
    }
    let mut shape = vec![p.batch, cout];
    shape.extend(&out[3 - p.input.len()..]);
    (acc, shape)
}

fn requant(engine: Engine, scales: &[f64], bias: Option<&[f32]>, relu: bool, n: usize) -> Requant {
    if engine == Engine::Qnnpack {
        Requant::Qnnpack(QnnpackRequant::new(
            X_SCALE,
            scales,
            bias,
            OUT_SCALE,
            OUT_ZP as i32,
            relu,
            n,
        ))
    } else {
        Requant::Fbgemm(FbgemmRequant::new(
            X_SCALE,
            scales,
            bias,
            OUT_SCALE,
            OUT_ZP as i32,
            relu,
            n,
        ))
    }
}

/// Input and weight bytes for `g` from `seed`, extremes half the time (so that int16 pairs
/// would overflow, and saturate where the model says so).
fn extreme_operands(g: &ConvGeometry, seed: u64) -> (Vec<u8>, Vec<i8>) {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let xs: Vec<u8> = (0..g.batch * g.in_channels * g.input.iter().product::<usize>())
        .map(|_| match next() % 4 {
            0 => 255,
            1 => 0,
            _ => next() as u8,
        })
        .collect();
    let k = g.in_channels / g.groups * g.taps();
    let ws: Vec<i8> = (0..g.out_channels * k)
        .map(|_| match next() % 4 {
            0 => 127,
            1 => -128,
            _ => next() as i8,
        })
        .collect();
    (xs, ws)
}

/// A requantization whose multipliers put the accumulators of [`extreme_operands`] around the
/// output range (ties included), different per channel, with a bias.
fn spread_requant(qnnpack: bool, relu: bool, channels: usize) -> Requant {
    let scales: Vec<f64> = (0..channels).map(|c| 0.001 * (1 + c % 7) as f64).collect();
    let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.37 - 2.0).collect();
    let engine = if qnnpack {
        Engine::Qnnpack
    } else {
        Engine::Fbgemm
    };
    requant(engine, &scales, Some(&bias), relu, channels)
}

/// `acc[n, o, position]` requantized as channel `o` by the element rule.
fn requantized(rq: &Requant, acc: &[i32], g: &ConvGeometry) -> Vec<u8> {
    let plane = g.out_positions();
    acc.iter()
        .enumerate()
        .map(|(i, &v)| rq.apply(v, i / plane % g.out_channels))
        .collect()
}

fn to_i32(acc: &[i64]) -> Vec<i32> {
    acc.iter().map(|&v| i32::try_from(v).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn exact_conv_equals_direct_loops(p in problem()) {
        let m = module(&p);
        let x = input_tensor(&p);
        let numerics = Numerics::new(p.engine, HostProfile::Exact);
        let (want_acc, want_shape) = direct_conv(&p);
        let acc = m.accumulate(&x, numerics).unwrap();
        prop_assert_eq!(&acc.shape, &want_shape);
        prop_assert_eq!(&acc.values, &to_i32(&want_acc));
        prop_assert_eq!(acc.stats.saturated_pairs, 0);

        let cout = p.groups * p.og;
        let plane: usize = want_shape[2..].iter().product();
        let rq = requant(p.engine, &p.w_scale, p.bias.as_deref(), p.relu, cout);
        let want: Vec<i32> = to_i32(&want_acc)
            .iter()
            .enumerate()
            .map(|(i, &v)| rq.apply(v, (i / plane) % cout) as i32)
            .collect();
        let (y, _) = m.forward(&x, numerics).unwrap();
        prop_assert_eq!(y.shape(), &want_shape[..]);
        prop_assert_eq!(y.int_values(), want);
    }

    #[test]
    fn saturating_profiles_differ_from_exact_only_with_counted_pairs(
        p in problem(),
        profile in prop::sample::select(vec![HostProfile::Vnni, HostProfile::Avx2]),
    ) {
        let m = module(&p);
        let x = input_tensor(&p);
        let acc = m.accumulate(&x, Numerics::new(p.engine, profile)).unwrap();
        if acc.stats.saturated_pairs == 0 {
            prop_assert_eq!(acc.values, to_i32(&direct_conv(&p).0));
        }
    }

    #[test]
    fn pointwise_conv_equals_linear_on_channels_last_rows(
        (n, c, hw, o) in (1usize..=2, 1usize..=9, 1usize..=6, 1usize..=4),
        x_zp in prop::sample::select(vec![0i64, 128, 255]),
        w_zp in prop::sample::select(vec![0i64, -3]),
        engine in prop::sample::select(vec![Engine::Fbgemm, Engine::X86, Engine::Qnnpack]),
        profile in prop::sample::select(vec![HostProfile::Vnni, HostProfile::Avx2, HostProfile::Exact]),
        seed in prop::collection::vec(any::<u8>(), 64),
    ) {
        // A 1x1 conv is a GEMM over channels, so its pairs (and saturation) are Linear's.
        let x: Vec<i32> = (0..n * c * hw).map(|i| seed[i % 64] as i32 | 0x80).collect();
        let w: Vec<i32> = (0..o * c).map(|i| seed[(5 * i + 1) % 64] as i8 as i32).collect();
        let wq = |shape: &[usize]| {
            QTensor::from_int_repr(
                QStorage::from_i32(QDType::QInt8, w.iter().copied()),
                shape,
                QParams::PerTensor { scale: 0.01, zero_point: w_zp },
            )
            .unwrap()
        };
        let xq = |values: Vec<i32>, shape: &[usize]| {
            QTensor::from_int_repr(
                QStorage::from_i32(QDType::QUInt8, values),
                shape,
                QParams::PerTensor { scale: X_SCALE, zero_point: x_zp },
            )
            .unwrap()
        };
        let numerics = Numerics::new(engine, profile);
        let conv = QConv::new(&wq(&[o, c, 1]), None, ConvParams::unit(1), OUT_SCALE, OUT_ZP, false)
            .unwrap();
        let got = conv.accumulate(&xq(x.clone(), &[n, c, hw]), numerics).unwrap();
        let rows: Vec<i32> = (0..n * hw)
            .flat_map(|r| (0..c).map(move |ch| (r / hw, ch, r % hw)))
            .map(|(b, ch, p)| x[(b * c + ch) * hw + p])
            .collect();
        let linear = QLinear::new(&wq(&[o, c]), None, OUT_SCALE, OUT_ZP, false).unwrap();
        let (want, stats) = linear.accumulate(&xq(rows, &[n * hw, c]), numerics).unwrap();
        let want_nchw: Vec<i32> = (0..n * o * hw)
            .map(|i| {
                let (b, oc, p) = (i / (o * hw), (i / hw) % o, i % hw);
                want[(b * hw + p) * o + oc]
            })
            .collect();
        prop_assert_eq!(got.values, want_nchw);
        prop_assert_eq!(got.stats, stats);
    }

    #[test]
    fn exact_linear_equals_naive_i64(
        (rows, k, n) in (1usize..=4, 1usize..=40, 1usize..=5),
        x_zp in prop::sample::select(vec![0i64, 128, 255]),
        per_channel in any::<bool>(),
        zp in -6i64..=6,
        seed in prop::collection::vec(any::<u8>(), 400),
    ) {
        // Values from the seed keep the strategy simple for any (rows, k, n).
        let x: Vec<i32> = (0..rows * k).map(|i| seed[i % seed.len()] as i32).collect();
        let w: Vec<i32> = (0..n * k)
            .map(|i| seed[(7 * i + 3) % seed.len()] as i8 as i32)
            .collect();
        let w_zp: Vec<i64> = if per_channel { (0..n as i64).map(|c| c - 2).collect() } else { vec![zp] };
        let scales = vec![0.01; w_zp.len()];
        let wt = QTensor::from_int_repr(
            QStorage::from_i32(QDType::QInt8, w.iter().copied()),
            &[n, k],
            qparams(&scales, &w_zp),
        )
        .unwrap();
        let xt = QTensor::from_int_repr(
            QStorage::from_i32(QDType::QUInt8, x.iter().copied()),
            &[rows, k],
            QParams::PerTensor { scale: X_SCALE, zero_point: x_zp },
        )
        .unwrap();
        let m = QLinear::new(&wt, None, OUT_SCALE, OUT_ZP, false).unwrap();
        for engine in [Engine::Fbgemm, Engine::X86, Engine::Qnnpack] {
            let (acc, stats) = m.accumulate(&xt, Numerics::new(engine, HostProfile::Exact)).unwrap();
            let want: Vec<i64> = (0..rows * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    let wz = w_zp[if w_zp.len() == 1 { 0 } else { c }];
                    (0..k)
                        .map(|j| (x[r * k + j] as i64 - x_zp) * (w[c * k + j] as i64 - wz))
                        .sum()
                })
                .collect();
            prop_assert_eq!(acc, to_i32(&want));
            prop_assert_eq!(stats.saturated_pairs, 0);
        }
    }
}

/// The functional forms are the modules run once.
#[test]
fn functional_linear_and_conv_equal_their_modules() {
    use qlab::qnn::{ConvParams, QConv, QLinear, functional};
    use qlab::tensor::{QDType, QTensor};
    let numerics = qlab::engine::Numerics::new(
        qlab::engine::Engine::Fbgemm,
        qlab::engine::HostProfile::Vnni,
    );
    let x = QTensor::quantize_per_tensor(
        &(0..24).map(|v| v as f32 * 0.1).collect::<Vec<_>>(),
        &[1, 2, 3, 4],
        0.05,
        10,
        QDType::QUInt8,
    )
    .unwrap();
    let w = QTensor::quantize_per_tensor(
        &(0..36)
            .map(|v| (v as f32 - 18.0) * 0.01)
            .collect::<Vec<_>>(),
        &[2, 2, 3, 3],
        0.002,
        0,
        QDType::QInt8,
    )
    .unwrap();
    let params = ConvParams {
        stride: vec![1, 1],
        padding: vec![1, 1],
        dilation: vec![1, 1],
        groups: 1,
    };
    let bias = [0.1f32, -0.2];
    let module = QConv::new(&w, Some(bias.to_vec()), params.clone(), 0.03, 100, false)
        .unwrap()
        .forward(&x, numerics)
        .unwrap()
        .0;
    let func = functional::conv(&x, &w, Some(&bias), params, 0.03, 100, false, numerics).unwrap();
    assert_eq!(module.int_values(), func.int_values());
    let xl =
        QTensor::quantize_per_tensor(&[0.5, 1.0, -0.25, 2.0], &[2, 2], 0.02, 64, QDType::QUInt8)
            .unwrap();
    let wl = QTensor::quantize_per_tensor(
        &[0.1, -0.3, 0.2, 0.05, 0.0, 0.4],
        &[3, 2],
        0.004,
        0,
        QDType::QInt8,
    )
    .unwrap();
    let module = QLinear::new(&wl, None, 0.01, 128, true)
        .unwrap()
        .forward(&xl, numerics)
        .unwrap()
        .0;
    assert_eq!(
        module.int_values(),
        functional::linear(&xl, &wl, None, 0.01, 128, true, numerics)
            .unwrap()
            .int_values()
    );
}

/// The im2col GEMM on one explicit tier (a plain `fn` so it fits [`conv_ref::GemmFn`]).
fn gemm_on_tier<const T: usize>(
    m: usize,
    a: &[u8],
    a_zp: i32,
    w: &GemmWeights,
    saturate: bool,
    acc: &mut [i32],
) -> u64 {
    gemm_on(TIERS[T], m, a, a_zp, w, saturate, acc).unwrap()
}

const TIERS: [Isa; 3] = [Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];
const TIER_GEMMS: [conv_ref::GemmFn<'static>; 3] =
    [&gemm_on_tier::<0>, &gemm_on_tier::<1>, &gemm_on_tier::<2>];

/// A 2-D geometry: (groups, C/groups, O/groups, input h, w, kernel, stride, padding).
fn geometry_2d() -> impl Strategy<Value = ConvGeometry> {
    (
        1usize..=3,
        1usize..=9,
        1usize..=5,
        1usize..=7,
        1usize..=7,
        1usize..=3,
        1usize..=2,
    )
        .prop_flat_map(|(groups, cg, og, h, w, k, s)| {
            (0..=k / 2 + 1).prop_map(move |pad| {
                let out = |i: usize| (i + 2 * pad).saturating_sub(k) / s + 1;
                ConvGeometry {
                    batch: 1 + (h % 2),
                    in_channels: groups * cg,
                    out_channels: groups * og,
                    groups,
                    input: vec![h.max(k), w.max(k)],
                    kernel: vec![k, k],
                    stride: vec![s, s],
                    padding: vec![pad, pad],
                    dilation: vec![1, 1],
                    output: vec![out(h.max(k)), out(w.max(k))],
                }
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every SIMD tier the host has, through the channels-last im2col (and the pointwise
    /// shortcut) with per-group cached panels, returns the reference's integers and saturation
    /// counts for both GEMM pair models.
    #[test]
    fn conv_tiers_equal_reference(
        g in geometry_2d(),
        seed in any::<u64>(),
        x_zp in prop::sample::select(vec![0i32, 128, 255]),
        w_zp in prop::sample::select(vec![vec![0i32], vec![-3], vec![]]),
    ) {
        let mut s = seed | 1;
        let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        let xs: Vec<u8> = (0..g.batch * g.in_channels * g.input.iter().product::<usize>())
            .map(|_| next() as u8)
            .collect();
        let k = g.in_channels / g.groups * g.taps();
        let ws: Vec<i8> = (0..g.out_channels * k).map(|_| next() as i8).collect();
        // Empty stands for per-channel zero points.
        let zps: Vec<i32> = if w_zp.is_empty() {
            (0..g.out_channels).map(|c| c as i32 % 5 - 2).collect()
        } else {
            w_zp
        };
        for model in [PairModel::Exact, PairModel::Im2colPairs] {
            let mut want = vec![0i32; g.batch * g.out_channels * g.out_positions()];
            let want_sat = conv_ref::conv_u8_i8_i32(&g, &xs, x_zp, &ws, &zps, model, &mut want);
            for (tier, gemm) in TIERS.iter().zip(TIER_GEMMS) {
                if let Err(e) = tier.check() {
                    eprintln!("skipping {tier}: {e}");
                    continue;
                }
                let caches = vec![PackCache::default(); g.groups];
                for _ in 0..2 {
                    let mut got = vec![0i32; want.len()];
                    let sat = conv_ref::conv_u8_i8_i32_with(
                        &g, &xs, x_zp, &ws, &zps, model, &mut got, gemm, &caches,
                    );
                    prop_assert_eq!(&got, &want, "{} {:?}", tier, model);
                    prop_assert_eq!(sat, want_sat);
                }
            }
        }
    }
}

/// An N-D geometry: `dims` spatial dims of input sizes up to `size`, 1 or 2 groups of `cg`
/// inputs and `og` outputs, any kernel, stride, dilation and padding.
fn geometry(
    dims: RangeInclusive<usize>,
    size: usize,
    cg: RangeInclusive<usize>,
    og: RangeInclusive<usize>,
) -> impl Strategy<Value = ConvGeometry> {
    (dims, 1usize..=2, cg, og, 1usize..=2).prop_flat_map(move |(dims, groups, cg, og, batch)| {
        let dim = (
            1usize..=size,
            1usize..=3,
            1usize..=3,
            1usize..=2,
            0usize..=2,
        );
        prop::collection::vec(dim, dims).prop_map(move |per_dim| {
            let (mut input, mut kernel, mut stride, mut padding, mut dilation, mut output) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for (i, k, s, d, p) in per_dim {
                let span = d * (k - 1) + 1;
                let i = i.max(span);
                input.push(i);
                kernel.push(k);
                stride.push(s);
                dilation.push(d);
                padding.push(p);
                output.push((i + 2 * p - span) / s + 1);
            }
            ConvGeometry {
                batch,
                in_channels: groups * cg,
                out_channels: groups * og,
                groups,
                input,
                kernel,
                stride,
                padding,
                dilation,
                output,
            }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The exact NCHW path (weights as rows, k-major im2col, no transposes) returns the
    /// reference's exact accumulators on every tier the host has, the scalar one included, and
    /// its fused requantization the element rule's bytes for them (either engine, ReLU or not).
    #[test]
    fn nchw_exact_conv_equals_reference_on_every_tier(
        // Groups of ≥ 8 outputs: what the path takes.
        g in geometry(1..=3, 9, 1..=6, 8..=20),
        seed in any::<u64>(),
        x_zp in prop::sample::select(vec![0i32, 128, 255, 37]),
        w_zp in prop::sample::select(vec![0i32, -3, 100]),
        per_group in any::<bool>(),
        (qnnpack, relu) in any::<(bool, bool)>(),
    ) {
        let (xs, ws) = extreme_operands(&g, seed);
        let k = g.in_channels / g.groups * g.taps();
        let og = g.out_channels / g.groups;
        // One zero point per group is what the path takes: per-tensor, or per-channel values
        // that are constant within each group.
        let zps: Vec<i32> = if per_group {
            (0..g.out_channels).map(|c| w_zp + (c / og) as i32).collect()
        } else {
            vec![w_zp]
        };
        prop_assert!(conv_nchw::supports(&g, &zps));
        // The reference takes (tap, channel) rows; the NCHW path PyTorch's (channel, tap) ones.
        let taps = g.taps();
        let cg = g.in_channels / g.groups;
        let taps_major: Vec<i8> = (0..g.out_channels)
            .flat_map(|o| (0..taps).flat_map(move |t| (0..cg).map(move |c| (o, c, t))))
            .map(|(o, c, t)| ws[o * k + c * taps + t])
            .collect();
        let mut want = vec![0i32; g.batch * g.out_channels * g.out_positions()];
        conv_ref::conv_u8_i8_i32(&g, &xs, x_zp, &taps_major, &zps, PairModel::Exact, &mut want);
        let flipped = flip_weights(&ws);
        let rq = spread_requant(qnnpack, relu, g.out_channels);
        let want_u8 = requantized(&rq, &want, &g);
        let op = conv_nchw::Operands { g: &g, x: &xs, x_zp, w_flipped: &flipped, w_zp: &zps };
        for tier in ALL.into_iter().filter(|t| t.is_available()) {
            let mut got = vec![i32::MIN; want.len()];
            conv_nchw::conv_u8_i8_i32_exact(tier, &op, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "{} {:?}", tier, g);
            let mut got_u8 = vec![0u8; want.len()];
            conv_nchw::conv_u8_i8_u8_exact(tier, &op, &rq, &mut got_u8).unwrap();
            prop_assert_eq!(&got_u8, &want_u8, "{} {:?} requantized", tier, g);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The implicit channels-last GEMM (rows gathered from the padded input, result written
    /// transposed) returns the reference's accumulators and saturation counts under both GEMM
    /// pair models on every tier the host has, the scalar one included, with panels packed on
    /// the first call and reused on the second; its fused requantization returns the element
    /// rule's bytes. Input planes and channel counts reach past 16, and outputs past 32, so the
    /// SSE2 transposes with their overlapping tails, several 32-column panels and masked
    /// 16-lane requantization tails are all exercised.
    #[test]
    fn implicit_conv_equals_reference_on_every_tier(
        g in geometry(1..=2, 20, 1..=20, 1..=40),
        seed in any::<u64>(),
        x_zp in prop::sample::select(vec![0i32, 128, 255, 37]),
        w_zp in prop::sample::select(vec![vec![0i32], vec![-3], vec![]]),
        (qnnpack, relu) in any::<(bool, bool)>(),
    ) {
        check_implicit(&g, seed, x_zp, w_zp, qnnpack, relu)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The same for 3×3 convs with hundreds of channels per group (K 4140–4230, a deep ResNet
    /// stage's), whose panels are large enough for the driver's next-panel prefetches.
    #[test]
    fn deep_implicit_conv_equals_reference_on_every_tier(
        g in deep_geometry(),
        seed in any::<u64>(),
        x_zp in prop::sample::select(vec![0i32, 128, 255, 37]),
        w_zp in prop::sample::select(vec![vec![0i32], vec![-3], vec![]]),
        (qnnpack, relu) in any::<(bool, bool)>(),
    ) {
        check_implicit(&g, seed, x_zp, w_zp, qnnpack, relu)?;
    }
}

/// A 2-D 3×3 conv of 460–470 channels per group on small planes (stride 1–2, padding 0–1).
fn deep_geometry() -> impl Strategy<Value = ConvGeometry> {
    let dims = (3usize..=5, 3usize..=5, 1usize..=2, 0usize..=1);
    (1usize..=2, 1usize..=2, 460usize..=470, 1usize..=40, dims).prop_map(
        |(batch, groups, cg, og, (h, w, s, p))| ConvGeometry {
            batch,
            in_channels: groups * cg,
            out_channels: groups * og,
            groups,
            input: vec![h, w],
            kernel: vec![3, 3],
            stride: vec![s, s],
            padding: vec![p, p],
            dilation: vec![1, 1],
            output: vec![(h + 2 * p - 3) / s + 1, (w + 2 * p - 3) / s + 1],
        },
    )
}

/// The implicit conv of `g` on random extreme operands against the reference on every tier
/// the host has (see the two tests above); an empty `w_zp` stands for per-channel zero points.
fn check_implicit(
    g: &ConvGeometry,
    seed: u64,
    x_zp: i32,
    w_zp: Vec<i32>,
    qnnpack: bool,
    relu: bool,
) -> Result<(), TestCaseError> {
    let (xs, ws) = extreme_operands(g, seed);
    // Empty stands for per-channel zero points.
    let zps: Vec<i32> = if w_zp.is_empty() {
        (0..g.out_channels).map(|c| c as i32 % 5 - 2).collect()
    } else {
        w_zp
    };
    let rq = spread_requant(qnnpack, relu, g.out_channels);
    for model in [PairModel::Exact, PairModel::Im2colPairs] {
        prop_assert!(conv_implicit::supports(g, model));
        let mut want = vec![0i32; g.batch * g.out_channels * g.out_positions()];
        let want_sat = conv_ref::conv_u8_i8_i32(g, &xs, x_zp, &ws, &zps, model, &mut want);
        let want_u8 = requantized(&rq, &want, g);
        let caches = vec![PackCache::default(); g.groups];
        let op = conv_ref::Operands {
            g,
            x: &xs,
            x_zp,
            w: &ws,
            w_zp: &zps,
            model,
        };
        for tier in ALL.into_iter().filter(|t| t.is_available()) {
            for _ in 0..2 {
                let mut got = vec![i32::MIN; want.len()];
                let sat = conv_implicit::conv_u8_i8_i32_on(tier, &op, &caches, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{} {:?} {:?}", tier, model, g);
                prop_assert_eq!(sat, want_sat, "{} {:?}", tier, model);
                let mut got_u8 = vec![0u8; want.len()];
                let sat =
                    conv_implicit::conv_u8_i8_u8_on(tier, &op, &caches, &rq, &mut got_u8).unwrap();
                prop_assert_eq!(&got_u8, &want_u8, "{} {:?} requantized", tier, model);
                prop_assert_eq!(sat, want_sat);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The channels-last depthwise kernel requantizes the reference's exact accumulators on
    /// every tier the host has (the scalar one included): channel counts below, at and past
    /// the 64-channel register runs (partial runs on the portable loop), any stride, padding,
    /// dilation, 1-D and 2-D, batches of 1–2. Under `Im2colPairs` it only claims convs whose
    /// pairs cannot saturate, where the exact sums are the pair-saturating ones.
    #[test]
    fn hwc_depthwise_equals_reference_on_every_tier(
        c in prop_oneof![1usize..=8, 60usize..=70, Just(128usize), 129usize..=140],
        dims in prop_oneof![
            (1usize..=3, 1usize..=2, 0usize..=1, 1usize..=2, 1usize..=9).prop_map(|d| vec![d]),
            ((1usize..=3, 1usize..=2, 0usize..=1, 1usize..=2, 1usize..=7),
             (1usize..=3, 1usize..=2, 0usize..=1, 1usize..=2, 1usize..=7)).prop_map(|(a, b)| vec![a, b]),
        ],
        batch in 1usize..=2,
        seed in any::<u64>(),
        x_zp in prop::sample::select(vec![0i32, 128, 255, 37]),
        (qnnpack, relu, pairs) in any::<(bool, bool, bool)>(),
    ) {
        // Inputs at least as large as the window's reach, so every output exists.
        let dims: Vec<_> = dims
            .into_iter()
            .map(|(k, s, p, d, i)| (k, s, p.min(k - 1), d, i.max(d * (k - 1) + 1)))
            .collect();
        let g = crate::support::depthwise_geometry(batch, c, 1, &dims);
        let (xs, mut ws) = extreme_operands(&g, seed);
        if pairs {
            // Small weights: no pair can reach i16's bounds, so the kernel takes the conv.
            ws.iter_mut().for_each(|w| *w /= 2);
        }
        let model = if pairs { PairModel::Im2colPairs } else { PairModel::Exact };
        let zps = [0i32];
        let op = conv_ref::Operands { g: &g, x: &xs, x_zp, w: &ws, w_zp: &zps, model };
        prop_assert!(depthwise_hwc::supports(&op));
        let mut want = vec![0i32; g.batch * c * g.out_positions()];
        conv_ref::conv_u8_i8_i32(&g, &xs, x_zp, &ws, &zps, PairModel::Exact, &mut want);
        let rq = spread_requant(qnnpack, relu, c);
        let want_u8 = requantized(&rq, &want, &g);
        for tier in ALL.into_iter().filter(|t| t.is_available()) {
            let mut got = vec![0u8; want.len()];
            depthwise_hwc::conv_u8_i8_u8_on(tier, &op, &rq, &mut got).unwrap();
            prop_assert_eq!(&got, &want_u8, "{} {:?}", tier, g);
        }
    }
}

/// Asymmetric weights, 2 outputs per channel, or pairs that can saturate under `Im2colPairs`
/// are not the channels-last kernel's.
#[test]
fn hwc_depthwise_declines_what_it_cannot_compute() {
    let g = crate::support::depthwise_geometry(1, 4, 1, &[(3, 1, 1, 1, 5), (3, 1, 1, 1, 5)]);
    let xs = vec![255u8; 4 * 25];
    let ws = vec![127i8; 4 * 9];
    let op = |w_zp: &'static [i32], model| conv_ref::Operands {
        g: &g,
        x: &xs,
        x_zp: 0,
        w: &ws,
        w_zp,
        model,
    };
    assert!(depthwise_hwc::supports(&op(&[0], PairModel::Exact)));
    assert!(!depthwise_hwc::supports(&op(&[3], PairModel::Exact)));
    assert!(!depthwise_hwc::supports(&op(&[0], PairModel::Im2colPairs)));
    let mut two = g.clone();
    two.out_channels = 8;
    let ws2 = vec![1i8; 8 * 9];
    let op2 = conv_ref::Operands {
        g: &two,
        x: &xs,
        x_zp: 0,
        w: &ws2,
        w_zp: &[0],
        model: PairModel::Exact,
    };
    assert!(!depthwise_hwc::supports(&op2));
}
