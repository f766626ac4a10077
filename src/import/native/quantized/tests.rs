//! A converted model's section refuses corrupted fields with an error naming them: the digits
//! CNN converted for fbgemm is saved once, then its `graph.json` or one of its tensors is
//! edited as a broken tool or a hand edit would, and decoding must fail typed, never panic.

use super::super::{NativeError, decode_native_model};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::Value as Json;
use std::path::Path;
use std::sync::OnceLock;

/// The digits CNN converted for fbgemm (PyTorch's default qconfig, the calibration set in one
/// batch), encoded: `(graph.json, weights)`. Built with the workflow library, not the session
/// (a higher layer).
fn saved() -> &'static (Json, Vec<u8>) {
    static S: OnceLock<(Json, Vec<u8>)> = OnceLock::new();
    S.get_or_init(|| {
        use crate::engine::Numerics;
        use crate::qconfig::presets::get_default_qconfig;
        use crate::workflow::{QConfigMap, convert, fuse_auto, prepare};
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let graph =
            crate::import::onnx::load_onnx(&root.join("sample-models/digits_cnn.onnx")).unwrap();
        let calib =
            crate::import::npy::read_npy(&root.join("sample-models/data/digits_calib_x.npy"))
                .unwrap();
        let (fused, _) = fuse_auto(&graph).unwrap();
        let mut prepared = prepare(
            &fused,
            &QConfigMap::global(get_default_qconfig("fbgemm").unwrap()),
        )
        .unwrap();
        prepared.calibrate_batch(vec![calib]).unwrap();
        let model = convert(&prepared, Numerics::default()).unwrap();
        let qconfigs = prepared
            .qconfigs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map_or("float".into(), |q| q.to_string()),
                )
            })
            .collect();
        let (text, weights) =
            super::super::encode_native_model(&fused, Some((&model, &qconfigs)), "m.qlab").unwrap();
        (serde_json::from_str(&text).unwrap(), weights)
    })
}

fn decode(json: &Json, weights: &[u8]) -> Result<super::SavedQuantized, NativeError> {
    let m = decode_native_model(
        &json.to_string(),
        weights,
        "graph.json",
        "weights.safetensors",
    )?;
    Ok(m.quantized.expect("a quantized section"))
}

/// The saved model with `edit` applied to `graph.json`'s quantized op of `node`.
fn with_op(node: &str, edit: impl FnOnce(&mut Json)) -> Result<super::SavedQuantized, NativeError> {
    let (json, weights) = saved();
    let mut json = json.clone();
    let op = json["quantized"]["ops"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["node"] == node)
        .expect("op");
    edit(op);
    decode(&json, weights)
}

/// The saved model with tensor `key`'s dtype, shape and bytes replaced by `edit`'s.
fn with_tensor(
    key: &str,
    edit: impl FnOnce(&mut Dtype, &mut Vec<usize>, &mut Vec<u8>),
) -> Result<super::SavedQuantized, NativeError> {
    let (json, weights) = saved();
    let st = SafeTensors::deserialize(weights).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let (_, dt, shape, bytes) = owned.iter_mut().find(|t| t.0 == key).expect("tensor");
    edit(dt, shape, bytes);
    let views = owned
        .iter()
        .map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    decode(json, &safetensors::serialize(views, None).unwrap())
}

/// `err` is the variant `matches` accepts and its text names every one of `names`.
fn assert_names(err: NativeError, matches: fn(&NativeError) -> bool, names: &[&str]) {
    assert!(matches(&err), "{err:?}");
    let shown = err.to_string();
    for n in names {
        assert!(shown.contains(n), "missing {n:?} in: {shown}");
    }
}

fn tensor(e: &NativeError) -> bool {
    matches!(e, NativeError::Tensor { .. })
}

fn field(e: &NativeError) -> bool {
    matches!(e, NativeError::Quantized { .. })
}

#[test]
fn the_saved_model_decodes_with_its_qconfigs() {
    let (json, weights) = saved();
    let q = decode(json, weights).unwrap();
    assert_eq!(q.model.numerics.engine, crate::engine::Engine::Fbgemm);
    assert_eq!(q.model.ops.len(), q.model.graph.nodes.len());
    assert!(q.qconfigs["conv1"].contains("per_channel_minmax"));
    assert!(q.saved_isa.is_some());
}

