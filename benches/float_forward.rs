//! Float forward latency of MobileNetV2 at batch 1 (for PyTorch's on this host, see the README's
//! "Comparing with PyTorch on your host"). Skips with a printed reason when the shared model is
//! not present.

use criterion::{Criterion, criterion_group, criterion_main};
use qlab::graph::{Value, run};
use qlab::import::onnx::load_onnx;
use std::path::Path;

fn mobilenet(c: &mut Criterion) {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/mobilenet_v2_224.onnx");
    if !model.exists() {
        println!(
            "skipped mobilenet_v2 float forward: {} not present",
            model.display()
        );
        return;
    }
    let graph = load_onnx(&model).expect("mobilenet imports");
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[1, 3, 224, 224]), |i| {
        ((i[1] * 7 + i[2] * 3 + i[3]) % 17) as f32 / 17.0 - 0.5
    });
    let mut group = c.benchmark_group("float_forward");
    group.sample_size(10);
    group.bench_function("mobilenet_v2_224_batch1", |b| {
        b.iter(|| run(&graph, vec![Value::F32(x.clone())], |_, _| {}).expect("runs"))
    });
    group.finish();
}

criterion_group!(benches, mobilenet);
criterion_main!(benches);
