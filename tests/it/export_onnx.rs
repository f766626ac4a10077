//! `export model`: the converted model as a QDQ ONNX file. The file passes qlab's ONNX rules
//! (`export::check_model`), carries the converted model's own integers (int8 weights and their
//! scales, activation scales and zero points), and imports back into qlab, where its float
//! simulation tracks the int8 model (top-1 agreement, SQNR measured here). Bad requests fail
//! with typed errors and leave an existing file alone.

use crate::support::{note, onnx, root, scratch, shared_zoo};
use prost::Message;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::export::{check_model, qdq_model};
use qlab::graph::{Op, Value};
use qlab::import::Dataset;
use qlab::import::npy::read_npy;
use qlab::import::onnx::proto::{ModelProto, TensorProto};
use qlab::import::onnx::{import_onnx_bytes, load_onnx};
use qlab::qconfig::presets::get_default_qconfig;
use qlab::session::{Workbench, parse_line};
use qlab::workflow::{self, QConfigMap, QOp};
use std::collections::HashMap;

fn apply(wb: &mut Workbench, line: &str) -> Result<String, String> {
    let cmd = parse_line(line).map_err(|e| e.to_string())?.unwrap();
    wb.apply(&cmd)
        .map(|o| o.to_string())
        .map_err(|e| e.to_string())
}

fn f32s(v: &Value) -> &[f32] {
    match v {
        Value::F32(a) => a.as_slice().unwrap(),
        Value::I64(_) => panic!("expected f32"),
    }
}

/// SQNR (dB) of `b` against `a`, and the share of rows whose argmax agrees (rows of `cols`).
fn sqnr_and_agreement(a: &[f32], b: &[f32], cols: usize) -> (f64, f64) {
    let (mut signal, mut noise) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        signal += f64::from(*x).powi(2);
        noise += f64::from(x - y).powi(2);
    }
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold(0, |best, (i, v)| if *v > r[best] { i } else { best })
    };
    let rows = a.len() / cols;
    let agree = a
        .chunks(cols)
        .zip(b.chunks(cols))
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    (10.0 * (signal / noise).log10(), agree as f64 / rows as f64)
}

fn initializers(m: &ModelProto) -> HashMap<&str, &TensorProto> {
    let g = m.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .map(|t| (t.name.as_deref().unwrap(), t))
        .collect()
}

fn raw_f32(t: &TensorProto) -> Vec<f32> {
    let raw = t.raw_data.as_ref().unwrap();
    raw.chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn digits_cnn_export_holds_the_int8_model_and_imports_back() {
    let dir = root().join("sample-models");
    let float = load_onnx(&dir.join("digits_cnn.onnx")).unwrap();
    let (fused, _) = workflow::fuse_auto(&float).unwrap();
    let mut prepared = workflow::prepare(
        &fused,
        &QConfigMap::global(get_default_qconfig("fbgemm").unwrap()),
    )
    .unwrap();
    let data = dir.join("data");
    let calib = Dataset::from_npy("calib", &data.join("digits_calib_x.npy"), None).unwrap();
    for range in calib.batch_ranges(32) {
        prepared.calibrate_batch(vec![calib.rows(range)]).unwrap();
    }
    let numerics = Numerics::new(Engine::Fbgemm, HostProfile::Vnni);
    let model = workflow::convert(&prepared, numerics).unwrap();
    let (proto, summary) = qdq_model(&model).unwrap();
    check_model(&proto).unwrap();
    assert_eq!(summary.int8_layers, 4, "three convs and the classifier");
    assert_eq!(summary.float_nodes, 0);
    let g = proto.graph.as_ref().unwrap();
    let count = |op: &str| {
        g.node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some(op))
            .count()
    };
    assert_eq!(count("QuantizeLinear"), summary.activation_pairs);
    assert_eq!(count("Conv"), 3);
    assert_eq!(count("Gemm"), 1);

    // Every quantized value's Q/DQ pair carries the converted model's output qparams.
    let inits = initializers(&proto);
    for (node, scale, zp) in model.output_qparams() {
        let n = model.graph.nodes.iter().find(|n| n.name == node).unwrap();
        let value = &n.outputs[0];
        let s = inits.get(format!("{value}/scale").as_str());
        let Some(s) = s else {
            // A fused module's output: its pair sits after the fused ReLU, same qparams.
            continue;
        };
        assert_eq!(raw_f32(s), [scale as f32], "{node}");
        let z = inits[format!("{value}/zero_point").as_str()];
        assert_eq!(z.data_type, Some(2), "uint8 activations");
        assert_eq!(z.raw_data.as_deref(), Some(&[zp as u8][..]), "{node}");
    }

    // The reimported file's weights are the int8 weights, dequantized: (q - zp) · scale.
    let reimported = import_onnx_bytes(&proto.encode_to_vec(), "export").unwrap();
    let mut checked = 0;
    for (n, op) in model.graph.nodes.iter().zip(&model.ops) {
        let QOp::Conv(c) = op else { continue };
        let back = reimported.nodes.iter().find(|m| m.name == n.name).unwrap();
        let Op::Conv(p) = &back.op else {
            panic!("{} imports as {}", n.name, back.op.kind())
        };
        let w = &c.weight;
        let expected: Vec<f32> = w
            .data
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let ch = if w.scales.len() > 1 { i / w.k } else { 0 };
                (i32::from(q) - w.zero_points[ch]) as f32 * w.scales[ch] as f32
            })
            .collect();
        assert_eq!(p.weight.as_slice().unwrap(), &expected[..], "{}", n.name);
        checked += 1;
    }
    assert_eq!(checked, 3);

    // The float simulation of the file tracks the int8 model.
    let test = read_npy(&data.join("digits_test_x.npy")).unwrap();
    let int8 = model.run(vec![test.clone()], |_, _| {}).unwrap();
    let sim = qlab::graph::run(&reimported, vec![test], |_, _| {}).unwrap();
    let (sqnr, agree) = sqnr_and_agreement(f32s(&int8[0]), f32s(&sim[0]), 10);
    note(format!(
        "digits CNN QDQ export, imported back, vs qlab's fbgemm int8 on 397 test images: SQNR {sqnr:.2} dB, top-1 agreement {agree:.4}"
    ));
    assert!(sqnr > 35.0, "SQNR {sqnr}");
    assert!(agree >= 0.995, "agreement {agree}");
}

