//! The native format's quantized section end to end: a model converted in one session, saved
//! with `save model`, loads in a fresh session whose converted model computes the same int8
//! outputs bit for bit (compared through `predict … model=quantized`, the dequantized outputs
//! as `.npy` bytes) and whose `eval` and `errors` run without calibrating again; and
//! `export qparams`, whose rows hold `show qparams`' values.

use crate::support::{root, scratch, shared_zoo};
use qlab::session::{Output, Workbench, parse_line};
use serde_json::Value as Json;
use std::path::Path;

/// Applies `lines` in order, with relative paths resolved against `dir`; the outputs' text.
fn run(wb: &mut Workbench, lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let cmd = parse_line(line).unwrap().unwrap();
            wb.apply(&cmd)
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .to_string()
        })
        .collect()
}

fn quoted(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// Converts `model` with `engine` by the `quantize` line, saves it, loads it into a fresh
/// workbench and checks the converted outputs on `test` are the same bytes; returns both
/// sessions' outputs of `extra` (lines run after the outputs are written).
fn round_trip(
    name: &str,
    model: &Path,
    data: [String; 2],
    engine: &str,
    quantize: &str,
    extra: &[&str],
) -> (Vec<String>, Vec<String>) {
    let dir = scratch(name);
    let saved = dir.join("m.qlab");
    let [calib, test] = data;
    let setup = [
        format!("load model {}", quoted(model)),
        format!("load data calib {calib}"),
        format!("load data test {test}"),
    ];
    let mut before = Workbench::new();
    before.set_base_dir(&dir);
    run(&mut before, &setup);
    let mut lines = vec![
        format!("engine {engine}"),
        quantize.to_string(),
        "predict test out=before.npy model=quantized".to_string(),
        "save model m.qlab".to_string(),
    ];
    lines.extend(extra.iter().map(|l| l.to_string()));
    let outs = run(&mut before, &lines);
    assert!(outs[3].contains("with the converted model"), "{}", outs[3]);

    let mut after = Workbench::new();
    after.set_base_dir(&dir);
    let mut lines = vec![
        format!("load model {}", quoted(&saved)),
        setup[1].clone(),
        setup[2].clone(),
        "predict test out=after.npy model=quantized".to_string(),
    ];
    lines.extend(extra.iter().map(|l| l.to_string()));
    let reloaded = run(&mut after, &lines);
    assert!(
        reloaded[0].contains(&format!("{engine} engine")),
        "{}",
        reloaded[0]
    );
    let a = std::fs::read(dir.join("before.npy")).unwrap();
    let b = std::fs::read(dir.join("after.npy")).unwrap();
    assert!(a.len() > 128, "the outputs were written");
    assert!(a == b, "{name}: the reloaded int8 model's outputs differ");
    (outs[4..].to_vec(), reloaded[4..].to_vec())
}

/// The digits data as `load data` arguments: `[calib, test with labels]`.
fn digits_data() -> [String; 2] {
    let data = root().join("sample-models/data");
    let test = format!(
        "{} labels={}",
        quoted(&data.join("digits_test_x.npy")),
        quoted(&data.join("digits_test_y.npy"))
    );
    [quoted(&data.join("digits_calib_x.npy")), test]
}

fn digits(engine: &str) {
    let (a, b) = round_trip(
        &format!("native_int8_digits_{engine}"),
        &root().join("sample-models/digits_cnn.onnx"),
        digits_data(),
        engine,
        "quantize calib",
        &["eval test", "errors test", "show qparams"],
    );
    assert_eq!(a, b, "eval, errors and show qparams after reloading");
    assert!(a[0].contains("quantized"), "{}", a[0]);
}

#[test]
fn digits_cnn_fbgemm_round_trips_bit_exact() {
    digits("fbgemm");
}

#[test]
fn digits_cnn_qnnpack_round_trips_bit_exact() {
    digits("qnnpack");
}

#[test]
fn zoo_shufflenet_round_trips_bit_exact() {
    let Some(zoo) = shared_zoo("native int8 round trip of shufflenet_v2_x0_5") else {
        return;
    };
    let (a, b) = round_trip(
        "native_int8_shufflenet",
        &zoo.join("shufflenet_v2_x0_5.onnx"),
        [
            quoted(&zoo.join("calib.npy")),
            quoted(&zoo.join("test.npy")),
        ],
        "fbgemm",
        "quantize calib batch=4 batches=1",
        &["show qparams"],
    );
    assert_eq!(a, b);
}

/// Dynamically quantized LSTMs (qint8 and float16 weights) round-trip too.
#[test]
fn digits_lstm_dynamic_round_trips_bit_exact() {
    for dtype in ["qint8", "float16"] {
        let (a, b) = round_trip(
            &format!("native_int8_lstm_{dtype}"),
            &root().join("sample-models/digits_lstm.onnx"),
            digits_data(),
            "fbgemm",
            &format!("quantize dynamic dtype={dtype}"),
            &["eval test"],
        );
        assert_eq!(a, b, "eval after reloading");
    }
}

/// A model saved before convert is still a float-only (version 1) model.
#[test]
fn a_float_model_is_saved_as_version_1() {
    let dir = scratch("native_int8_float_v1");
    let mut wb = Workbench::new();
    wb.set_base_dir(&dir);
    let model = quoted(&root().join("sample-models/digits_cnn.onnx"));
    let out = run(
        &mut wb,
        &[format!("load model {model}"), "save model f.qlab".into()],
    );
    assert_eq!(out[1].trim(), "saved model to f.qlab");
    let json = std::fs::read_to_string(dir.join("f.qlab/graph.json")).unwrap();
    assert!(json.contains("\"version\": 1"));
    assert!(!json.contains("\"quantized\""));
}

/// `show qparams`' table of `wb`.
fn show_qparams(wb: &mut Workbench) -> Vec<Vec<String>> {
    let cmd = parse_line("show qparams").unwrap().unwrap();
    match wb.apply(&cmd).unwrap() {
        Output::Table { table, .. } => table.rows,
        other => panic!("show qparams printed {other}"),
    }
}

/// `export qparams` of `wb` as JSON, written to `dir/name`.
fn export_qparams(wb: &mut Workbench, dir: &Path, name: &str, data: &str) -> Json {
    run(wb, &[format!("export qparams out={name}{data}")]);
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

/// The digits CNN's workbench with both splits loaded, in `dir`.
fn digits_workbench(dir: &Path, model: &Path) -> Workbench {
    let [calib, test] = digits_data();
    let mut wb = Workbench::new();
    wb.set_base_dir(dir);
    run(
        &mut wb,
        &[
            format!("load model {}", quoted(model)),
            format!("load data calib {calib}"),
            format!("load data test {test}"),
        ],
    );
    wb
}

/// The converted model's `show qparams` rows and the JSON report's rows hold the same layers
/// with the same values; a prepared session adds the observers, a loaded one the qconfigs.
#[test]
fn export_qparams_matches_show_qparams() {
    let dir = scratch("native_int8_export_qparams");
    let mut wb = digits_workbench(&dir, &root().join("sample-models/digits_cnn.onnx"));
    run(&mut wb, &["engine qnnpack".into(), "quantize calib".into()]);
    let shown = show_qparams(&mut wb);
    let json = export_qparams(&mut wb, &dir, "q.json", " data=test");
    assert_eq!(json["kind"], "qparams");
    assert_eq!(json["schema_version"], 4);
    assert_eq!(json["data"], "test");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), shown.len());
    assert!(shown.len() >= 6, "{shown:?}");
    for (s, j) in shown.iter().zip(rows) {
        assert_eq!(s[0], j["layer"].as_str().unwrap());
        assert_eq!(s[1], j["op"].as_str().unwrap());
        assert_eq!(s[2], format!("{:.9e}", j["scale"].as_f64().unwrap()));
        assert_eq!(s[3], j["zero_point"].as_i64().unwrap().to_string());
        assert_eq!(j["qscheme"], "per_tensor_affine");
        let scales: Vec<f64> = j["weight_scale"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        match scales.len() {
            0 => assert_eq!(s[4], ""),
            1 => assert_eq!(s[4], format!("per-tensor scale {:.6e}", scales[0])),
            n => {
                let lo = scales.iter().copied().fold(f64::INFINITY, f64::min);
                assert!(s[4].starts_with(&format!("per-channel ×{n} scale {lo:.3e}")));
                assert_eq!(j["weight_qscheme"], "per_channel_affine");
                assert_eq!(j["weight_zero_point"].as_array().unwrap().len(), n);
            }
        }
        // Prepared here: the observer and the range it saw; measured on test: the clip rate.
        assert!(j["observer"].is_string(), "{j}");
        assert!(j["observed_max"].as_f64().unwrap() > 0.0, "{j}");
        assert!(j["clip_rate"].as_f64().is_some(), "{j}");
    }
    assert!(
        json["context"]["qconfigs"]["conv1"]
            .as_str()
            .unwrap()
            .contains("activation=")
    );

    // Saved and loaded: the same qparams, the qconfigs carried over, no observers.
    run(&mut wb, &["save model m.qlab".into()]);
    let mut loaded = digits_workbench(&dir, &dir.join("m.qlab"));
    assert_eq!(show_qparams(&mut loaded), shown);
    let again = export_qparams(&mut loaded, &dir, "q2.json", "");
    let again_rows = again["rows"].as_array().unwrap();
    for (a, b) in rows.iter().zip(again_rows) {
        for key in [
            "layer",
            "scale",
            "zero_point",
            "weight_scale",
            "weight_zero_point",
        ] {
            assert_eq!(a[key], b[key], "{key}");
        }
        assert!(b["observer"].is_null() && b["clip_rate"].is_null());
    }
    assert_eq!(again["context"]["qconfigs"], json["context"]["qconfigs"]);
    assert_eq!(again["context"]["engine"], "qnnpack");
}

/// Before convert the report lists the observers, as `show qparams` does.
#[test]
fn export_qparams_of_a_calibrated_model_lists_its_observers() {
    let dir = scratch("native_int8_export_observers");
    let mut wb = digits_workbench(&dir, &root().join("sample-models/digits_cnn.onnx"));
    run(&mut wb, &["prepare".into(), "calibrate calib".into()]);
    let shown = show_qparams(&mut wb);
    let json = export_qparams(&mut wb, &dir, "o.json", "");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), shown.len());
    for (s, j) in shown.iter().zip(rows) {
        assert_eq!(s[0], j["layer"].as_str().unwrap());
        assert_eq!(s[1], j["observer"].as_str().unwrap());
        assert_eq!(s[2], j["batches"].as_u64().unwrap().to_string());
        assert_eq!(s[3], format!("{:.6e}", j["observed_min"].as_f64().unwrap()));
        assert_eq!(s[4], format!("{:.6e}", j["observed_max"].as_f64().unwrap()));
        assert_eq!(s[5], format!("{:.9e}", j["scale"].as_f64().unwrap()));
        assert_eq!(s[6], j["zero_point"].as_i64().unwrap().to_string());
        assert_eq!(j["dtype"], "quint8");
    }
    // The CSV comes from the same renderer, one line per row.
    run(&mut wb, &["export qparams out=o.csv".into()]);
    let csv = std::fs::read_to_string(dir.join("o.csv")).unwrap();
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert!(csv.starts_with("layer,op,observer,"));
}
