//! `export pytorch`: the JSON beside the script holds the converted model's own qparams (read
//! back from the model qlab saved, compared exactly), the script names that JSON and defines
//! `apply`, and the verb refuses typed what PyTorch's static `convert` cannot take. Running the
//! script needs PyTorch (`tools/verify_pytorch.py`, by hand); these tests need no Python.

use crate::support::{root, scratch};
use qlab::import::native::load_native_model;
use qlab::session::{Output, SessionError, Workbench, parse_line};
use qlab::workflow::QOp;
use serde_json::Value as Json;
use std::path::Path;

fn apply(wb: &mut Workbench, line: &str) -> Result<Output, SessionError> {
    wb.apply(&parse_line(line).unwrap().expect("a command"))
}

fn run(wb: &mut Workbench, line: &str) -> Output {
    apply(wb, line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// A workbench in `dir` with `model` (under sample-models/) and the digits calibration set.
fn session(dir: &Path, model: &str) -> Workbench {
    let mut wb = Workbench::new();
    wb.set_base_dir(dir);
    let s = root().join("sample-models");
    run(&mut wb, &format!("load model {}/{model}", s.display()));
    run(
        &mut wb,
        &format!("load data calib {}/data/digits_calib_x.npy", s.display()),
    );
    wb
}

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Json) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Json) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// The JSON's entries against the converted model as saved: every op with output qparams is
/// listed once, with its exact scale, zero point and weight qparams.
fn assert_matches_model(json: &Json, saved: &Path) {
    let model = load_native_model(saved).unwrap().quantized.unwrap().model;
    let modules = json["modules"].as_array().unwrap();
    let mut listed = 0;
    for (node, op) in model.graph.nodes.iter().zip(&model.ops) {
        let (scale, zp, weight) = match op {
            QOp::Quantize(q) => (q.scale, q.zero_point, None),
            QOp::Conv(c) => (c.out_scale, c.out_zero_point, Some(&c.weight)),
            QOp::Linear(l) => (l.out_scale, l.out_zero_point, Some(&l.weight)),
            QOp::Add(f) | QOp::AddRelu(f) | QOp::Mul(f) | QOp::Cat(f) => {
                (f.scale, f.zero_point, None)
            }
            QOp::Hardswish { scale, zero_point } => (*scale, *zero_point, None),
            _ => continue,
        };
        listed += 1;
        let entry = modules
            .iter()
            .find(|m| m["node"] == node.name.as_str())
            .unwrap_or_else(|| panic!("{} is not in the JSON", node.name));
        let act = &entry["activation"];
        assert_eq!(floats(&act["scale"]), [scale], "{}", node.name);
        assert_eq!(ints(&act["zero_point"]), [zp], "{}", node.name);
        match (weight, entry["weight"].is_null()) {
            (Some(w), false) => {
                let jw = &entry["weight"];
                assert_eq!(floats(&jw["scale"]), w.scales, "{}", node.name);
                let zps: Vec<i64> = w.zero_points.iter().map(|&z| z.into()).collect();
                assert_eq!(ints(&jw["zero_point"]), zps, "{}", node.name);
                assert_eq!(jw["dtype"], "qint8");
                if w.scales.len() > 1 {
                    assert_eq!(jw["ch_axis"], 0);
                    assert_eq!(jw["qscheme"], "per_channel_affine");
                }
            }
            (None, true) => {}
            _ => panic!("{}: weight listed {}", node.name, entry["weight"]),
        }
        // Modules by PyTorch path; functionals by the scope they were called in.
        match op.functional_method() {
            Some(method) => {
                assert!(entry["module"].is_null(), "{entry}");
                assert_eq!(entry["functional"], method);
            }
            None => assert_eq!(entry["module"], node.name.as_str()),
        }
    }
    assert_eq!(modules.len(), listed);
}