#[test]
fn zoo_shufflenet_export_checks_and_imports_back() {
    let Some(zoo) = shared_zoo("ShuffleNet QDQ export") else {
        return;
    };
    let dir = scratch("export-onnx-zoo");
    let mut wb = Workbench::new();
    wb.set_base_dir(&dir);
    let model = zoo.join("shufflenet_v2_x0_5.onnx");
    for line in [
        format!("load model \"{}\"", model.display()),
        format!("load data calib \"{}\"", zoo.join("calib.npy").display()),
        format!("load data test \"{}\"", zoo.join("test.npy").display()),
        "engine qnnpack".into(),
        "quantize calib batch=4".into(),
        "predict test out=int8.npy model=quantized".into(),
    ] {
        apply(&mut wb, &line).unwrap();
    }
    let said = apply(&mut wb, "export model out=m.int8.onnx").unwrap();
    assert!(said.contains("57 int8 conv/linear layers"), "{said}");
    let bytes = std::fs::read(dir.join("m.int8.onnx")).unwrap();
    let proto = ModelProto::decode(&bytes[..]).unwrap();
    check_model(&proto).unwrap();
    // qnnpack's default weights are per tensor: scalar weight scales, no axis.
    let inits = initializers(&proto);
    assert!(inits["conv1.0.weight_scale"].dims.is_empty());

    apply(&mut wb, "load model m.int8.onnx").unwrap();
    apply(&mut wb, "predict test out=sim.npy").unwrap();
    let int8 = read_npy(&dir.join("int8.npy")).unwrap();
    let sim = read_npy(&dir.join("sim.npy")).unwrap();
    let (sqnr, agree) = sqnr_and_agreement(f32s(&int8), f32s(&sim), 1000);
    note(format!(
        "ShuffleNetV2 x0.5 (qnnpack) QDQ export, imported back, vs qlab's int8 on the zoo's 2 test images: SQNR {sqnr:.2} dB, top-1 agreement {agree:.2}"
    ));
    assert!(sqnr > 30.0, "SQNR {sqnr}");
    assert_eq!(agree, 1.0);
}

