//! Every SIMD tier the host has against the scalar element rules, bit for bit.
//!
//! Inputs are adversarial on purpose: lengths 0..300 (so every tail length occurs), exact and
//! near `k + 0.5` ties of `x * inv`, signed zeros, denormals, NaNs with assorted payloads, ±inf,
//! values around ±2^31 after scaling, extreme zero points and scales that f32 cannot represent.
//! Tiers the host lacks are reported as `skipped <tier>: <reason>`, never silently dropped.

use proptest::prelude::*;
use qlab::isa::{ALL, Isa};
use qlab::tensor::quantize::{
    dequantize_val, dequantize_val_per_channel, inv_scale, quantize_val_8bit, quantize_val_i32,
    quantize_val_per_channel,
};
use qlab::tensor::simd::{self, ChannelLayout, QInt};
use qlab::tensor::{QDType, QTensor};

/// The tiers this host can run; the others are reported once.
fn tiers() -> Vec<Isa> {
    crate::support::tiers(|_| "the element rules".into())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// How one input element is made, relative to the scale of the case.
#[derive(Debug, Clone)]
enum Recipe {
    /// `(k + 0.5) * scale` nudged by a few ulps: exact and near ties of `x * inv`.
    Tie(i32, i8),
    /// `(±2^31 + 128 * d) * scale`: the clip bound and the `cvtps2dq` overflow edge.
    NearTwoPow31(bool, i8),
    /// A fixed special value.
    Special(usize),
    /// Any bit pattern (NaNs with payloads, denormals, huge values).
    Bits(u32),
    /// A value inside the usual range of the dtype.
    Plain(f32),
}

const SPECIALS: [f32; 13] = [
    0.0,
    -0.0,
    f32::NAN,
    -f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1.0e-45,
    -1.0e-45,
    1.0e30,
    -1.0e30,
];

fn nudge(x: f32, ulps: i8) -> f32 {
    if !x.is_finite() {
        return x;
    }
    f32::from_bits((x.to_bits() as i32).wrapping_add(ulps as i32) as u32)
}

impl Recipe {
    fn make(&self, scale: f64) -> f32 {
        let s = scale as f32;
        match *self {
            Recipe::Tie(k, ulps) => nudge((k as f32 + 0.5) * s, ulps),
            Recipe::NearTwoPow31(neg, d) => {
                let t = 2_147_483_648.0f32 + 128.0 * d as f32;
                (if neg { -t } else { t }) * s
            }
            Recipe::Special(i) => SPECIALS[i],
            Recipe::Bits(b) => f32::from_bits(b),
            Recipe::Plain(v) => v * s,
        }
    }
}

fn recipe() -> impl Strategy<Value = Recipe> {
    prop_oneof![
        3 => (-300i32..300, -2i8..=2).prop_map(|(k, u)| Recipe::Tie(k, u)),
        1 => (any::<bool>(), -3i8..=3).prop_map(|(n, d)| Recipe::NearTwoPow31(n, d)),
        2 => (0..SPECIALS.len()).prop_map(Recipe::Special),
        2 => any::<u32>().prop_map(Recipe::Bits),
        2 => (-400.0f32..400.0).prop_map(Recipe::Plain),
    ]
}

/// Scales inside the usual range: f32-exact ones, powers of two (exact ties) and f64 values f32
/// cannot hold.
fn moderate_scale() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => (-20.0f64..10.0).prop_map(|e| 2f64.powf(e)),
        1 => (-20i32..10).prop_map(|e| 2f64.powi(e)),
        1 => (-20.0f32..10.0).prop_map(|e| 2f32.powf(e) as f64),
        1 => prop::sample::select(vec![1.0, 0.1, 1.0 / 3.0]),
    ]
}

/// Moderate scales plus extremes whose f32 rounding or reciprocal overflows or underflows.
fn scale() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => moderate_scale(),
        1 => prop::sample::select(vec![1e-40, 1e-45, 3e38, 1e-300]),
    ]
}

fn zero_point<T: QInt>() -> BoxedStrategy<i32> {
    let (lo, hi) = (T::QMIN, T::QMAX);
    prop_oneof![
        1 => prop::sample::select(vec![lo, hi, 0, lo / 2 + hi / 2 + 1, lo + 1, hi - 1]),
        1 => lo..=hi,
    ]
    .boxed()
}

/// A short non-empty pattern, repeated to fill per-channel buffers.
fn recipes() -> impl Strategy<Value = Vec<Recipe>> {
    prop::collection::vec(recipe(), 1..64)
}