#[test]
fn the_json_holds_the_converted_models_qparams() {
    let dir = scratch("export_pytorch_digits");
    let mut wb = session(&dir, "digits_cnn.onnx");
    // A qlab-only calibrator: PyTorch has no entropy observer, the JSON carries its result.
    run(&mut wb, "engine qnnpack");
    run(&mut wb, "qconfig * activation=entropy");
    run(&mut wb, "quantize calib");
    run(&mut wb, "save model m.qlab");
    let Output::Text(said) = run(&mut wb, "export pytorch out=torch/apply_qlab.py") else {
        panic!("export pytorch prints a line")
    };
    assert!(said.contains("torch/apply_qlab.json"), "{said}");
    let json = read_json(&dir.join("torch/apply_qlab.json"));
    assert_eq!(json["kind"], "pytorch");
    assert_eq!(json["schema_version"], 4);
    assert_eq!(json["engine"], "qnnpack");
    assert_matches_model(&json, &dir.join("m.qlab"));
    let modules = json["modules"].as_array().unwrap();
    // The digits CNN's residual add is called at the root; its observer's range is known here.
    let add = modules.iter().find(|m| m["functional"] == "add").unwrap();
    assert_eq!(add["scope"], "");
    assert_eq!(add["activation"]["quant_min"], 0);
    assert_eq!(add["activation"]["quant_max"], 255);
    let conv = modules.iter().find(|m| m["module"] == "conv1").unwrap();
    assert_eq!(conv["weight"]["quant_min"], -128);

    let py = std::fs::read_to_string(dir.join("torch/apply_qlab.py")).unwrap();
    assert!(py.contains("with_name(\"apply_qlab.json\")"), "{py}");
    assert!(py.contains("def apply(prepared_model"));
    assert!(py.contains("class FixedQParamsObserver(ObserverBase)"));
    assert!(!py.contains("{{"), "an unfilled placeholder");
    // Only torch and the standard library.
    for line in py
        .lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
    {
        let root_module = line.split_whitespace().nth(1).unwrap().split('.').next();
        assert!(
            matches!(
                root_module,
                Some("torch" | "json" | "pathlib" | "functools")
            ),
            "{line}"
        );
    }

    // A model loaded from the native format exports the same qparams (no observer ranges).
    let mut loaded = session(&dir, "digits_cnn.onnx");
    run(&mut loaded, "load model m.qlab");
    run(&mut loaded, "export pytorch out=again.py");
    let again = read_json(&dir.join("again.json"));
    assert_matches_model(&again, &dir.join("m.qlab"));
    let a = again["modules"].as_array().unwrap();
    assert!(a.iter().all(|m| m["activation"]["quant_min"].is_null()));
}

#[test]
fn refusals_are_typed_and_leave_existing_files() {
    let dir = scratch("export_pytorch_refusals");
    std::fs::write(dir.join("keep.py"), "# mine\n").unwrap();
    std::fs::write(dir.join("keep.json"), "{}\n").unwrap();
    let mut wb = session(&dir, "digits_cnn.onnx");
    let line = "export pytorch out=keep.py";
    assert!(matches!(
        apply(&mut wb, line),
        Err(SessionError::NotConverted)
    ));
    run(&mut wb, "prepare");
    run(&mut wb, "calibrate calib");
    assert!(matches!(
        apply(&mut wb, line),
        Err(SessionError::NotConverted)
    ));

    let mut dynamic = session(&dir, "digits_mlp.onnx");
    run(&mut dynamic, "quantize dynamic");
    let err = apply(&mut dynamic, line).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Unsupported {
                command: "export pytorch",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("dynamically quantized"), "{err}");

    let mut qat = session(&dir, "digits_cnn.onnx");
    run(&mut qat, "prepare qat");
    assert!(matches!(
        apply(&mut qat, line),
        Err(SessionError::QatModel { .. })
    ));
    // Nothing was written over.
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.py")).unwrap(),
        "# mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.json")).unwrap(),
        "{}\n"
    );

    // The script must be a .py file (its JSON takes the stem).
    let e = parse_line("export pytorch out=a.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("out=FILE.py"), "{e}");
}
