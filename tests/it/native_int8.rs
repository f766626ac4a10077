//! The native format's quantized section end to end: a model converted in one session, saved
//! with `save model`, loads in a fresh session whose converted model computes the same int8
//! outputs bit for bit (compared through `predict … model=quantized`, the dequantized outputs
//! as `.npy` bytes) and whose `eval` and `errors` run without calibrating again.

use crate::support::{root, scratch, shared_zoo};
use qlab::session::{Workbench, parse_line};
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

/// Converts `model` (calibrated on `calib`, with `engine`), saves it, loads it into a fresh
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
        format!("quantize calib{quantize}"),
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

fn digits(engine: &str) {
    let data = root().join("sample-models/data");
    let test = format!(
        "{} labels={}",
        quoted(&data.join("digits_test_x.npy")),
        quoted(&data.join("digits_test_y.npy"))
    );
    let (a, b) = round_trip(
        &format!("native_int8_digits_{engine}"),
        &root().join("sample-models/digits_cnn.onnx"),
        [quoted(&data.join("digits_calib_x.npy")), test],
        engine,
        "",
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
        " batch=4 batches=1",
        &["show qparams"],
    );
    assert_eq!(a, b);
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
