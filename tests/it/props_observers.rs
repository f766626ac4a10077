//! Laws of the observer layer: qparams always represent zero exactly and respect eps and the
//! symmetric zero point, the spec text round-trips, every histc tier equals the scalar one,
//! no input panics, and each misconfiguration is reported as its typed error.

use proptest::prelude::*;
use qlab::isa::{ALL, Isa};
use qlab::observer::{
    ALL_KINDS, ObserverError, ObserverKind, ObserverSpec, Stats, histc_on, qparams_from_min_max,
    qparams_from_stats,
};
use qlab::tensor::quantize::{inv_scale, quantize_val_8bit};
use qlab::tensor::{DType, QScheme};

/// A valid per-tensor quantizing spec: dtype, qscheme, reduce_range and an optional custom range.
fn range_spec() -> impl Strategy<Value = ObserverSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of((-128i64..=0, 0i64..=127)),
        1e-9f32..1e-3,
    )
        .prop_map(|(signed, symmetric, reduce, custom, eps)| {
            let dtype = if signed { DType::QInt8 } else { DType::QUInt8 };
            let qscheme = if symmetric {
                QScheme::PerTensorSymmetric
            } else {
                QScheme::PerTensorAffine
            };
            let mut spec = ObserverSpec::new(ObserverKind::MinMax)
                .with_dtype(dtype)
                .with_qscheme(qscheme)
                .with_eps(eps);
            if let Some((lo, hi)) = custom {
                let (lo, hi) = if signed { (lo, hi) } else { (0, hi + 128) };
                if lo < hi {
                    spec = spec.with_quant_range(lo, hi);
                }
            }
            // quint8 symmetric with reduce_range is refused at construction; leave it out here.
            spec.with_reduce_range(reduce && (!symmetric || signed))
        })
}

