//! The workflow library calls on real models: placement of observers and stubs, float
//! islands, the pre-convert check, and the typed errors for bad requests (each naming the
//! module or input concerned).

mod zoo_dynamic;
mod zoo_static;

use ndarray::{ArrayD, IxDyn};
use qlab::engine::Numerics;
use qlab::graph::{Graph, Node, Op, Value};
use qlab::import::onnx::load_onnx;
use qlab::qconfig::presets::get_default_qconfig;
use qlab::workflow::{
    self, FuseError, Placement, QConfigKey, QConfigMap, Severity, WorkflowError, fuse_modules,
};
use std::path::Path;

fn cnn() -> Graph {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/workflow_cnn.onnx");
    load_onnx(&p).unwrap()
}

fn fused() -> Graph {
    let groups = [vec!["conv1", "bn1", "relu1"], vec!["conv2", "relu2"]]
        .map(|g| g.into_iter().map(String::from).collect::<Vec<_>>());
    fuse_modules(&cnn(), &groups).unwrap()
}

/// Deterministic pseudo-random input `[n, 3, 8, 8]`.
fn input(n: usize, seed: u32) -> Value {
    let mut s = seed;
    let data = (0..n * 3 * 64)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    Value::F32(ArrayD::from_shape_vec(IxDyn(&[n, 3, 8, 8]), data).unwrap())
}

fn fbgemm() -> QConfigMap {
    QConfigMap::global(get_default_qconfig("fbgemm").unwrap())
}

fn f32s(v: &Value) -> Vec<f32> {
    match v {
        Value::F32(a) => a.iter().copied().collect(),
        Value::I64(_) => panic!("integer output"),
    }
}

#[test]
fn a_module_kept_in_float_gets_stubs_around_it() {
    let mut map = fbgemm();
    map.set(QConfigKey::Path("fc".into()), None);
    let mut prepared = workflow::prepare(&fused(), &map).unwrap();
    assert_eq!(prepared.placement["fc"], Placement::Float);
    assert_eq!(prepared.placement["conv1"], Placement::Quantized);
    assert_eq!(prepared.placement["relu1"], Placement::Absorbed);
    let names: Vec<&str> = prepared
        .graph
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names.first(), Some(&"quant"));
    assert!(names.contains(&"fc.dequant"), "{names:?}");
    let owners: Vec<&str> = prepared
        .observers
        .iter()
        .map(|o| o.owner.as_str())
        .collect();
    assert_eq!(owners, ["quant", "conv1", "conv2", "add"]);
    for seed in 0..3 {
        prepared.calibrate_batch(vec![input(4, seed)]).unwrap();
    }
    let model = workflow::convert(&prepared, Numerics::default()).unwrap();
    let x = input(2, 9);
    let float = qlab::graph::run(&cnn(), vec![x.clone()], |_, _| {}).unwrap();
    let quant = model.run(vec![x], |_, _| {}).unwrap();
    let (f, q) = (f32s(&float[0]), f32s(&quant[0]));
    let err: f32 = f.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum();
    let sig: f32 = f.iter().map(|a| a * a).sum();
    let sqnr = 10.0 * (sig / err).log10();
    assert!(sqnr > 20.0, "int8 output SQNR {sqnr} dB");
}

