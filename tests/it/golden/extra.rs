//! Hand-derived cases for harness paths the recorded files do not reach (custom range with
//! reduce_range, NaN / inf expectations, `raises` on several kinds), in
//! `tests/fixtures/golden_extra/`. Their expected values come from PyTorch's formulas worked by
//! hand, never from qlab's output:
//! - `minmax_qint8_custom_reduce`: custom -15..15 with reduce_range is -8..7 (floor division;
//!   truncation would give -7..7); x in [-1, 2] gives scale f32(3/15), zp -8 - round(-5) = -3.
//! - `minmax_inf_max`: max inf gives scale inf / 255 = inf and zp 0 - round(0 / inf) = 0.
//! - `linear_bn_*`: var + eps < 0 makes rsqrt NaN everywhere; var = eps = 0 makes it inf, so
//!   w' = inf, b' = 0.5 · inf = inf, and the eval BN `x·α + (β - mean·α)` is inf + NaN = NaN.
//! - `qpt_nonfinite_inputs_hand`: NaN / ±inf with s 0.5, z 5 per golden README §2.1.
//! - the `*_raises` cases: arguments PyTorch's constructors or kernels refuse.
//!
//! Every case must pass, and every case must fail once its verdict is flipped (`raises` added
//! to a passing case, removed from a raising one): the paths can fail.

use super::json::{Case, load_cases};
use super::workflows::qconfig_call;
use super::{json_files, run_case};
use qlab::qconfig::QuantizerSpec;
use qlab::qconfig::presets::get_default_qat_qconfig;
use std::path::PathBuf;

fn extra_cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden_extra");
    let cases: Vec<Case> = json_files(&dir)
        .iter()
        .flat_map(|p| load_cases(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!cases.is_empty(), "no extra golden cases");
    cases
}

#[test]
fn extra_cases_pass() {
    let failures: Vec<String> = extra_cases()
        .iter()
        .filter_map(|c| run_case(c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn flipped_verdicts_fail() {
    for mut c in extra_cases() {
        let expected = c.expected.as_object_mut().expect("expected object");
        if expected.remove("raises").is_none() {
            expected.insert("raises".into(), "RuntimeError: flipped".into());
        }
        assert!(
            run_case(&c).is_err(),
            "{} passes with its verdict flipped",
            c.name
        );
    }
}

#[test]
fn nan_and_inf_expectations_can_fail() {
    for mut c in extra_cases()
        .into_iter()
        .filter(|c| c.name.contains("nan") || c.name.contains("inf"))
    {
        // Every non-finite expectation replaced by 1.0 must be noticed.
        let text = c.expected.to_string();
        let changed = text
            .replace("\"-inf\"", "1.0")
            .replace("\"inf\"", "1.0")
            .replace("\"nan\"", "1.0");
        assert_ne!(text, changed, "{} has no non-finite expectation", c.name);
        c.expected = serde_json::from_str(&changed).unwrap();
        assert!(run_case(&c).is_err(), "{} ignores its NaN/inf", c.name);
    }
}

#[test]
fn unknown_fields_and_kinds_fail() {
    let base = extra_cases().into_iter().next().unwrap();
    for key in ["params", "inputs", "expected"] {
        let mut c = extra_cases().into_iter().next().unwrap();
        let obj = match key {
            "params" => &mut c.params,
            "inputs" => &mut c.inputs,
            _ => &mut c.expected,
        };
        obj.as_object_mut()
            .unwrap()
            .insert("surprise".into(), 1.into());
        let err = run_case(&c).expect_err("an unknown field must fail");
        assert!(err.contains("surprise"), "{err}");
    }
    let mut c = base;
    c.kind = "no_such_kind".into();
    assert!(run_case(&c).unwrap_err().contains("no_such_kind"));
}

/// The recorded qconfig call decides the QAT backend and version. The qnnpack values are
/// PyTorch's `get_default_qat_qconfig('qnnpack')` (qconfig.py, version 1): activation
/// `FusedMovingAvgObsFakeQuantize(MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
/// reduce_range=False)`, weight `default_fused_wt_fake_quant` (per-tensor symmetric qint8,
/// -128..127); fbgemm reduces the activation range to 0..127 and uses per-channel weights.
#[test]
fn qat_qconfig_comes_from_the_case() {
    let call = |t: &str| qconfig_call(t, "get_default_qat_qconfig").unwrap();
    assert_eq!(
        call("get_default_qat_qconfig('qnnpack')"),
        ("qnnpack".into(), None)
    );
    assert_eq!(
        call("get_default_qat_qconfig(\"x86\", 0)"),
        ("x86".into(), Some(0))
    );
    assert_eq!(
        call("get_default_qat_qconfig(backend='fbgemm', version=1)"),
        ("fbgemm".into(), Some(1))
    );
    assert_eq!(call("get_default_qat_qconfig()"), ("x86".into(), None));
    assert!(qconfig_call("get_default_qconfig('qnnpack')", "get_default_qat_qconfig").is_err());

    let fake_quant = |q: &QuantizerSpec| match q {
        QuantizerSpec::FakeQuantize(f) => f.clone(),
        other => panic!("not a fake-quant: {other:?}"),
    };
    // (backend, activation effective range, weight per-channel)
    for (backend, act_max, per_channel) in [
        ("qnnpack", 255, false),
        ("fbgemm", 127, true),
        ("x86", 127, true),
    ] {
        let q = get_default_qat_qconfig(backend, 1).unwrap();
        let act = fake_quant(&q.activation).observer;
        let r = act.quant_range().unwrap();
        assert_eq!(
            (r.quant_min, r.quant_max, r.customized),
            (0, act_max, true),
            "{backend}"
        );
        let wt = fake_quant(&q.weight).observer;
        let r = wt.quant_range().unwrap();
        assert_eq!((r.quant_min, r.quant_max), (-128, 127), "{backend}");
        assert_eq!(wt.qscheme.is_per_channel(), per_channel, "{backend}");
        assert!(wt.qscheme.is_symmetric(), "{backend}");
    }
}
