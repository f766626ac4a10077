//! Bad models and data give typed errors that name the file, node, op type or field — never a
//! panic.

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