fn finite() -> impl Strategy<Value = f32> {
    prop_oneof![-1e6f32..1e6, -1.0f32..1.0, Just(0.0f32), -1e-30f32..1e-30]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn qparams_represent_zero_and_respect_eps(spec in range_spec(), a in finite(), b in finite()) {
        let (min, max) = if a <= b { (a, b) } else { (b, a) };
        let q = qparams_from_min_max(&[min], &[max], None, &spec).unwrap();
        let range = spec.quant_range().unwrap();
        let (scale, zp) = (q.scales[0], q.zero_points[0]);
        prop_assert!(range.quant_min <= zp && zp <= range.quant_max, "zp {zp} outside {range:?}");
        prop_assert!(scale >= spec.eps, "scale {scale} < eps {}", spec.eps);
        let zero = quantize_val_8bit(0.0, inv_scale(scale as f64), zp as i32, range.quant_min as i32, range.quant_max as i32);
        prop_assert_eq!(zero as i64, zp, "0.0 must quantize to the zero point");
        if spec.qscheme.is_symmetric() {
            let want = match (spec.dtype, range.customized) {
                (DType::QUInt8, false) => 128,
                (DType::QUInt8, true) => (range.quant_min + range.quant_max).div_euclid(2),
                _ => 0,
            };
            prop_assert_eq!(zp, want);
        }
    }

    #[test]
    fn per_channel_observer_matches_per_tensor_per_channel(
        rows in 1usize..6, cols in 1usize..7, data in prop::collection::vec(finite(), 42), axis in -2i64..2,
    ) {
        let x = &data[..rows * cols];
        let spec = ObserverSpec::new(ObserverKind::PerChannelMinMax).with_ch_axis(axis);
        let mut obs = spec.build().unwrap();
        obs.forward(x, &[rows, cols]).unwrap();
        let q = obs.calculate_qparams().unwrap();
        let ax = if axis < 0 { (axis + 2) as usize } else { axis as usize };
        let channels = if ax == 0 { rows } else { cols };
        prop_assert_eq!(q.scales.len(), channels);
        for c in 0..channels {
            let vals: Vec<f32> = (0..rows * cols).filter(|i| if ax == 0 { i / cols == c } else { i % cols == c }).map(|i| x[i]).collect();
            let mut one = ObserverSpec::new(ObserverKind::MinMax).build().unwrap();
            one.forward(&vals, &[vals.len()]).unwrap();
            let single = one.calculate_qparams().unwrap();
            prop_assert_eq!(q.scales[c].to_bits(), single.scales[0].to_bits());
            prop_assert_eq!(q.zero_points[c], single.zero_points[0]);
        }
    }

    #[test]
    fn histc_tiers_equal_scalar(
        data in prop::collection::vec(prop_oneof![
            8 => -10.0f32..10.0,
            1 => Just(f32::NAN), 1 => Just(f32::INFINITY), 1 => Just(f32::NEG_INFINITY),
            1 => Just(-4.0f32), 1 => Just(4.0f32), 1 => any::<f32>(),
        ], 0..1500),
        lo in -6.0f32..0.0, width in prop_oneof![Just(0.0f32), 1e-6f32..12.0], bins in 1usize..300,
    ) {
        let want = histc_on(&data, bins, lo, lo + width, Isa::Scalar).unwrap();
        for isa in ALL.into_iter().filter(|&t| t != Isa::Scalar && t.is_available()) {
            let got = histc_on(&data, bins, lo, lo + width, isa).unwrap();
            // Counts bit for bit; the extremes by value (the sign of a zero extreme is unspecified).
            let bits = |h: &qlab::observer::Binned| (h.counts.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), h.min, h.max, h.nan);
            prop_assert_eq!(bits(&got), bits(&want), "tier {}", isa);
        }
    }

    #[test]
    fn spec_text_round_trips(
        kind in prop::sample::select(ALL_KINDS.to_vec()),
        dtype in prop::sample::select(vec![DType::QUInt8, DType::QInt8, DType::QInt32, DType::Float16, DType::Float32]),
        qscheme in prop::sample::select(vec![QScheme::PerTensorAffine, QScheme::PerTensorSymmetric, QScheme::PerChannelAffine, QScheme::PerChannelSymmetric]),
        flags in any::<(bool, bool)>(), range in prop::option::of((-300i64..300, -300i64..300)),
        eps in prop_oneof![Just(f32::EPSILON), any::<f32>()], c in any::<f32>(), axis in -5i64..5,
        bins in 0usize..5000, up in 0usize..200, p in any::<f64>(),
    ) {
        let mut spec = ObserverSpec::new(kind).with_dtype(dtype).with_qscheme(qscheme).with_reduce_range(flags.0)
            .with_eps(eps).with_averaging_constant(c).with_ch_axis(axis).with_bins(bins).with_upsample_rate(up)
            .with_is_dynamic(flags.1).with_percentile(p);
        if let Some((lo, hi)) = range {
            spec = spec.with_quant_range(lo, hi);
        }
        let text = spec.to_string();
        let back: ObserverSpec = text.parse().unwrap();
        let norm = spec.normalized();
        // NaN fields compare unequal; compare through the canonical text and the NaN-free fields.
        prop_assert_eq!(back.to_string(), text.clone());
        if !(eps.is_nan() || c.is_nan() || p.is_nan()) {
            prop_assert_eq!(back, norm);
        }
    }

    #[test]
    fn no_input_panics(
        kind in prop::sample::select(ALL_KINDS.to_vec()),
        data in prop::collection::vec(any::<f32>(), 0..40), cols in 1usize..5, axis in -3i64..3,
    ) {
        let spec = ObserverSpec::new(kind).with_ch_axis(axis).with_bins(64);
        let spec = if kind == ObserverKind::Placeholder || kind == ObserverKind::Noop { spec } else { spec.with_dtype(DType::QInt8) };
        let mut obs = spec.build().unwrap();
        let n = data.len() / cols * cols;
        let _ = obs.forward(&data[..n], &[n / cols, cols]);
        let _ = obs.forward(&data, &[data.len()]);
        let _ = obs.calculate_qparams();
        for other in ALL_KINDS {
            let _ = qparams_from_stats(&obs.stats(), &ObserverSpec::new(other));
        }
    }
}