#[test]
fn convert_before_calibrating_names_the_module() {
    let prepared = workflow::prepare(&fused(), &fbgemm()).unwrap();
    let e = workflow::convert(&prepared, Numerics::default()).unwrap_err();
    match &e {
        WorkflowError::Check {
            module, problem, ..
        } => {
            assert_eq!(module, "quant");
            assert!(problem.contains("no data"), "{e}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn non_finite_calibration_data_is_refused_at_convert() {
    let mut prepared = workflow::prepare(&fused(), &fbgemm()).unwrap();
    let Value::F32(mut x) = input(2, 1) else {
        unreachable!()
    };
    x[[1, 2, 3, 4]] = f32::NAN;
    prepared.calibrate_batch(vec![Value::F32(x)]).unwrap();
    let e = workflow::convert(&prepared, Numerics::default()).unwrap_err();
    assert!(
        e.to_string().contains("'quant'") && e.to_string().contains("NaN"),
        "{e}"
    );
}

#[test]
fn calibrating_with_the_wrong_shape_names_the_input() {
    let mut prepared = workflow::prepare(&fused(), &fbgemm()).unwrap();
    let x = Value::F32(ArrayD::zeros(IxDyn(&[2, 3, 9, 9])));
    let e = prepared.calibrate_batch(vec![x]).unwrap_err().to_string();
    assert!(e.contains("batch 0") && e.contains("input"), "{e}");
    assert_eq!(prepared.batches, 0);
}

#[test]
fn a_qconfig_path_or_type_that_matches_nothing_is_an_error() {
    let mut map = fbgemm();
    map.set(QConfigKey::Path("features.*".into()), None);
    let e = workflow::prepare(&fused(), &map).unwrap_err().to_string();
    assert!(e.contains("'features.*'") && e.contains("conv1"), "{e}");
    let mut map = fbgemm();
    map.set(QConfigKey::Type("LSTM".into()), None);
    let e = workflow::prepare(&fused(), &map).unwrap_err().to_string();
    assert!(e.contains("'LSTM'"), "{e}");
}

#[test]
fn bad_fusion_requests_are_typed_errors() {
    let g = cnn();
    let group = |m: &[&str]| vec![m.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    match fuse_modules(&g, &group(&["conv1", "relu2"])) {
        Err(FuseError::NotConsecutive { module, .. }) => assert_eq!(module, "relu2"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fuse_modules(&g, &group(&["conv1", "fc"])),
        Err(FuseError::Unsupported { .. })
    ));
    assert!(matches!(
        fuse_modules(&g, &group(&["conv1", "bn9"])),
        Err(FuseError::UnknownModule { .. })
    ));
    // relu1's output also feeds the skip add: conv2 + relu1 is not a chain.
    match fuse_modules(&g, &group(&["relu1", "conv2"])) {
        Err(FuseError::Unsupported { .. } | FuseError::NotConsecutive { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn unfused_patterns_are_reported_and_still_quantize() {
    let mut prepared = workflow::prepare(&cnn(), &fbgemm()).unwrap();
    prepared.calibrate_batch(vec![input(4, 3)]).unwrap();
    let findings = workflow::check(&prepared, qlab::engine::Engine::Fbgemm);
    assert!(
        findings
            .iter()
            .any(|f| f.severity == Severity::Warning && f.module == "conv2"),
        "{findings:?}"
    );
    // The unfused BatchNorm has no quantized kernel: it runs in float between stubs.
    assert_eq!(prepared.placement["bn1"], Placement::Float);
    let model = workflow::convert(&prepared, Numerics::default()).unwrap();
    model.run(vec![input(1, 5)], |_, _| {}).unwrap();
}

#[test]
fn with_stubs_a_float_tensor_reaching_a_quantized_module_is_an_error() {
    let mut g = fused();
    // A QuantStub on the input only, and conv2 kept in float: eager mode would fail there.
    let first_input = g.inputs[0].name.clone();
    for n in &mut g.nodes {
        for i in &mut n.inputs {
            if *i == first_input {
                *i = "q".into();
            }
        }
    }
    g.nodes.insert(
        0,
        Node {
            name: "quant".into(),
            op: Op::QuantStub,
            inputs: vec![first_input],
            outputs: vec!["q".into()],
        },
    );
    let mut map = fbgemm();
    map.set(QConfigKey::Path("conv2".into()), None);
    let e = workflow::prepare(&g, &map).unwrap_err();
    match &e {
        WorkflowError::Check { module, fix, .. } => {
            assert_eq!(module, "conv2");
            assert!(fix.contains("DeQuantStub"), "{e}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn changing_an_observer_after_calibration_equals_calibrating_with_it() {
    let calibrate = |map: &QConfigMap| {
        let mut p = workflow::prepare(&fused(), map).unwrap();
        for seed in 0..3 {
            p.calibrate_batch(vec![input(4, seed)]).unwrap();
        }
        p
    };
    let x = input(3, 11);
    let outputs = |p: &workflow::Prepared| {
        let m = workflow::convert(p, Numerics::default()).unwrap();
        f32s(&m.run(vec![x.clone()], |_, _| {}).unwrap()[0])
    };
    for activation in [
        "minmax(reduce_range=true)",
        "percentile(reduce_range=true, p=99.9)",
        "mse(reduce_range=true)",
    ] {
        let mut changed = fbgemm();
        let q = format!(
            "activation={activation} weight=per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)"
        );
        changed.set(QConfigKey::Path("conv2".into()), Some(q.parse().unwrap()));
        let mut adopted = workflow::prepare(&fused(), &changed).unwrap();
        adopted.adopt_calibration(calibrate(&fbgemm())).unwrap();
        assert_eq!(
            outputs(&adopted),
            outputs(&calibrate(&changed)),
            "{activation}"
        );
    }
    // Moving averages need their own pass over the data: nothing is adopted.
    let mut changed = fbgemm();
    let q = "activation=moving_average_minmax(reduce_range=true) weight=per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)";
    changed.set(QConfigKey::Path("conv2".into()), Some(q.parse().unwrap()));
    let mut fresh = workflow::prepare(&fused(), &changed).unwrap();
    assert_eq!(
        fresh.adopt_calibration(calibrate(&fbgemm())),
        Err(vec!["conv2".to_string()])
    );
    assert_eq!(fresh.batches, 0);
}

/// The input clip rate counts the float model's values of an op's quantized operand outside
/// that operand's qparams' range, the same in both modes; the quantize stub has no quantized
/// operand, and fbgemm on the VNNI profile saturates no pair of these ungrouped convs.
#[test]
fn input_clip_rate_is_the_share_of_float_inputs_outside_the_input_range() {
    use qlab::analysis::{ClipCount, ErrorMode, layer_errors};
    let mut prepared = workflow::prepare(&fused(), &fbgemm()).unwrap();
    for seed in 0..3 {
        prepared.calibrate_batch(vec![input(4, seed)]).unwrap();
    }
    let model = workflow::convert(&prepared, Numerics::default()).unwrap();
    // 48 of the 192 input values far beyond the calibrated [-2, 2]; 0.0 is always representable.
    let data = (0..192)
        .map(|i| if i < 48 { 1000.0 } else { 0.0 })
        .collect();
    let x = Value::F32(ArrayD::from_shape_vec(IxDyn(&[1, 3, 8, 8]), data).unwrap());
    for mode in [ErrorMode::Cumulative, ErrorMode::Isolated] {
        let rows = layer_errors(&model, std::iter::once(x.clone()), mode).unwrap();
        let row = |name: &str| rows.iter().find(|r| r.layer == name).unwrap();
        assert_eq!(row("quant").input_clip_rate(), None);
        assert_eq!(
            row("conv1").input_clip,
            ClipCount {
                outside: 48,
                total: 192
            }
        );
        assert_eq!(row("conv1").input_clip_rate(), Some(0.25));
        assert!(rows.iter().all(|r| r.saturated_pairs == 0), "{rows:?}");
    }
}

/// A depthwise 3x3 conv on 8 channels takes fbgemm's depthwise fast path, which sums tap pairs
/// in saturating int16 even on the VNNI profile: with full-range activations (255) and full
/// weights (127) every pair sum (64770) saturates. qnnpack accumulates the same integers exactly.
#[test]
fn saturated_pairs_are_counted_for_fbgemm_depthwise_and_never_for_qnnpack() {
    use qlab::analysis::{ErrorMode, layer_errors};
    use qlab::engine::{Engine, HostProfile};
    use qlab::graph::{ConvParams, GraphInput};
    let graph = Graph {
        inputs: vec![GraphInput {
            name: "x".into(),
            shape: vec![None, Some(8), Some(6), Some(6)],
        }],
        outputs: vec!["y".into()],
        nodes: vec![Node {
            name: "dw".into(),
            op: Op::Conv(ConvParams {
                weight: ArrayD::from_elem(IxDyn(&[8, 1, 3, 3]), 1.0),
                bias: None,
                stride: vec![1, 1],
                pad_begin: vec![1, 1],
                pad_end: vec![1, 1],
                dilation: vec![1, 1],
                groups: 8,
            }),
            inputs: vec!["x".into()],
            outputs: vec!["y".into()],
        }],
        ..Graph::default()
    };
    let qconfig =
        "activation=minmax weight=per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)"
            .parse()
            .unwrap();
    let mut prepared = workflow::prepare(&graph, &QConfigMap::global(qconfig)).unwrap();
    let x = Value::F32(ArrayD::from_elem(IxDyn(&[2, 8, 6, 6]), 1.0));
    prepared.calibrate_batch(vec![x.clone()]).unwrap();
    let saturated = |engine| {
        let model = workflow::convert(&prepared, Numerics::new(engine, HostProfile::Vnni)).unwrap();
        let rows = layer_errors(&model, std::iter::once(x.clone()), ErrorMode::Cumulative).unwrap();
        rows.iter()
            .find(|r| r.layer == "dw")
            .unwrap()
            .saturated_pairs
    };
    assert!(saturated(Engine::Fbgemm) > 0);
    assert_eq!(saturated(Engine::Qnnpack), 0);
}

/// The tier is part of a converted model's numerics: the same calibrated model converted for
/// every tier the host has (and each engine) gives the same bytes, and a tier the host lacks is
/// refused when the numerics are built, not discovered inside a kernel.
#[test]
fn a_model_converted_for_each_tier_gives_the_same_bytes() {
    use qlab::engine::{Engine, HostProfile};
    use qlab::isa::{ALL, Isa};
    let mut prepared = workflow::prepare(&fused(), &fbgemm()).unwrap();
    prepared.calibrate_batch(vec![input(4, 3)]).unwrap();
    let x = input(3, 11);
    for engine in Engine::ALL {
        let base = Numerics::new(engine, HostProfile::Avx2);
        let on = |tier: Isa| {
            let numerics = base.on(tier).unwrap();
            assert_eq!(numerics.isa(), tier);
            let model = workflow::convert(&prepared, numerics).unwrap();
            let out = model.run(vec![x.clone()], |_, _| {}).unwrap();
            f32s(&out[0])
        };
        let want = on(Isa::Scalar);
        let mut tiers = 0;
        for tier in ALL {
            if tier.is_available() {
                assert_eq!(on(tier), want, "{engine} on {tier}");
                tiers += 1;
            } else {
                assert!(base.on(tier).is_err(), "{tier} is not on this host");
            }
        }
        assert!(tiers >= 1);
    }
}
