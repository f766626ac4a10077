//! Quantization-aware training end to end on the bundled digits CNN: from the trained float
//! model, fuse for QAT, `prepare_qat` with the fbgemm QAT qconfig, one epoch of QAT, then
//! observers disabled and BN statistics frozen (PyTorch's usual schedule) for a second epoch,
//! `convert_qat`, and the int8 model's test accuracy.

use ndarray::ArrayD;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::graph::Value;
use qlab::graph::train::{Rng, Sgd};
use qlab::import::npy::read_npy;
use qlab::import::onnx::load_onnx;
use qlab::qconfig::presets::{get_default_qat_qconfig, get_default_qconfig};
use qlab::workflow::{
    Epoch, QConfigMap, QatError, convert_qat, fuse_auto, fuse_modules_qat, prepare_qat,
};
use std::path::Path;

fn load(name: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models/data");
    read_npy(&root.join(name)).expect("dataset file")
}

fn floats(v: Value) -> ArrayD<f32> {
    match v {
        Value::F32(a) => a,
        Value::I64(_) => panic!("float inputs expected"),
    }
}

fn labels(v: Value) -> Vec<i64> {
    match v {
        Value::I64(a) => a.iter().copied().collect(),
        Value::F32(_) => panic!("integer labels expected"),
    }
}

/// Measured 0.9924 (394 of 397; the float model gets 395): the threshold allows one more miss.
const MIN_INT8_ACCURACY: f32 = 0.989;

#[test]
fn qat_digits_cnn_int8_accuracy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    let float = load_onnx(&root.join("digits_cnn.onnx")).expect("model imports");
    let (_, groups) = fuse_auto(&float).expect("fusable");
    let groups: Vec<Vec<String>> = groups.into_iter().map(|g| g.modules).collect();
    let fused = fuse_modules_qat(&float, &groups).expect("QAT fusion");
    let qconfig = get_default_qat_qconfig("fbgemm", 1).expect("preset");
    let mut model = prepare_qat(&fused, &QConfigMap::global(qconfig)).expect("prepare_qat");

    let x = floats(load("digits_train_x.npy"));
    let y = labels(load("digits_train_y.npy"));
    let mut sgd = Sgd::new(0.01, 0.0, 0.0, false);
    let mut rng = Rng::new(7);
    let epoch = Epoch {
        x: &x,
        labels: &y,
        batch_size: 32,
    };
    let first = model
        .train_epoch(epoch, &mut rng, &mut sgd)
        .expect("epoch 1");
    model.set_observers_enabled(false);
    model.freeze_bn_stats();
    let second = model
        .train_epoch(epoch, &mut rng, &mut sgd)
        .expect("epoch 2");
    model.set_training(false);

    let q = convert_qat(&mut model, Numerics::new(Engine::Fbgemm, HostProfile::Vnni))
        .expect("convert_qat");
    let tx = floats(load("digits_test_x.npy"));
    let ty = labels(load("digits_test_y.npy"));
    let out = q.run(vec![Value::F32(tx)], |_, _| {}).expect("int8 run");
    let logits = out[0].f32("logits").expect("float logits");
    let correct = logits
        .outer_iter()
        .zip(&ty)
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| {
                        if v > b.1 { (i, v) } else { b }
                    },
                );
            best.0 as i64 == **label
        })
        .count();
    let acc = correct as f32 / ty.len() as f32;
    println!(
        "QAT losses {first:.4} {second:.4}; int8 test accuracy {acc:.4} ({correct}/{})",
        ty.len()
    );
    assert!(acc >= MIN_INT8_ACCURACY, "int8 accuracy {acc}");
}

#[test]
fn prepare_qat_refuses_a_ptq_qconfig() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    let float = load_onnx(&root.join("digits_cnn.onnx")).expect("model imports");
    let qconfig = get_default_qconfig("fbgemm").expect("preset");
    let err =
        prepare_qat(&float, &QConfigMap::global(qconfig)).expect_err("observers, not fake-quants");
    assert!(matches!(err, QatError::Unsupported { .. }), "{err}");
}
