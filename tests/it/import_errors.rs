//! Bad models and data give typed errors that name the file, node, op type or field — never a
//! panic.

use crate::support::onnx;

use onnx::{attr_i, attr_ints, f32_tensor, graph, i64_tensor, model, node};
use prost::Message;
use qlab::graph::{GraphError, Value, run};
use qlab::import::ImportError;
use qlab::import::npy::{NpyError, parse_npy};
use qlab::import::onnx::import_onnx_bytes;
use qlab::import::onnx::proto::ModelProto;
use std::path::Path;

fn cnn_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models/digits_cnn.onnx"))
        .unwrap()
}

fn edited(edit: impl FnOnce(&mut ModelProto)) -> Vec<u8> {
    let mut m = ModelProto::decode(cnn_bytes().as_slice()).unwrap();
    edit(&mut m);
    m.encode_to_vec()
}

#[test]
fn truncated_and_corrupt_files() {
    let bytes = cnn_bytes();
    let err = import_onnx_bytes(&bytes[..bytes.len() / 2], "half.onnx").unwrap_err();
    assert!(
        matches!(err, ImportError::Corrupt { ref path, .. } if path == "half.onnx"),
        "{err}"
    );
    let err = import_onnx_bytes(b"\x08\x07garbage\xff\xff", "junk.onnx").unwrap_err();
    assert!(matches!(err, ImportError::Corrupt { .. }), "{err}");
}

#[test]
fn unknown_op_names_node_and_op_type() {
    let bytes = edited(|m| m.graph.as_mut().unwrap().node[2].op_type = Some("Frobnicate".into()));
    let err = import_onnx_bytes(&bytes, "m.onnx").unwrap_err();
    match err {
        ImportError::UnsupportedOp { node, op_type } => {
            assert_eq!(node, "/relu1/Relu");
            assert_eq!(op_type, "Frobnicate");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn unsupported_attribute_is_named() {
    let bytes = edited(|m| {
        let conv = &mut m.graph.as_mut().unwrap().node[0];
        let attr = conv
            .attribute
            .iter_mut()
            .find(|a| a.name.as_deref() == Some("group"))
            .unwrap();
        attr.name = Some("mystery".into());
    });
    let err = import_onnx_bytes(&bytes, "m.onnx").unwrap_err();
    assert!(
        matches!(err, ImportError::UnsupportedAttribute { ref node, ref op_type, ref attribute, .. } if node == "/conv1/Conv" && op_type == "Conv" && attribute == "mystery"),
        "{err}"
    );
}

#[test]
fn missing_initializer_is_named() {
    let bytes = edited(|m| {
        m.graph
            .as_mut()
            .unwrap()
            .initializer
            .retain(|t| t.name.as_deref() != Some("conv2.weight"))
    });
    let err = import_onnx_bytes(&bytes, "m.onnx").unwrap_err();
    assert!(
        matches!(err, ImportError::MissingInput { ref node, ref input, .. } if node == "/conv2/Conv" && input == "conv2.weight"),
        "{err}"
    );
}

#[test]
fn wrong_input_rank_and_size() {
    let graph = import_onnx_bytes(&cnn_bytes(), "m.onnx").unwrap();
    let x = Value::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[2, 8, 8])));
    let err = run(&graph, vec![x], |_, _| {}).unwrap_err();
    assert!(
        matches!(err, GraphError::BadInput { ref input, .. } if input == "input"),
        "{err}"
    );
    assert!(err.to_string().contains("[N, 1, 8, 8]"), "{err}");
    let x = Value::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[2, 1, 9, 8])));
    assert!(matches!(
        run(&graph, vec![x], |_, _| {}),
        Err(GraphError::BadInput { .. })
    ));
}

#[test]
fn npy_with_wrong_dtype_or_truncated_data() {
    let header = "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend([0u8; 12]);
    let err = parse_npy(&bytes, "strings.npy").unwrap_err();
    assert!(
        matches!(err, NpyError::Dtype { ref descr, .. } if descr == "<U3"),
        "{err}"
    );
    let real = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models/data/digits_test_y.npy"),
    )
    .unwrap();
    let err = parse_npy(&real[..real.len() - 3], "cut.npy").unwrap_err();
    assert!(matches!(err, NpyError::Format { .. }), "{err}");
}

/// The import error of `bytes`, which must not panic.
fn refused(bytes: &[u8]) -> ImportError {
    import_onnx_bytes(bytes, "bad.onnx").expect_err("a crafted model must be refused")
}

/// An attribute error naming the node, attribute and (part of) the offending value.
fn assert_attribute(err: &ImportError, want_node: &str, want_attr: &str, value: &str) {
    match err {
        ImportError::UnsupportedAttribute {
            node,
            attribute,
            detail,
            ..
        } => {
            assert_eq!((node.as_str(), attribute.as_str()), (want_node, want_attr));
            assert!(detail.contains(value), "{err}");
        }
        other => panic!("expected an attribute error, got {other}"),
    }
}