#[test]
fn bad_requests_are_typed_and_leave_files_alone() {
    let dir = scratch("export-onnx-errors");
    let kept = dir.join("m.onnx");
    std::fs::write(&kept, b"keep me").unwrap();
    let mut wb = Workbench::new();
    wb.set_base_dir(&dir);
    let models = root().join("sample-models");
    let e = apply(&mut wb, "export model out=m.json").unwrap_err();
    assert!(e.contains("must be .onnx"), "{e}");
    apply(
        &mut wb,
        &format!(
            "load model \"{}\"",
            models.join("digits_mlp.onnx").display()
        ),
    )
    .unwrap();
    let e = apply(&mut wb, "export model out=m.onnx").unwrap_err();
    assert!(e.contains("no quantized model"), "{e}");
    apply(&mut wb, "quantize dynamic").unwrap();
    let e = apply(&mut wb, "export model out=m.onnx").unwrap_err();
    assert!(
        e.contains("cannot be exported") && e.contains("dynamic"),
        "{e}"
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b"keep me");
}

/// A scalar initializer of ONNX type `dt` from its raw little-endian bytes.
fn scalar_raw(name: &str, dt: i32, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![],
        data_type: Some(dt),
        raw_data: Some(raw),
        ..Default::default()
    }
}

#[test]
fn quantize_linear_with_an_int8_zero_point_saturates_to_int8() {
    let inits = vec![
        onnx::f32_tensor("s", &[], &[0.5]),
        scalar_raw("z", 3, vec![(-3i8) as u8]),
    ];
    let nodes = vec![
        onnx::node("/q", "QuantizeLinear", &["x", "s", "z"], "q", vec![]),
        onnx::node("/dq", "DequantizeLinear", &["q", "s", "z"], "y", vec![]),
    ];
    let g = import_onnx_bytes(&onnx::graph(nodes, inits, &[4]), "qdq").unwrap();
    let x = Value::F32(ndarray::arr1(&[-100f32, -1.25, 0.75, 100.0]).into_dyn());
    let y = qlab::graph::run(&g, vec![x], |_, _| {}).unwrap();
    // round(-2.5) = -2 (half to even), +(-3) → -5 → (-5 + 3) · 0.5 = -1.0; the ends saturate
    // to -128 and 127.
    assert_eq!(f32s(&y[0]), &[-62.5, -1.0, 1.0, 65.0]);
    // A zero point that is not an 8-bit constant is refused by name.
    let nodes = vec![onnx::node(
        "/q",
        "QuantizeLinear",
        &["x", "s", "z"],
        "y",
        vec![],
    )];
    let inits = vec![
        onnx::f32_tensor("s", &[], &[0.5]),
        onnx::i64_tensor("z", &[], &[0]),
    ];
    let e = import_onnx_bytes(&onnx::graph(nodes, inits, &[4]), "qdq").unwrap_err();
    assert!(e.to_string().contains("y_zero_point"), "{e}");
}

/// A QDQ file with int8 activations (zero point 0, as ONNX Runtime's quantizer writes them)
/// quantized again and exported keeps its DequantizeLinear zero point int8, the type of the
/// QuantizeLinear feeding it (not uint8 because the zero point happens to be non-negative).
#[test]
fn reexported_int8_qdq_keeps_its_zero_point_type() {
    let inits = vec![
        onnx::f32_tensor("s", &[], &[0.05]),
        scalar_raw("z", 3, vec![0]),
        onnx::f32_tensor("w", &[2, 4], &[0.5, -0.25, 1.0, 0.0, -1.0, 0.5, 0.25, 2.0]),
        onnx::f32_tensor("b", &[2], &[0.1, -0.2]),
    ];
    let nodes = vec![
        onnx::node("/q", "QuantizeLinear", &["x", "s", "z"], "q", vec![]),
        onnx::node("/dq", "DequantizeLinear", &["q", "s", "z"], "d", vec![]),
        onnx::node(
            "/fc/Gemm",
            "Gemm",
            &["d", "w", "b"],
            "y",
            vec![onnx::attr_i("transB", 1)],
        ),
    ];
    let g = import_onnx_bytes(&onnx::graph(nodes, inits, &[3, 4]), "int8 qdq").unwrap();
    let mut prepared = workflow::prepare(
        &g,
        &QConfigMap::global(get_default_qconfig("fbgemm").unwrap()),
    )
    .unwrap();
    let x = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| (i as f32 - j as f32) * 0.3);
    prepared
        .calibrate_batch(vec![Value::F32(x.into_dyn())])
        .unwrap();
    let model = workflow::convert(&prepared, Numerics::default()).unwrap();
    let (proto, _) = qdq_model(&model).unwrap();
    check_model(&proto).unwrap();
    assert_eq!(
        initializers(&proto)["z"].data_type,
        Some(3),
        "int8 zero point"
    );
}
