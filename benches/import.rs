//! Model import time: the 22 MB MobileNetV3 exports (legacy with embedded weights, and the
//! dynamo export with its external `.onnx.data`), including shape folding and the batch probes.
//! The target is ≤ 0.3 s each. Skips with a printed reason when the shared zoo is absent.

use criterion::{Criterion, criterion_group, criterion_main};
use qlab::import::onnx::load_onnx;
use std::path::Path;

fn import(c: &mut Criterion) {
    let zoo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/zoo");
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    for file in [
        "mobilenet_v3_large.onnx",
        "mobilenet_v3_large.dynamo.onnx",
        "shufflenet_v2_x0_5.onnx",
    ] {
        let model = zoo.join(file);
        if !model.exists() {
            println!("skipped import of {file}: {} not present", model.display());
            continue;
        }
        group.bench_function(file, |b| b.iter(|| load_onnx(&model).expect("imports")));
    }
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