/// A memory-budget error naming the node.
fn assert_over_budget(err: &ImportError, want_node: &str) {
    match err {
        ImportError::Graph(GraphError::OverBudget { node, .. }) => {
            assert_eq!(node, want_node, "{err}");
            assert!(err.to_string().contains("bytes"), "{err}");
        }
        other => panic!("expected an over-budget error, got {other}"),
    }
}

#[test]
fn clip_bounds_must_be_ordered_and_not_nan() {
    for (lo, hi, shown) in [
        (1.0, 0.0, "[1, 0]"),
        (f32::NAN, 1.0, "NaN"),
        (0.0, f32::NAN, "NaN"),
        (f32::INFINITY, f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, f32::NEG_INFINITY, "-inf"),
    ] {
        let bytes = model(
            "Clip",
            &[1, 4],
            &["lo", "hi"],
            vec![f32_tensor("lo", &[], &[lo]), f32_tensor("hi", &[], &[hi])],
            vec![],
        );
        assert_attribute(&refused(&bytes), "/m/Clip", "min/max", shown);
    }
}

#[test]
fn huge_pads_are_refused_at_the_node() {
    let w = || f32_tensor("w", &[1, 1, 3, 3], &[1.0; 9]);
    for pad in [100_000, 1 << 62] {
        let conv = model(
            "Conv",
            &[1, 1, 4, 4],
            &["w"],
            vec![w()],
            vec![attr_ints("pads", &[pad; 4])],
        );
        assert_attribute(&refused(&conv), "/m/Conv", "pads", &pad.to_string());
        let pool = model(
            "MaxPool",
            &[1, 1, 4, 4],
            &[],
            vec![],
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("pads", &[pad; 4]),
            ],
        );
        assert_attribute(&refused(&pool), "/m/MaxPool", "pads", &pad.to_string());
    }
    let strided = model(
        "Conv",
        &[1, 1, 4, 4],
        &["w"],
        vec![w()],
        vec![attr_ints("strides", &[1 << 40, 1])],
    );
    assert_attribute(&refused(&strided), "/m/Conv", "strides", "1099511627776");
}

#[test]
fn pads_within_range_but_an_output_over_budget() {
    // 64 channels of 131074² floats: 4.4 TB, refused when the import probe sizes the output.
    let w = f32_tensor("w", &[64, 1, 3, 3], &[0.0; 576]);
    let conv = model(
        "Conv",
        &[1, 1, 4, 4],
        &["w"],
        vec![w],
        vec![attr_ints("pads", &[65_536; 4])],
    );
    assert_over_budget(&refused(&conv), "m");
}

#[test]
fn resize_scales_and_sizes_are_checked() {
    let resize = |inits: Vec<_>, extra: &[&str]| {
        model(
            "Resize",
            &[1, 1, 2, 2],
            extra,
            inits,
            vec![onnx::attr_s("mode", "linear")],
        )
    };
    for bad in [f32::INFINITY, f32::NAN, -2.0, 0.0] {
        let scales = f32_tensor("s", &[4], &[1.0, 1.0, bad, 2.0]);
        let err = refused(&resize(vec![scales], &["", "s"]));
        assert_attribute(&err, "/m/Resize", "scales", &format!("{bad}"));
    }
    let huge = f32_tensor("s", &[4], &[1.0, 1.0, 1e30, 1e30]);
    assert_over_budget(&refused(&resize(vec![huge], &["", "s"])), "m");
    let sizes = i64_tensor("z", &[4], &[1, 1, 1 << 31, 1 << 31]);
    assert_over_budget(&refused(&resize(vec![sizes], &["", "", "z"])), "m");
    let negative = i64_tensor("z", &[4], &[1, 1, -3, 4]);
    let err = refused(&resize(vec![negative], &["", "", "z"]));
    assert_attribute(&err, "/m/Resize", "sizes", "-3");
}

#[test]
fn constant_of_shape_is_sized_before_it_is_folded() {
    for dims in [[1_000_000, 1_000_000], [1 << 40, 1 << 40]] {
        let nodes = vec![
            node("/fill", "ConstantOfShape", &["shape"], "c", vec![]),
            node("/add", "Add", &["x", "c"], "y", vec![]),
        ];
        let bytes = graph(nodes, vec![i64_tensor("shape", &[2], &dims)], &[1, 1]);
        assert_over_budget(&refused(&bytes), "/fill");
    }
}

#[test]
fn an_input_of_a_trillion_elements_is_refused() {
    let bytes = model("Relu", &[1, 1_000_000, 1_000_000], &[], vec![], vec![]);
    let err = refused(&bytes);
    assert_over_budget(&err, "x");
    assert!(err.to_string().contains("4000000000000"), "{err}");
}