#[test]
fn tiers_this_host_lacks_are_reported() {
    for isa in ALL.into_iter().filter(|t| !t.is_available()) {
        println!(
            "skip: histc tier {isa} is not available on this host ({})",
            isa.missing_features().join(", ")
        );
        assert!(histc_on(&[1.0], 4, 0.0, 1.0, isa).is_err());
    }
}

#[test]
fn spec_text_examples() {
    let cases = [
        ("minmax", "minmax"),
        (
            "histogram(bins=2048, reduce_range=true)",
            "histogram(reduce_range=true)",
        ),
        (
            "per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric, ch_axis=0)",
            "per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)",
        ),
        (
            "moving_average_minmax(averaging_constant=0.01)",
            "moving_average_minmax",
        ),
        (
            "placeholder(dtype=float16, is_dynamic=true)",
            "placeholder(dtype=float16, is_dynamic=true)",
        ),
        ("noop", "noop"),
        ("recording", "recording"),
        ("percentile(p=99.99)", "percentile"),
        ("percentile(p=99.9)", "percentile(p=99.9)"),
        ("entropy", "entropy"),
        ("mse(dtype=qint8)", "mse(dtype=qint8)"),
        (
            " minmax ( quant_min = 0 , quant_max = 15 ) ",
            "minmax(quant_min=0, quant_max=15)",
        ),
    ];
    for (text, canonical) in cases {
        let spec: ObserverSpec = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(spec.to_string(), canonical, "{text}");
        spec.validate().unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    assert_eq!(ObserverSpec::new(ObserverKind::Noop).dtype, DType::Float16);
    assert_eq!(
        ObserverSpec::new(ObserverKind::PerChannelMinMax).qscheme,
        QScheme::PerChannelAffine
    );
}

fn parse_err(text: &str) -> String {
    match text.parse::<ObserverSpec>() {
        Err(ObserverError::Parse { why, .. }) => why,
        other => panic!("{text}: expected a Parse error, got {other:?}"),
    }
}

#[test]
fn bad_spec_text_names_the_piece() {
    assert!(parse_err("minmaxx").contains("unknown observer 'minmaxx'"));
    assert!(
        parse_err("minmaxx").contains("histogram"),
        "lists the accepted names"
    );
    let why = parse_err("minmax(bins=3)");
    assert!(
        why.contains("unknown key 'bins'") && why.contains("quant_min"),
        "{why}"
    );
    assert!(parse_err("minmax(dtype=qint4)").contains("unknown dtype 'qint4'"));
    assert!(parse_err("minmax(reduce_range=yes)").contains("reduce_range"));
    assert!(parse_err("histogram(bins=-1)").contains("bins"));
    assert!(parse_err("minmax(eps)").contains("key=value"));
    assert!(parse_err("minmax(eps=1").contains("')'"));
    assert!(parse_err("minmax(eps=1, eps=2)").contains("twice"));
}

fn config_err(spec: ObserverSpec) -> ObserverError {
    spec.build().map(|_| ()).expect_err("must be refused")
}

#[test]
fn misconfigurations_are_typed() {
    let mm = || ObserverSpec::new(ObserverKind::MinMax);
    assert!(matches!(
        config_err(mm().with_quant_range(5, 5)),
        ObserverError::InvalidRange {
            quant_min: 5,
            quant_max: 5,
            ..
        }
    ));
    assert!(matches!(
        config_err(mm().with_quant_range(7, 3)),
        ObserverError::InvalidRange { .. }
    ));
    assert!(
        matches!(config_err(mm().with_quant_range(1, 15)), ObserverError::InvalidRange { why, .. } if why.contains("zero"))
    );
    assert!(
        matches!(config_err(mm().with_quant_range(0, 300)), ObserverError::InvalidRange { why, .. } if why.contains("fit"))
    );
    assert!(matches!(
        config_err(mm().with_dtype(DType::QInt8).with_quant_range(-200, 10)),
        ObserverError::InvalidRange { .. }
    ));
    let sym_rr = mm()
        .with_qscheme(QScheme::PerTensorSymmetric)
        .with_reduce_range(true);
    assert!(
        matches!(config_err(sym_rr.clone()), ObserverError::InvalidConfig(m) if m.contains("reduce_range"))
    );
    // The same with qint8 is fine.
    sym_rr.with_dtype(DType::QInt8).build().unwrap();
    assert!(matches!(
        config_err(ObserverSpec::new(ObserverKind::PerChannelMinMax).with_qscheme(QScheme::PerTensorAffine)),
        ObserverError::InvalidConfig(m) if m.contains("qscheme")
    ));
    assert!(matches!(
        config_err(ObserverSpec::new(ObserverKind::Histogram).with_qscheme(QScheme::PerChannelAffine)),
        ObserverError::InvalidConfig(m) if m.contains("qscheme")
    ));
    assert!(
        matches!(config_err(ObserverSpec::new(ObserverKind::Histogram).with_bins(0)), ObserverError::InvalidConfig(m) if m.contains("bins"))
    );
    assert!(
        matches!(config_err(mm().with_dtype(DType::Float16)), ObserverError::InvalidConfig(m) if m.contains("dtype"))
    );
    assert!(
        matches!(config_err(mm().with_eps(0.0)), ObserverError::InvalidConfig(m) if m.contains("eps"))
    );
    // reduce_range halves a custom range with floor division.
    let r = mm()
        .with_dtype(DType::QInt8)
        .with_quant_range(-7, 7)
        .with_reduce_range(true)
        .quant_range()
        .unwrap();
    assert_eq!((r.quant_min, r.quant_max), (-4, 3));
}

#[test]
fn min_greater_than_max_is_typed() {
    let spec = ObserverSpec::new(ObserverKind::MinMax);
    let err = qparams_from_stats(&Stats::MinMax { min: 2.0, max: 1.0 }, &spec).unwrap_err();
    assert_eq!(err, ObserverError::MinGreaterThanMax { min: 2.0, max: 1.0 });
    let pc = ObserverSpec::new(ObserverKind::PerChannelMinMax);
    let stats = Stats::PerChannel {
        mins: vec![0.0, 3.0],
        maxs: vec![1.0, 2.0],
        axis: 0,
    };
    assert!(matches!(
        qparams_from_stats(&stats, &pc),
        Err(ObserverError::MinGreaterThanMax { min: 3.0, max: 2.0 })
    ));
}

#[test]
fn ch_axis_out_of_bounds_is_typed() {
    let mut obs = ObserverSpec::new(ObserverKind::PerChannelMinMax)
        .with_ch_axis(2)
        .build()
        .unwrap();
    let err = obs.forward(&[1.0; 6], &[2, 3]).unwrap_err();
    assert!(
        matches!(err, ObserverError::BadInput(ref m) if m.contains("ch_axis 2")),
        "{err}"
    );
    let mut neg = ObserverSpec::new(ObserverKind::PerChannelMinMax)
        .with_ch_axis(-3)
        .build()
        .unwrap();
    assert!(matches!(
        neg.forward(&[1.0; 6], &[2, 3]),
        Err(ObserverError::BadInput(_))
    ));
    // A negative axis inside the rank counts from the end.
    let mut last = ObserverSpec::new(ObserverKind::PerChannelMinMax)
        .with_ch_axis(-1)
        .build()
        .unwrap();
    last.forward(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])
        .unwrap();
    assert_eq!(last.calculate_qparams().unwrap().scales.len(), 3);
}

