//! QConfig presets (NUMERICS §4.1), backend defaults, validation naming the failing field, and
//! the text form's round trip.

use proptest::prelude::*;
use qlab::fake_quant::FakeQuantKind;
use qlab::observer::ObserverKind;
use qlab::qconfig::{
    Backend, Preset, QConfig, QConfigDynamic, QConfigError, QuantizerSpec, get_default_qat_qconfig,
    get_default_qconfig, preset, preset_names,
};
use qlab::tensor::{DType, QScheme};

fn range(q: &QuantizerSpec) -> (i64, i64) {
    let r = q.observer().quant_range().unwrap();
    (r.quant_min, r.quant_max)
}

#[test]
fn every_preset_is_valid_and_its_text_round_trips() {
    for name in preset_names() {
        match preset(name).unwrap() {
            Preset::QConfig(q) => {
                q.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
                let back: QConfig = q.to_string().parse().unwrap();
                assert_eq!(back, q, "{name}");
                assert_eq!(name.parse::<QConfig>().unwrap(), q, "{name} by name");
            }
            other => {
                let spec = other.into_quantizer().unwrap();
                spec.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
                let back: QuantizerSpec = spec.to_string().parse().unwrap();
                assert_eq!(back, spec, "{name}");
            }
        }
    }
}

#[test]
fn backend_defaults_match_pytorch() {
    for b in Backend::ALL {
        let q = get_default_qconfig(b.name()).unwrap();
        q.validate().unwrap();
        assert_eq!(q.activation.observer().kind, ObserverKind::Histogram);
        let reduced = matches!(b, Backend::Fbgemm | Backend::X86);
        assert_eq!(
            range(&q.activation),
            if reduced { (0, 127) } else { (0, 255) },
            "{b:?}"
        );
        let w = q.weight.observer();
        assert_eq!((w.dtype, range(&q.weight)), (DType::QInt8, (-128, 127)));
        let per_channel = b != Backend::Qnnpack;
        assert_eq!(w.qscheme.is_per_channel(), per_channel, "{b:?}");
        assert!(w.qscheme.is_symmetric());
        for version in [0, 1] {
            let qat = get_default_qat_qconfig(b.name(), version).unwrap();
            qat.validate().unwrap();
            let kind = if version == 0 {
                FakeQuantKind::Plain
            } else {
                FakeQuantKind::Fused
            };
            for field in [&qat.activation, &qat.weight] {
                let QuantizerSpec::FakeQuantize(f) = field else {
                    panic!("not a fake-quant")
                };
                assert_eq!(f.kind, kind);
            }
            assert_eq!(
                range(&qat.activation),
                if reduced { (0, 127) } else { (0, 255) }
            );
            assert_eq!(qat.weight.observer().qscheme.is_per_channel(), per_channel);
            assert_eq!(qat.weight.observer().averaging_constant, 0.01);
        }
    }
    assert_eq!(
        preset("get_default_qat_qconfig(x86, 0)").unwrap(),
        Preset::QConfig(get_default_qat_qconfig("x86", 0).unwrap())
    );
    assert_eq!(
        preset("get_default_qat_qconfig('qnnpack')").unwrap(),
        Preset::QConfig(get_default_qat_qconfig("qnnpack", 1).unwrap())
    );
}

#[test]
fn table_presets_have_pytorch_effective_values() {
    let q = |n: &str| match preset(n).unwrap() {
        Preset::QConfig(q) => q,
        _ => panic!("{n}"),
    };
    let d = q("default_qconfig");
    assert_eq!(range(&d.activation), (0, 127));
    assert_eq!(d.weight.observer().qscheme, QScheme::PerTensorSymmetric);
    let qat = q("default_qat_qconfig");
    assert_eq!(range(&qat.activation), (0, 127));
    assert!(!qat.is_dynamic());
    let dy = q("default_dynamic_qconfig");
    assert!(dy.is_dynamic());
    assert_eq!(dy.activation.observer().kind, ObserverKind::Placeholder);
    let fp16 = q("float16_dynamic_qconfig");
    assert_eq!(fp16.weight.observer().dtype, DType::Float16);
    let Preset::Observer(o) = preset("weight_observer_range_neg_127_to_127").unwrap() else {
        panic!("observer")
    };
    assert_eq!(
        (o.quant_range().unwrap().quant_min, o.eps),
        (-127, 1.0 / 4096.0)
    );
    let dynamic = QConfigDynamic::new(o.clone());
    assert!(dynamic.qconfig().is_dynamic());
    assert_eq!(dynamic.qconfig().weight, QuantizerSpec::Observer(o));
}