#[test]
fn lstm_parameter_shapes_must_fit_hidden_size() {
    let lstm = |b_len: usize| {
        model(
            "LSTM",
            &[2, 1, 3],
            &["W", "R", "B"],
            vec![
                f32_tensor("W", &[1, 8, 3], &[0.1; 24]),
                f32_tensor("R", &[1, 8, 2], &[0.1; 16]),
                f32_tensor("B", &[1, b_len as i64], &vec![0.0; b_len]),
            ],
            vec![attr_i("hidden_size", 2)],
        )
    };
    assert_attribute(&refused(&lstm(10)), "/m/LSTM", "B", "[1, 10]");
    assert!(import_onnx_bytes(&lstm(16), "ok.onnx").is_ok());
    let huge_hidden = model(
        "LSTM",
        &[2, 1, 3],
        &["W", "R"],
        vec![
            f32_tensor("W", &[1, 8, 3], &[0.1; 24]),
            f32_tensor("R", &[1, 8, 2], &[0.1; 16]),
        ],
        vec![attr_i("hidden_size", 1 << 62)],
    );
    assert_attribute(
        &refused(&huge_hidden),
        "/m/LSTM",
        "hidden_size",
        "4611686018427387904",
    );
}

#[test]
fn unknown_ir_versions_and_opsets_are_refused() {
    for (edit, want) in [
        (
            (|m: &mut ModelProto| m.ir_version = Some(99)) as fn(&mut ModelProto),
            "ir_version 99",
        ),
        (|m| m.ir_version = None, "ir_version is missing"),
        (|m| m.opset_import[0].version = Some(99), "opset 99"),
        (|m| m.opset_import[0].version = Some(1), "opset 1"),
    ] {
        let err = refused(&edited(|m| {
            // The default domain's entry is the one checked, wherever it sits.
            m.opset_import
                .sort_by_key(|o| !o.domain.as_deref().unwrap_or("").is_empty());
            edit(m)
        }));
        assert!(matches!(err, ImportError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(want), "{err}");
    }
}

/// A native model's `graph.json` is checked like an imported file: each edit below is a typed
/// error naming what is wrong, never a panic in `load`, `prepare` or `save`.
#[test]
fn native_graph_json_is_validated() {
    use qlab::import::native::{load_native, save_native};
    use serde_json::{Value as Json, json};
    let graph = qlab::import::onnx::load_onnx(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models/digits_cnn.onnx"),
    )
    .unwrap();
    let (fused, _) = qlab::workflow::fuse_auto(&graph).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/native-validate-tests/cnn.qlab");
    let _ = std::fs::remove_dir_all(&dir);
    save_native(&fused, &dir).unwrap();
    let json_path = dir.join("graph.json");
    let good: Json = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let node = |j: &mut Json, name: &str| -> usize {
        let nodes = j["nodes"].as_array().unwrap();
        nodes.iter().position(|n| n["name"] == name).unwrap()
    };
    type Edit = Box<dyn Fn(&mut Json)>;
    let cases: Vec<(Edit, &[&str])> = vec![
        (
            Box::new(|j| j["fusions"][0]["modules"][2] = json!("ghost")),
            &["fusion", "'ghost'", "not in the graph"],
        ),
        (
            Box::new(|j| {
                j["fusions"][0]["modules"] = json!([]);
                j["fusions"][0]["types"] = json!([]);
            }),
            &["fusion", "0 modules"],
        ),
        (
            Box::new(|j| j["fusions"][1]["modules"][0] = json!("conv1")),
            &["'conv1' is in two fusions"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "relu1");
                j["nodes"][k]["outputs"] = json!([]);
            }),
            &["'relu1'", "no output"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "relu1");
                j["nodes"][k]["name"] = json!("conv1");
            }),
            &["'conv1'", "two nodes have this name"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "relu1");
                let out = j["nodes"][k]["outputs"][0].clone();
                j["nodes"][0]["inputs"] = json!([out]);
            }),
            &["'conv1'", "cycle"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "relu1");
                j["nodes"][k]["inputs"] = json!(["nowhere"]);
            }),
            &["'relu1'", "'nowhere'", "nothing produces"],
        ),
        (
            Box::new(|j| j["outputs"] = json!(["zzz"])),
            &["graph output", "'zzz'"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "conv2");
                j["nodes"][k]["groups"] = json!(0);
            }),
            &["'conv2'", "group"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "conv2");
                j["nodes"][k]["stride"] = json!([0, 1]);
            }),
            &["'conv2'", "strides", "value 0"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "pool");
                j["nodes"][k]["pad_begin"] = json!([100000, 0]);
            }),
            &["'pool'", "pads", "100000"],
        ),
        (
            Box::new(move |j| {
                let k = node(j, "pool");
                j["nodes"][k]["outputs"] = json!(["a", "b"]);
            }),
            &["'pool'", "2 outputs"],
        ),
        (
            Box::new(|j| j["inputs"][0]["shape"] = json!([1_000_000_000_000u64, 1, 8, 8])),
            &["input", "memory budget"],
        ),
    ];
    for (edit, want) in cases {
        let mut j = good.clone();
        edit(&mut j);
        std::fs::write(&json_path, serde_json::to_string(&j).unwrap()).unwrap();
        let err = load_native(&dir).expect_err("an edited graph.json must be refused");
        let shown = err.to_string();
        assert!(shown.contains("graph.json"), "{shown}");
        for w in want {
            assert!(shown.contains(w), "missing {w:?} in: {shown}");
        }
    }
    std::fs::write(&json_path, serde_json::to_string(&good).unwrap()).unwrap();
    assert_eq!(load_native(&dir).unwrap(), fused);
}