#[test]
fn nan_and_inf_follow_pytorch() {
    // NaN poisons MinMax for good; the qparams carry a NaN scale rather than failing.
    let mut obs = ObserverSpec::new(ObserverKind::MinMax).build().unwrap();
    obs.forward(&[1.0, f32::NAN], &[2]).unwrap();
    obs.forward(&[0.5], &[1]).unwrap();
    assert!(obs.calculate_qparams().unwrap().scales[0].is_nan());
    // HistogramObserver drops infinities and refuses NaN without touching its state.
    let mut h = ObserverSpec::new(ObserverKind::Histogram)
        .with_bins(64)
        .build()
        .unwrap();
    h.forward(&[1.0, f32::INFINITY, -0.5, 0.25], &[4]).unwrap();
    let before = h.stats();
    assert!(matches!(
        h.forward(&[f32::NAN, 0.0], &[2]),
        Err(ObserverError::BadInput(_))
    ));
    assert!(matches!(
        h.forward(&[f32::NAN, 5.0], &[2]),
        Err(ObserverError::BadInput(_))
    ));
    assert_eq!(h.stats(), before);
    h.forward(&[f32::INFINITY, f32::NEG_INFINITY], &[2])
        .unwrap();
    assert_eq!(h.stats(), before);
}

#[test]
fn stats_re_derive_for_other_configurations() {
    let x: Vec<f32> = (0..1000)
        .map(|i| ((i * 37 % 1000) as f32 / 100.0) - 3.0)
        .collect();
    let mut h = ObserverSpec::new(ObserverKind::Histogram).build().unwrap();
    h.forward(&x, &[1000]).unwrap();
    let stats = h.stats();
    for kind in [
        ObserverKind::Histogram,
        ObserverKind::Percentile,
        ObserverKind::Entropy,
        ObserverKind::Mse,
        ObserverKind::MinMax,
    ] {
        for dtype in [DType::QUInt8, DType::QInt8] {
            let q = qparams_from_stats(&stats, &ObserverSpec::new(kind).with_dtype(dtype)).unwrap();
            assert!(
                q.scales[0] > 0.0 && q.scales[0].is_finite(),
                "{kind} {dtype}: {q:?}"
            );
        }
    }
    // MinMax over the histogram range equals a MinMax observer over the data.
    let mut mm = ObserverSpec::new(ObserverKind::MinMax).build().unwrap();
    mm.forward(&x, &[1000]).unwrap();
    assert_eq!(
        qparams_from_stats(&stats, &ObserverSpec::new(ObserverKind::MinMax)).unwrap(),
        mm.calculate_qparams().unwrap()
    );
    // Per-tensor qparams from per-channel statistics use the overall extremes.
    let mut pc = ObserverSpec::new(ObserverKind::PerChannelMinMax)
        .build()
        .unwrap();
    pc.forward(&x, &[10, 100]).unwrap();
    assert_eq!(
        qparams_from_stats(&pc.stats(), &ObserverSpec::new(ObserverKind::MinMax)).unwrap(),
        mm.calculate_qparams().unwrap()
    );
    // Passthrough kinds have no qparams.
    assert!(matches!(
        qparams_from_stats(&stats, &ObserverSpec::new(ObserverKind::Noop)),
        Err(ObserverError::NoQParams(_))
    ));
}