#[test]
fn unknown_names_list_the_accepted_ones() {
    match preset("default_qconfg") {
        Err(QConfigError::UnknownPreset { accepted, .. }) => {
            assert!(
                accepted.contains("default_qconfig") && accepted.contains("get_default_qconfig")
            )
        }
        other => panic!("{other:?}"),
    }
    match get_default_qconfig("tensorrt") {
        Err(QConfigError::UnknownBackend { name, accepted }) => {
            assert_eq!(
                (name.as_str(), accepted.as_str()),
                ("tensorrt", "fbgemm, x86, qnnpack, onednn")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        get_default_qat_qconfig("fbgemm", 2),
        Err(QConfigError::UnsupportedVersion { version: 2 })
    ));
    assert!(matches!(
        "default_observer".parse::<QConfig>(),
        Err(QConfigError::WrongPresetKind { .. })
    ));
}

#[test]
fn impossible_qconfigs_name_the_field() {
    let bad_weight: QConfig =
        "activation=minmax weight=minmax(qscheme=per_tensor_symmetric, reduce_range=true)"
            .parse()
            .unwrap();
    assert!(matches!(
        bad_weight.validate(),
        Err(QConfigError::Invalid {
            field: "weight",
            ..
        })
    ));
    let int32_act: QConfig = "activation=minmax(dtype=qint32) weight=minmax(dtype=qint8)"
        .parse()
        .unwrap();
    assert!(matches!(
        int32_act.validate(),
        Err(QConfigError::Invalid {
            field: "activation",
            ..
        })
    ));
    let pc_act: QConfig = "activation=per_channel_minmax weight=minmax(dtype=qint8)"
        .parse()
        .unwrap();
    assert!(matches!(
        pc_act.validate(),
        Err(QConfigError::Invalid {
            field: "activation",
            ..
        })
    ));
    let fused_histogram: QConfig =
        "activation=fused_fake_quant(histogram) weight=minmax(dtype=qint8)"
            .parse()
            .unwrap();
    assert!(matches!(
        fused_histogram.validate(),
        Err(QConfigError::Invalid {
            field: "activation",
            ..
        })
    ));
}

#[test]
fn malformed_text_is_a_parse_error() {
    for text in [
        "activation=minmax",
        "weight=minmax",
        "activation=minmax weight=minmax weight=minmax",
        "activation=minmax weight=minmax colour=blue",
        "activation=minmax(bins=3 weight=minmax",
        "activation=nosuch weight=minmax",
        "activation=fake_quant(minmax weight=minmax",
        "",
    ] {
        assert!(text.parse::<QConfig>().is_err(), "{text}");
    }
}

fn quantizer() -> impl Strategy<Value = QuantizerSpec> {
    let names: Vec<&'static str> = preset_names()
        .filter(|n| !matches!(preset(n), Ok(Preset::QConfig(_))))
        .collect();
    (
        prop::sample::select(names),
        any::<bool>(),
        1usize..4096,
        0.0f32..1.0,
    )
        .prop_map(|(name, reduce, bins, c)| {
            let mut spec = preset(name).unwrap().into_quantizer().unwrap();
            let obs = match &mut spec {
                QuantizerSpec::Observer(o) => o,
                QuantizerSpec::FakeQuantize(f) => &mut f.observer,
            };
            // Only fields the kind uses: the text form omits the others (observer spec docs).
            if obs.kind.computes_qparams() {
                obs.reduce_range = reduce;
            }
            if obs.kind.uses_histogram() {
                obs.bins = bins;
            }
            if matches!(
                obs.kind,
                ObserverKind::MovingAverageMinMax | ObserverKind::MovingAveragePerChannelMinMax
            ) {
                obs.averaging_constant = c;
            }
            spec
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn qconfig_text_round_trips(activation in quantizer(), weight in quantizer()) {
        let q = QConfig { activation, weight };
        let text = q.to_string();
        let back: QConfig = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, q);
    }
}

#[test]
fn text_form_is_the_session_language() {
    assert_eq!(
        get_default_qconfig("fbgemm").unwrap().to_string(),
        "activation=histogram(reduce_range=true) \
         weight=per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)"
    );
    assert_eq!(
        get_default_qat_qconfig("qnnpack", 1).unwrap().to_string(),
        "activation=fused_fake_quant(moving_average_minmax(quant_min=0, quant_max=255)) \
         weight=fused_fake_quant(moving_average_minmax(dtype=qint8, \
         qscheme=per_tensor_symmetric, quant_min=-128, quant_max=127))"
    );
}