#[test]
fn bad_weight_qparams_are_refused_by_name() {
    let nan = with_tensor("qop/conv1.weight_scale", |_, _, b| {
        b[..8].copy_from_slice(&f64::NAN.to_le_bytes())
    });
    assert_names(nan.unwrap_err(), tensor, &["qop/conv1.weight_scale", "NaN"]);
    let zero = with_tensor("qop/fc.weight_scale", |_, _, b| {
        b[8..16].copy_from_slice(&0f64.to_le_bytes())
    });
    assert_names(
        zero.unwrap_err(),
        tensor,
        &["qop/fc.weight_scale", "scale 1"],
    );
    let zp = with_tensor("qop/conv2.weight_zero_point", |_, _, b| {
        b[..4].copy_from_slice(&300i32.to_le_bytes())
    });
    assert_names(
        zp.unwrap_err(),
        tensor,
        &["qop/conv2.weight_zero_point", "300"],
    );
}

#[test]
fn wrong_dtypes_and_shapes_are_refused_by_name() {
    let dtype = with_tensor("qop/conv1.weight", |d, _, _| *d = Dtype::U8);
    assert_names(
        dtype.unwrap_err(),
        tensor,
        &["qop/conv1.weight", "U8", "I8"],
    );
    // The same bytes as another shape: the channel count no longer matches the scales.
    let shape = with_tensor("qop/conv3.weight", |_, s, _| {
        let (o, rest) = (s[0], s[1]);
        *s = vec![o / 2, rest * 2, s[2], s[3]];
    });
    assert_names(shape.unwrap_err(), tensor, &["qop/conv3.weight"]);
    let bias = with_tensor("qop/fc.bias", |_, s, b| {
        b.truncate(4);
        *s = vec![1];
    });
    assert_names(bias.unwrap_err(), tensor, &["qop/fc.bias", "1 values"]);
    let missing = with_op("conv1", |op| op["epilogue"]["bias"] = false.into());
    // Without its bias the conv still builds; a bias claimed where none was saved does not.
    assert!(missing.is_ok());
    let claimed = with_op("add", |op| {
        *op = serde_json::json!({"node": "add", "qop": "linear",
            "epilogue": {"out": {"scale": 0.1, "zero_point": 0}, "relu": false, "bias": false}})
    });
    assert_names(claimed.unwrap_err(), tensor, &["qop/add.weight", "missing"]);
}

#[test]
fn bad_output_qparams_and_structure_are_refused_by_name() {
    for bad in [0.0, -1.0] {
        let err = with_op("conv2", |op| op["epilogue"]["out"]["scale"] = bad.into());
        assert_names(err.unwrap_err(), field, &["conv2", "scale"]);
    }
    let zp = with_op("add", |op| op["out"]["zero_point"] = 256.into());
    assert_names(zp.unwrap_err(), field, &["add", "zero_point"]);
    let dtype = with_op("quant", |op| op["dtype"] = "qint32".into());
    assert_names(dtype.unwrap_err(), field, &["quant", "dtype", "qint32"]);
    // A conv takes its geometry from its node: on another node it is refused.
    let conv = with_op("conv1", |_| {}).map(|_| ());
    assert!(conv.is_ok());
    let misplaced = with_op("add", |op| {
        *op = serde_json::json!({"node": "add", "qop": "conv",
            "epilogue": {"out": {"scale": 0.1, "zero_point": 0}, "relu": false, "bias": false}})
    });
    assert_names(misplaced.unwrap_err(), field, &["add", "qop", "conv on a"]);
    let renamed = with_op("fc", |op| op["node"] = "fc2".into());
    assert_names(renamed.unwrap_err(), field, &["ops", "fc2"]);
    let (json, weights) = saved();
    let mut fewer = json.clone();
    fewer["quantized"]["ops"].as_array_mut().unwrap().pop();
    assert_names(
        decode(&fewer, weights).unwrap_err(),
        field,
        &["ops", "nodes"],
    );
    let mut engine = json.clone();
    engine["quantized"]["engine"] = "tpu".into();
    assert_names(
        decode(&engine, weights).unwrap_err(),
        field,
        &["engine", "tpu"],
    );
}

#[test]
fn truncated_weights_are_a_typed_error() {
    let (json, weights) = saved();
    for cut in [0, 7, 100, weights.len() / 2, weights.len() - 1] {
        let err = decode(json, &weights[..cut]).unwrap_err();
        assert!(matches!(err, NativeError::Schema { .. }), "{cut}: {err:?}");
    }
}

/// A quantized section only exists from version 2 on: a version-1 file claiming one is refused.
#[test]
fn a_version_1_file_with_a_quantized_section_is_refused() {
    let (json, weights) = saved();
    let mut old = json.clone();
    old["version"] = 1.into();
    let err = decode(&old, weights).unwrap_err();
    assert_names(
        err,
        |e| matches!(e, NativeError::Schema { .. }),
        &["version-1"],
    );
}
