//! Tests of `--against` (`crate::bench_against`) on synthetic `qlab bench` and `bench model`
//! reports: they live with `bench_model`, the layer that sees both reports and the reader.

use super::{EngineFigure, JSON_SCHEMA_VERSION, ModelReport};
use crate::bench::tests::synthetic;
use crate::bench_against::*;
use serde_json::{Value, json};
use std::path::Path;

const CPU: &str = "Test CPU  @ 2.0GHz";

/// A good peer file for the synthetic reports: halves of our figures, one thread, this CPU.
fn good() -> Value {
    json!({
        "schema_version": 1,
        "host": { "cpu": "Test CPU @ 2.0GHz", "threads": 1 },
        "torch_version": "2.5.1+cpu",
        "linear_gops": {
            "1024x1024x1024": { "fbgemm": 478.0, "fbgemm_dynamic": 239.0, "fp32": 136.0 }
        },
        "conv_gops": { "64x56x56->64 3x3": { "fbgemm": 150.0, "fp32": 120.0 } },
        "models_ms": {
            "mobilenet_v2": { "fp32": 40.0, "fbgemm": 10.0, "qnnpack": 35.0,
                              "calibration_per_image": 100.0 },
            "mobilenet": { "fp32": 1.0 }
        }
    })
}

fn parse(v: &Value, cpu: &str) -> Result<Against, AgainstError> {
    parse_text(&v.to_string(), cpu)
}

/// `Against::parse` knowing the shapes `qlab bench` measures.
fn parse_text(text: &str, cpu: &str) -> Result<Against, AgainstError> {
    let (linear, conv) = (crate::bench::linear_names(), crate::bench::conv_names());
    let known = Known {
        linear: &linear,
        conv: &conv,
    };
    Against::parse(text, Path::new("peer.json"), cpu, &known)
}

fn peer(engine: &str, figure: f64, ratio: Option<f64>) -> PeerRatio {
    PeerRatio {
        engine: engine.into(),
        figure,
        ratio,
    }
}

/// A model report of fixed figures: fp32 20 ms, fbgemm 5, qnnpack 10, calibration 50 ms
/// per image (0.2 s over 4 images) on 2 threads.
fn model_report(model: &str) -> ModelReport {
    let engine = |name: &str, ms: f64| EngineFigure {
        engine: name.into(),
        latency_ms: ms,
        calibration_s: 0.2,
        sqnr_db: 30.0,
        peers: Vec::new(),
        by_op: vec![("conv".into(), ms)],
    };
    ModelReport {
        schema_version: JSON_SCHEMA_VERSION,
        host_cpu: CPU.into(),
        model: model.into(),
        threads: 2,
        samples: 4,
        fp32_ms: 20.0,
        engines: vec![engine("fbgemm", 5.0), engine("qnnpack", 10.0)],
        fp32_peers: Vec::new(),
        calibration_peers: Vec::new(),
        against: None,
        notes: Vec::new(),
        scaling: Vec::new(),
        scaling_by_op: Vec::new(),
    }
}

#[test]
fn cpuinfo_model_name_is_the_first_one_with_spaces_collapsed() {
    let text = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Test  CPU @ 2.0GHz \n\
                processor\t: 1\nmodel name\t: Other\n";
    assert_eq!(cpu_model_from_cpuinfo(text), "Test CPU @ 2.0GHz");
    assert_eq!(cpu_model_from_cpuinfo("processor : 0\n"), UNKNOWN_CPU);
    assert_eq!(cpu_model_from_cpuinfo("model name :  \n"), UNKNOWN_CPU);
}