#[test]
fn recording_keeps_inputs() {
    let mut r = qlab::observer::RecordingObserver::new(&ObserverSpec::new(ObserverKind::Recording))
        .unwrap();
    use qlab::observer::Observer;
    r.forward(&[1.0, 2.0], &[2]).unwrap();
    r.forward(&[], &[0]).unwrap();
    assert_eq!(r.tensors().len(), 2);
    assert_eq!(r.tensors()[0].data, vec![1.0, 2.0]);
    assert_eq!(
        r.calculate_qparams().unwrap_err(),
        ObserverError::NoQParams("RecordingObserver")
    );
}

#[test]
fn percentile_is_more_outlier_robust_than_minmax() {
    let mut x: Vec<f32> = (0..10_000)
        .map(|i| (i % 200) as f32 / 100.0 - 1.0)
        .collect();
    x.push(500.0);
    // One outlier in 10 001 elements is 0.01 % of the mass: keep 99.9 % and it is clipped.
    let scale_of = |kind| {
        let mut o = ObserverSpec::new(kind)
            .with_percentile(99.9)
            .build()
            .unwrap();
        o.forward(&x, &[x.len()]).unwrap();
        o.calculate_qparams().unwrap().scales[0]
    };
    let (p, m) = (
        scale_of(ObserverKind::Percentile),
        scale_of(ObserverKind::MinMax),
    );
    assert!(p < m / 50.0, "percentile {p} vs minmax {m}");
}
