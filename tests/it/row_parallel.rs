//! A batch run as parallel parts of rows (`graph::rows`) gives the whole batch's outputs bit for
//! bit, for the float and the int8 digits CNN, on pools of one to three threads and batch sizes
//! that do not divide evenly; a dynamically quantized model (whole-batch activation ranges) and
//! an LSTM (batch on axis 1) are refused and named.

use ndarray::{Axis, Slice};
use qlab::engine::Numerics;
use qlab::graph::rows::{self, Forward};
use qlab::graph::{Graph, Value, run};
use qlab::import::npy::read_npy;
use qlab::import::onnx::load_onnx;
use qlab::qconfig::presets::get_default_qconfig;
use qlab::workflow::{
    QConfigMap, convert, dynamic_qconfig_map, fuse_auto, prepare, quantize_dynamic,
};

/// A bundled digits model.
fn model(file: &str) -> Graph {
    load_onnx(&crate::support::root().join("sample-models").join(file)).unwrap()
}

/// The bundled calibration images.
fn images() -> Value {
    read_npy(&crate::support::root().join("sample-models/data/digits_calib_x.npy")).unwrap()
}

fn rows_of(x: &Value, n: usize) -> Value {
    match x {
        Value::F32(a) => Value::F32(a.slice_axis(Axis(0), Slice::from(0..n)).to_owned()),
        Value::I64(a) => Value::I64(a.slice_axis(Axis(0), Slice::from(0..n)).to_owned()),
    }
}

/// `model`'s row-parallel outputs on `x`'s first rows equal one whole run's on every pool.
fn parts_equal_whole<M: Forward>(model: &M, x: &Value) -> usize
where
    M::Error: std::fmt::Debug,
{
    let mut checked = 0;
    for batch in [2, 5, 7] {
        let x = rows_of(x, batch);
        let (whole, verdict) = rows::row_parallel(model, vec![x.clone()]).unwrap();
        let parallel = verdict.unwrap_or_else(|e| panic!("not sample-wise: {e}"));
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let parts = pool.install(|| parallel.run(vec![x.clone()])).unwrap();
            assert_eq!(parts, whole, "batch {batch} on {threads} threads");
            checked += 1;
        }
    }
    checked
}

#[test]
fn float_and_int8_cnn_in_parts_equal_the_whole_batch() {
    let (graph, x) = (model("digits_cnn.onnx"), images());
    assert_eq!(parts_equal_whole(&graph, &x), 9);
    let (fused, _) = fuse_auto(&graph).unwrap();
    let map = QConfigMap::global(get_default_qconfig("fbgemm").unwrap());
    let mut prepared = prepare(&fused, &map).unwrap();
    prepared.calibrate_batch(vec![rows_of(&x, 64)]).unwrap();
    let int8 = convert(&prepared, Numerics::default()).unwrap();
    assert_eq!(parts_equal_whole(&int8, &x), 9);
    // The joined float outputs are the plain run's too.
    let whole = run(&graph, vec![rows_of(&x, 5)], |_, _| {}).unwrap();
    let (_, verdict) = rows::row_parallel(&graph, vec![rows_of(&x, 5)]).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    assert_eq!(
        pool.install(|| verdict.unwrap().run(vec![rows_of(&x, 5)]))
            .unwrap(),
        whole
    );
}

#[test]
fn whole_batch_models_are_refused_by_node() {
    let (mlp, x) = (model("digits_mlp.onnx"), images());
    let dynamic =
        quantize_dynamic(&mlp, &dynamic_qconfig_map(&mlp, false), Numerics::default()).unwrap();
    let (_, verdict) = rows::row_parallel(&dynamic, vec![rows_of(&x, 4)]).unwrap();
    let refused = verdict.err().expect("dynamic quantization is refused");
    assert!(refused.why.contains("dynamic quantization"), "{refused}");
    assert!(
        mlp.nodes.iter().any(|n| n.name == refused.node),
        "{refused}"
    );
    let lstm = model("digits_lstm.onnx");
    let (_, verdict) = rows::row_parallel(&lstm, vec![rows_of(&x, 4)]).unwrap();
    assert!(verdict.is_err());
}

/// A later batch of inputs that disagree on their rows runs whole: the model's own error, not
/// a panic while cutting rows.
#[test]
fn misaligned_inputs_run_whole() {
    let (graph, x) = (model("digits_cnn.onnx"), images());
    let (_, verdict) = rows::row_parallel(&graph, vec![rows_of(&x, 4)]).unwrap();
    let parallel = verdict.unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let two = vec![rows_of(&x, 4), rows_of(&x, 3)];
    assert!(pool.install(|| parallel.run(two)).is_err());
}