fn inputs() -> impl Strategy<Value = Vec<Recipe>> {
    prop::collection::vec(recipe(), 0..300)
}

/// The per-tensor rule of `T`, one element at a time.
fn quantize_ref<T: QInt>(x: f32, inv: f32, zp: i32) -> i32 {
    match T::DTYPE {
        QDType::QInt32 => quantize_val_i32(x, inv, zp),
        _ => quantize_val_8bit(x, inv, zp, T::QMIN, T::QMAX),
    }
}

fn check_quantize_per_tensor<T: QInt + std::fmt::Debug>(
    recipes: &[Recipe],
    scale: f64,
    zp: i32,
) -> Result<(), TestCaseError> {
    let x: Vec<f32> = recipes.iter().map(|r| r.make(scale)).collect();
    let inv = inv_scale(scale);
    let want: Vec<i32> = x.iter().map(|&v| quantize_ref::<T>(v, inv, zp)).collect();
    // Misaligned views too: the kernels must not care where a slice starts.
    let (n, off) = (x.len(), x.len() % 4);
    let shifted = misaligned(&x, off);
    for isa in tiers() {
        let mut out = vec![T::default(); n + 3];
        simd::quantize_per_tensor_on(
            isa,
            &shifted[off..off + n],
            &mut out[3 - off..][..n],
            scale,
            zp,
        )
        .unwrap();
        let got: Vec<i32> = out[3 - off..][..n].iter().map(|q| q.to_i32()).collect();
        prop_assert_eq!(
            &got,
            &want,
            "{} {:?} scale={} zp={}",
            isa,
            T::DTYPE,
            scale,
            zp
        );
    }
    Ok(())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// `v` copied after `off` filler elements, so that `&result[off..]` starts at another alignment.
fn misaligned<T: Copy + Default>(v: &[T], off: usize) -> Vec<T> {
    let mut out = vec![T::default(); off];
    out.extend_from_slice(v);
    out
}

fn check_dequantize_per_tensor<T: QInt>(
    q: &[i32],
    scale: f64,
    zp: i32,
) -> Result<(), TestCaseError> {
    let q: Vec<T> = q
        .iter()
        .map(|&v| T::from_i32(v.clamp(T::QMIN, T::QMAX)))
        .collect();
    let want: Vec<f32> = q
        .iter()
        .map(|v| dequantize_val(v.to_i32(), zp, scale as f32))
        .collect();
    let (n, off) = (q.len(), q.len() % 4);
    let shifted = misaligned(&q, off);
    for isa in tiers() {
        let mut out = vec![f32::NAN; n + 3];
        let out = &mut out[3 - off..][..n];
        simd::dequantize_per_tensor_on(isa, &shifted[off..], out, scale, zp).unwrap();
        prop_assert_eq!(
            bits(out),
            bits(&want),
            "{} {:?} scale={} zp={}",
            isa,
            T::DTYPE,
            scale,
            zp
        );
    }
    Ok(())
}

/// A per-channel case: layout, one (scale, zero point) per channel, and `outer` periods.
fn channel_case<T: QInt>() -> impl Strategy<Value = (ChannelLayout, usize, Vec<(f64, i32)>)> {
    (1usize..5, 0usize..40, 1usize..4).prop_flat_map(|(channels, inner, outer)| {
        let qparams = prop::collection::vec((scale(), zero_point::<T>()), channels);
        (
            Just(ChannelLayout { channels, inner }),
            Just(outer),
            qparams,
        )
    })
}

fn split(qparams: &[(f64, i32)]) -> (Vec<f64>, Vec<i64>) {
    qparams.iter().map(|&(s, z)| (s, z as i64)).unzip()
}

fn channel_of(i: usize, layout: ChannelLayout) -> usize {
    (i / layout.inner.max(1)) % layout.channels
}

fn check_quantize_per_channel<T: QInt>(
    layout: ChannelLayout,
    outer: usize,
    qparams: &[(f64, i32)],
    recipes: &[Recipe],
) -> Result<(), TestCaseError> {
    let n = outer * layout.channels * layout.inner;
    let x: Vec<f32> = (0..n)
        .map(|i| recipes[i % recipes.len()].make(qparams[channel_of(i, layout)].0))
        .collect();
    let want: Vec<i32> = (0..n)
        .map(|i| {
            let (s, z) = qparams[channel_of(i, layout)];
            quantize_val_per_channel(x[i], inv_scale(s), z, T::QMIN, T::QMAX)
        })
        .collect();
    let (scales, zps) = split(qparams);
    for isa in tiers() {
        let mut out = vec![T::default(); n];
        simd::quantize_per_channel_on(isa, &x, &mut out, layout, &scales, &zps).unwrap();
        let got: Vec<i32> = out.iter().map(|q| q.to_i32()).collect();
        prop_assert_eq!(&got, &want, "{} {:?} {:?}", isa, T::DTYPE, layout);
    }
    Ok(())
}

fn check_dequantize_per_channel<T: QInt>(
    layout: ChannelLayout,
    outer: usize,
    qparams: &[(f64, i32)],
    raw: &[i32],
) -> Result<(), TestCaseError> {
    let n = outer * layout.channels * layout.inner;
    let q: Vec<T> = (0..n)
        .map(|i| T::from_i32(raw[i % raw.len()].clamp(T::QMIN, T::QMAX)))
        .collect();
    let want: Vec<f32> = (0..n)
        .map(|i| {
            let (s, z) = qparams[channel_of(i, layout)];
            dequantize_val_per_channel(q[i].to_i32(), z as i64, s)
        })
        .collect();
    let (scales, zps) = split(qparams);
    for isa in tiers() {
        let mut out = vec![f32::NAN; n];
        simd::dequantize_per_channel_on(isa, &q, &mut out, layout, &scales, &zps).unwrap();
        prop_assert_eq!(
            bits(&out),
            bits(&want),
            "{} {:?} {:?}",
            isa,
            T::DTYPE,
            layout
        );
    }
    Ok(())
}

/// Raw integers for dequantize: extremes of every dtype plus uniform ones (clamped per dtype).
fn raw_ints() -> impl Strategy<Value = Vec<i32>> {
    let one = prop_oneof![
        1 => prop::sample::select(vec![i32::MIN, i32::MAX, -128, 127, 0, 255, -1, 1]),
        2 => any::<i32>(),
        2 => -200i32..300,
    ];
    prop::collection::vec(one, 1..300)
}

/// An independent min/max: the IEEE total order on non-NaN values, NaN poisoning both.
fn min_max_ref(x: &[f32]) -> (f32, f32) {
    if x.is_empty() {
        return (0.0, 0.0);
    }
    if x.iter().any(|v| v.is_nan()) {
        return (f32::NAN, f32::NAN);
    }
    let lo = x.iter().copied().min_by(f32::total_cmp).unwrap();
    let hi = x.iter().copied().max_by(f32::total_cmp).unwrap();
    (lo, hi)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn quantize_per_tensor_quint8(r in inputs(), s in scale(), z in zero_point::<u8>()) {
        check_quantize_per_tensor::<u8>(&r, s, z)?;
    }

    #[test]
    fn quantize_per_tensor_qint8(r in inputs(), s in scale(), z in zero_point::<i8>()) {
        check_quantize_per_tensor::<i8>(&r, s, z)?;
    }

    #[test]
    fn quantize_per_tensor_qint32(r in inputs(), s in scale(), z in zero_point::<i32>()) {
        check_quantize_per_tensor::<i32>(&r, s, z)?;
    }

    #[test]
    fn dequantize_per_tensor_all_dtypes(
        q in raw_ints(),
        s in scale(),
        z8 in zero_point::<u8>(),
        zs in zero_point::<i8>(),
        z32 in zero_point::<i32>(),
    ) {
        check_dequantize_per_tensor::<u8>(&q, s, z8)?;
        check_dequantize_per_tensor::<i8>(&q, s, zs)?;
        check_dequantize_per_tensor::<i32>(&q, s, z32)?;
    }

    #[test]
    fn quantize_per_channel_quint8(c in channel_case::<u8>(), r in recipes()) {
        check_quantize_per_channel::<u8>(c.0, c.1, &c.2, &r)?;
    }

    #[test]
    fn quantize_per_channel_qint8(c in channel_case::<i8>(), r in recipes()) {
        check_quantize_per_channel::<i8>(c.0, c.1, &c.2, &r)?;
    }

    #[test]
    fn quantize_per_channel_qint32(c in channel_case::<i32>(), r in recipes()) {
        check_quantize_per_channel::<i32>(c.0, c.1, &c.2, &r)?;
    }

    #[test]
    fn dequantize_per_channel_all_dtypes(
        c8 in channel_case::<u8>(),
        cs in channel_case::<i8>(),
        c32 in channel_case::<i32>(),
        q in raw_ints(),
    ) {
        check_dequantize_per_channel::<u8>(c8.0, c8.1, &c8.2, &q)?;
        check_dequantize_per_channel::<i8>(cs.0, cs.1, &cs.2, &q)?;
        check_dequantize_per_channel::<i32>(c32.0, c32.1, &c32.2, &q)?;
    }

    #[test]
    fn min_max_matches_total_order(r in inputs(), s in scale(), zeros_only in any::<bool>()) {
        // `zeros_only` makes inputs of mixed ±0.0 (and maybe NaN), where signed-zero order shows.
        let x: Vec<f32> = r.iter().map(|r| r.make(s)).map(|v| if zeros_only && !v.is_nan() {
            if v.is_sign_negative() { -0.0 } else { 0.0 }
        } else { v }).collect();
        let (lo, hi) = min_max_ref(&x);
        for isa in tiers() {
            let (glo, ghi) = simd::min_max_on(isa, &x).unwrap();
            let (got, want) = ((glo.to_bits(), ghi.to_bits()), (lo.to_bits(), hi.to_bits()));
            prop_assert_eq!(got, want, "{} n={}", isa, x.len());
        }
    }

    #[test]
    fn min_max_per_channel_matches_each_channel(
        channels in 1usize..5,
        inner in 0usize..40,
        outer in 0usize..3,
        r in recipes(),
        s in scale(),
    ) {
        let layout = ChannelLayout { channels, inner };
        let n = outer * channels * inner;
        let x: Vec<f32> = (0..n).map(|i| r[i % r.len()].make(s)).collect();
        let want: Vec<(u32, u32)> = (0..channels)
            .map(|c| {
                let mine = (0..n).filter(|&i| channel_of(i, layout) == c);
                let xs: Vec<f32> = mine.map(|i| x[i]).collect();
                let (lo, hi) = min_max_ref(&xs);
                (lo.to_bits(), hi.to_bits())
            })
            .collect();
        for isa in tiers() {
            let got = simd::min_max_per_channel_on(isa, &x, layout).unwrap();
            let got: Vec<(u32, u32)> =
                got.iter().map(|(lo, hi)| (lo.to_bits(), hi.to_bits())).collect();
            prop_assert_eq!(&got, &want, "{} {:?} outer={}", isa, layout, outer);
        }
    }

    /// `|dequantize(quantize(x)) - x| <= scale / 2` inside the representable range, up to the
    /// rounding of the f32 reciprocal (a few ulps of x).
    #[test]
    fn round_trip_error_is_half_a_step(
        t in prop::collection::vec(0.0f64..=1.0, 0..300),
        s in moderate_scale(),
        z in zero_point::<u8>(),
        zs in zero_point::<i8>(),
        channels in 1usize..4,
    ) {
        half_step_law::<u8>(&t, s, z, channels)?;
        half_step_law::<i8>(&t, s, zs, channels)?;
    }

    /// `quantize(dequantize(q)) == q` for 8-bit storage, per tensor and per channel.
    #[test]
    fn dequantize_then_quantize_is_identity(
        raw in raw_ints(),
        s in moderate_scale(),
        z in zero_point::<u8>(),
        zs in zero_point::<i8>(),
    ) {
        let qu: Vec<u8> = raw.iter().map(|&v| v.clamp(0, 255) as u8).collect();
        let qs: Vec<i8> = raw.iter().map(|&v| v.clamp(-128, 127) as i8).collect();
        for isa in tiers() {
            prop_assert_eq!(&round_trip(isa, &qu, s, z), &qu, "{}", isa);
            prop_assert_eq!(&round_trip(isa, &qs, s, zs), &qs, "{}", isa);
            let layout = ChannelLayout { channels: 1, inner: qu.len() };
            let mut x = vec![0.0; qu.len()];
            simd::dequantize_per_channel_on(isa, &qu, &mut x, layout, &[s], &[z as i64]).unwrap();
            let mut back = vec![0u8; qu.len()];
            simd::quantize_per_channel_on(isa, &x, &mut back, layout, &[s], &[z as i64]).unwrap();
            prop_assert_eq!(&back, &qu, "{} per channel", isa);
        }
    }
}

/// The values `t` (in 0..=1) spread over the range `T` represents at `scale` and `zp`, quantized
/// and dequantized per tensor, then per channel with channel `c` at `scale * 2^-c`.
fn half_step_law<T: QInt>(
    t: &[f64],
    scale: f64,
    zp: i32,
    channels: usize,
) -> Result<(), TestCaseError> {
    let span = |s: f64| {
        move |u: f64| (((T::QMIN - zp) as f64 + u * (T::QMAX - T::QMIN) as f64) * s) as f32
    };
    let check =
        |x: &[f32], back: &[f32], step: &dyn Fn(usize) -> f64| -> Result<(), TestCaseError> {
            for (i, (&v, &g)) in x.iter().zip(back).enumerate() {
                let bound = step(i) / 2.0 + (v as f64).abs() * 4.0 * f32::EPSILON as f64;
                prop_assert!(
                    (g as f64 - v as f64).abs() <= bound,
                    "x={} got={} step={}",
                    v,
                    g,
                    step(i)
                );
            }
            Ok(())
        };
    let x: Vec<f32> = t.iter().copied().map(span(scale)).collect();
    let layout = ChannelLayout {
        channels,
        inner: x.len() / channels,
    };
    let n = channels * layout.inner;
    let scales: Vec<f64> = (0..channels)
        .map(|c| scale * 2f64.powi(-(c as i32)))
        .collect();
    let zps = vec![zp as i64; channels];
    let xc: Vec<f32> = (0..n)
        .map(|i| span(scales[channel_of(i, layout)])(t[i]))
        .collect();
    for isa in tiers() {
        let mut q = vec![T::default(); x.len()];
        let mut back = vec![0.0; x.len()];
        simd::quantize_per_tensor_on(isa, &x, &mut q, scale, zp).unwrap();
        simd::dequantize_per_tensor_on(isa, &q, &mut back, scale, zp).unwrap();
        check(&x, &back, &|_| scale as f32 as f64)?;
        let (mut q, mut back) = (vec![T::default(); n], vec![0.0; n]);
        simd::quantize_per_channel_on(isa, &xc, &mut q, layout, &scales, &zps).unwrap();
        simd::dequantize_per_channel_on(isa, &q, &mut back, layout, &scales, &zps).unwrap();
        check(&xc, &back, &|i| scales[channel_of(i, layout)])?;
    }
    Ok(())
}

fn round_trip<T: QInt>(isa: Isa, q: &[T], scale: f64, zp: i32) -> Vec<T> {
    let mut x = vec![0.0; q.len()];
    simd::dequantize_per_tensor_on(isa, q, &mut x, scale, zp).unwrap();
    let mut back = vec![T::default(); q.len()];
    simd::quantize_per_tensor_on(isa, &x, &mut back, scale, zp).unwrap();
    back
}

#[test]
fn unavailable_tiers_are_errors_not_fallbacks() {
    for isa in ALL.into_iter().filter(|t| !t.is_available()) {
        let mut out = [0u8; 4];
        assert!(simd::quantize_per_tensor_on(isa, &[1.0; 4], &mut out, 0.5, 3).is_err());
        assert!(simd::min_max_on(isa, &[1.0]).is_err());
    }
}

#[test]
fn qtensor_paths_match_on_views_and_layouts() {
    // A 3-d tensor quantized along each axis, then dequantized: the contiguous fast path and the
    // strided path of a transposed-free reshape must agree with the element rules.
    let shape = [3usize, 5, 7];
    let x: Vec<f32> = (0..105).map(|i| (i as f32 - 50.0) * 0.37).collect();
    for axis in 0..3 {
        let c = shape[axis];
        let scales: Vec<f64> = (0..c).map(|i| 0.1 + 0.05 * i as f64).collect();
        let zps: Vec<i64> = (0..c).map(|i| i as i64 * 7).collect();
        let q =
            QTensor::quantize_per_channel(&x, &shape, &scales, &zps, axis as i64, QDType::QUInt8)
                .unwrap();
        let layout = ChannelLayout::of(&shape, axis);
        let want: Vec<i32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = channel_of(i, layout);
                quantize_val_per_channel(v, inv_scale(scales[ch]), zps[ch] as i32, 0, 255)
            })
            .collect();
        assert_eq!(q.int_values(), want, "axis {axis}");
        let deq: Vec<u32> = bits(&q.dequantize());
        let want: Vec<u32> = want
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = channel_of(i, layout);
                dequantize_val_per_channel(v, zps[ch], scales[ch]).to_bits()
            })
            .collect();
        assert_eq!(deq, want, "axis {axis}");
    }
}