/// Ratios come from the file's figures and ours: GOPS ours / theirs, ms theirs / ours.
#[test]
fn good_file_gives_ratios_from_its_figures() {
    let against = parse(&good(), CPU).expect("good file");
    assert!(against.comparable(), "{:?}", against.warning);
    let mut report = synthetic();
    report.relate();
    report.compare(&against);
    // int8 239 GOPS against static 478 and dynamic 239; fp32 68 against 136.
    assert_eq!(
        report.int8[0].peers,
        [
            peer("fbgemm", 478.0, Some(0.5)),
            peer("fbgemm_dynamic", 239.0, Some(1.0))
        ]
    );
    assert_eq!(report.fp32[0].peers, [peer("fp32", 136.0, Some(0.5))]);
    assert_eq!(report.conv[0].peers, [peer("fbgemm", 150.0, Some(2.0))]);
    assert_eq!(report.conv_fp32[0].peers, [peer("fp32", 120.0, Some(0.5))]);
    let text = report.render();
    assert!(
        text.contains("against peer.json: torch 2.5.1+cpu"),
        "{text}"
    );
    assert!(
        text.contains("torch fbgemm 478 (0.50x), fbgemm_dynamic 239 (1.00x)"),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
    let json = serde_json::to_value(&report).expect("serializable");
    assert_eq!(json["against"]["comparable"], true);
    assert_eq!(json["against"]["torch_version"], "2.5.1+cpu");
    assert_eq!(json["int8"][0]["peers"][0]["ratio"], 0.5);

    // A model takes the longest name it begins with; calibration on 2 threads here against
    // 1 in the file gets no ratio, and says so.
    let mut model = model_report("mobilenet_v2_224");
    model.compare(&against);
    assert_eq!(model.fp32_peers, [peer("fp32", 40.0, Some(2.0))]);
    assert_eq!(model.engines[0].peers, [peer("fbgemm", 10.0, Some(2.0))]);
    assert_eq!(model.engines[1].peers, [peer("qnnpack", 35.0, Some(3.5))]);
    assert_eq!(
        model.calibration_peers,
        [peer("calibration_per_image", 100.0, None)]
    );
    let text = model.render();
    assert!(text.contains("torch qnnpack 35.0 (3.50x)"), "{text}");
    assert!(
        text.contains("note: calibration ran on 2 threads"),
        "{text}"
    );
    let mut one_thread = model_report("mobilenet_v2_224");
    one_thread.threads = 1;
    one_thread.compare(&against);
    assert_eq!(
        one_thread.calibration_peers,
        [peer("calibration_per_image", 100.0, Some(2.0))]
    );
    // A model the file does not name: no ratios, and a note naming what it has.
    let mut other = model_report("digits_cnn");
    other.compare(&against);
    assert!(other.fp32_peers.is_empty() && other.engines[0].peers.is_empty());
    assert!(
        other
            .render()
            .contains("no figures for model 'digits_cnn' (it has: mobilenet, mobilenet_v2)"),
        "{}",
        other.render()
    );
}

/// Another CPU, an unknown one, or a multi-thread peer: figures kept, ratios withheld, and
/// a warning line says why.
#[test]
fn another_cpu_gives_a_warning_and_no_ratios() {
    let mut threads = good();
    threads["host"]["threads"] = json!(4);
    for (file, cpu, why) in [
        (
            good(),
            "Other CPU",
            "another CPU ('Test CPU @ 2.0GHz'; this host: 'Other CPU')",
        ),
        (good(), UNKNOWN_CPU, "cannot tell"),
        (threads, CPU, "measured on 4 threads"),
    ] {
        let against = parse(&file, cpu).expect("a valid file");
        assert!(!against.comparable());
        let mut report = synthetic();
        report.relate();
        report.compare(&against);
        assert_eq!(
            report.int8[0].peers,
            [
                peer("fbgemm", 478.0, None),
                peer("fbgemm_dynamic", 239.0, None)
            ]
        );
        let text = report.render();
        assert!(
            text.contains("warning: --against peer.json:") && text.contains(why),
            "{text}"
        );
        assert!(!text.contains("torch fbgemm"), "{text}");
        let json = serde_json::to_value(&report).expect("serializable");
        assert_eq!(json["against"]["comparable"], false);
        assert_eq!(json["int8"][0]["peers"][0]["figure"], 478.0);
        assert_eq!(json["int8"][0]["peers"][0]["ratio"], Value::Null);
        let mut model = model_report("mobilenet_v2");
        model.compare(&against);
        assert_eq!(model.fp32_peers, [peer("fp32", 40.0, None)]);
        assert!(model.render().contains("warning:"), "{}", model.render());
    }
}

/// Each kind of bad field is its own error, and its message names the field.
#[test]
fn each_bad_field_is_a_typed_error_naming_it() {
    let with = |path: &[&str], v: Value| {
        let mut file = good();
        let mut at = &mut file;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        file
    };
    let without = |key: &str| {
        let mut file = good();
        file.as_object_mut().expect("an object").remove(key);
        file
    };
    let fbgemm = ["linear_gops", "1024x1024x1024", "fbgemm"];
    let cases: Vec<(String, &str, &str)> = vec![
        ("{\"schema_version\": 1,".into(), "Json", "not valid JSON"),
        (
            good().to_string().replace("478.0", "NaN"),
            "Json",
            "JSON has no NaN",
        ),
        (
            with(&["schema_version"], json!(2)).to_string(),
            "SchemaVersion",
            "`schema_version` is 2",
        ),
        (
            without("schema_version").to_string(),
            "SchemaVersion",
            "`schema_version` is missing",
        ),
        (
            with(&fbgemm, json!(-478.0)).to_string(),
            "BadFigure",
            "`linear_gops.1024x1024x1024.fbgemm` is -478",
        ),
        (
            with(&["models_ms", "mobilenet_v2", "fp32"], json!(0.0)).to_string(),
            "BadFigure",
            "`models_ms.mobilenet_v2.fp32` is 0",
        ),
        (
            with(&["linear_gops", "12x3x4"], json!({ "fbgemm": 1.0 })).to_string(),
            "Unknown",
            "`linear_gops`: `12x3x4` is not a shape qlab bench measures",
        ),
        (
            with(&["conv_gops", "64x56x56->64 3x3", "mkl"], json!(1.0)).to_string(),
            "Unknown",
            "`conv_gops.64x56x56->64 3x3`: `mkl` is not an engine",
        ),
        (
            with(&["host", "threads"], json!(0)).to_string(),
            "NoThreads",
            "`host.threads` is 0",
        ),
        (without("host").to_string(), "Field", "missing field `host`"),
        (
            with(&["host", "cpu"], json!(7)).to_string(),
            "Field",
            "invalid type",
        ),
        (
            with(&["linear"], json!({})).to_string(),
            "Field",
            "unknown field `linear`",
        ),
        (
            with(&[fbgemm[0], fbgemm[1], fbgemm[2]], json!("fast")).to_string(),
            "Field",
            "invalid type: string \"fast\"",
        ),
    ];
    for (text, kind, message) in cases {
        let err = parse_text(&text, CPU).expect_err("a bad file is refused");
        let variant = format!("{err:?}");
        assert!(variant.starts_with(kind), "{text}: {variant}");
        let shown = err.to_string();
        assert!(
            shown.starts_with("--against peer.json: ") && shown.contains(message),
            "{text}: {shown}"
        );
    }
}
