//! PyTorch parity of static quantization on the shared zoo (`../shared/zoo`, skipped with a
//! note when absent): each network run through qlab's eager workflow exactly as the zoo's
//! `gen.py` runs PyTorch's — `fuse_model()`, the engine's default qconfig, calibration on
//! `calib.npy` in batches of 4, `convert`, `test.npy` — via the session language a user types.
//!
//! Two claims, measured separately because they have different causes:
//! - **The int8 model is PyTorch's.** Built with PyTorch's own output qparams
//!   (`convert qparams=NAME_ENGINE_qparams.json`), the logits equal `NAME_ENGINE.npy` bit for
//!   bit and every module's integers equal the `_layers.npz` dump: everything after the input
//!   QuantStub is integer arithmetic.
//! - **Calibration is PyTorch's.** qlab's float convolutions and means sum in PyTorch's order,
//!   so the observers see PyTorch's activations and derive its qparams. Linear layers run MKL's
//!   SGEMM in PyTorch, whose order depends on the host (PyTorch's own results differ between an
//!   Intel and an AMD host there), so a classifier Linear's qparams can differ in the last bit:
//!   the zoo networks' logits stay within 120 dB of PyTorch's and their output SQNR within
//!   0.01 dB, and the bundled parity network (no Linear) is PyTorch's bit for bit.

use crate::support::shared_zoo;
use qlab::graph::Value;
use qlab::import::npy::read_npy;
use qlab::session::{Output, Workbench, parse_line};
use std::path::Path;

fn run(wb: &mut Workbench, line: &str) -> Output {
    let cmd = parse_line(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .expect("a command");
    wb.apply(&cmd).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn floats(path: &Path) -> Vec<f32> {
    match read_npy(path).unwrap_or_else(|e| panic!("{e}")) {
        Value::F32(a) => a.iter().copied().collect(),
        Value::I64(_) => panic!("{} holds integers", path.display()),
    }
}

/// 20·log10(‖reference‖ / ‖reference − x‖), infinite when equal.
fn sqnr(reference: &[f32], x: &[f32]) -> f64 {
    assert_eq!(reference.len(), x.len());
    let (mut s, mut n) = (0.0f64, 0.0f64);
    for (a, b) in reference.iter().zip(x) {
        s += (*a as f64).powi(2);
        n += (*a as f64 - *b as f64).powi(2);
    }
    10.0 * (s / n).log10()
}

/// Fails unless `ours` holds PyTorch's logits bit for bit (saying how far they are if not).
fn assert_identical(torch: &[f32], ours: &[f32], what: &str) {
    let same = ours
        .iter()
        .zip(torch)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(
        same,
        "{what}: SQNR vs PyTorch's int8 logits {:.2} dB, not identical",
        sqnr(torch, ours)
    );
}

/// A session on `model` with the zoo's data loaded and `engine` chosen.
fn session(zoo: &Path, model: &str, engine: &str) -> Workbench {
    let mut wb = Workbench::new();
    let z = zoo.display();
    run(&mut wb, &format!("load model {z}/{model}"));
    run(&mut wb, &format!("load data calib {z}/calib.npy"));
    run(&mut wb, &format!("load data test {z}/test.npy"));
    run(&mut wb, &format!("engine {engine}"));
    wb
}

fn predict(wb: &mut Workbench, tag: &str) -> Vec<f32> {
    let out = std::env::temp_dir().join(format!("qlab-zoo-{}-{tag}.npy", std::process::id()));
    run(
        wb,
        &format!("predict test out={} model=quantized", out.display()),
    );
    let v = floats(&out);
    std::fs::remove_file(&out).ok();
    v
}

const NETS: [&str; 2] = ["shufflenet_v2_x0_5", "mobilenet_v3_large"];
const ENGINES: [&str; 2] = ["fbgemm", "qnnpack"];

#[test]
fn with_pytorchs_qparams_the_int8_model_is_pytorchs_bit_for_bit() {
    let Some(zoo) = shared_zoo("zoo_static with PyTorch's qparams") else {
        return;
    };
    for net in NETS {
        for engine in ENGINES {
            let mut wb = session(&zoo, &format!("{net}.onnx"), engine);
            run(&mut wb, "fuse auto");
            run(&mut wb, "prepare");
            run(&mut wb, "calibrate calib batch=4");
            let qp = zoo.join(format!("{net}_{engine}_qparams.json"));
            run(&mut wb, &format!("convert qparams={}", qp.display()));
            let ours = predict(&mut wb, &format!("{net}-{engine}-ref"));
            let torch = floats(&zoo.join(format!("{net}_{engine}.npy")));
            assert_identical(&torch, &ours, &format!("{net} {engine}"));
            // Every module PyTorch dumped matches qlab's integers and qparams.
            let layers = zoo.join(format!("{net}_{engine}_layers.npz"));
            let Output::Table { title, table } = run(
                &mut wb,
                &format!("compare reference {} test", layers.display()),
            ) else {
                panic!("compare reference prints a table")
            };
            assert!(
                title.contains("first divergence: none"),
                "{net} {engine}: {title}"
            );
            // Only modules PyTorch keeps as Identity after fusion (folded BN, fused ReLU) have
            // no node of their own.
            for row in &table.rows {
                assert_eq!(row[1], "-", "{net} {engine}: {row:?}");
            }
            println!("{net} {engine}: identical to PyTorch with its qparams");
        }
    }
}

/// Floors under the measured SQNR of qlab's int8 logits against PyTorch's with qlab's own
/// calibration: BN-kept and dynamo exports are within 135–139 dB, except MobileNetV3
/// dynamo on qnnpack (40.1 dB) and the legacy folded ShuffleNet (37.9 / 50.4 dB), whose weights
/// were folded by the exporter in another float order than `fuse_model()`.
const EXPORT_FLOOR_DB: f64 = 30.0;
/// A BN-kept export whose classifier runs through a host-dependent SGEMM (module docs).
const BN_KEPT_FLOOR_DB: f64 = 120.0;
/// The output SQNR (int8 vs float) printed by `errors` equals the manifest's to this.
const OUTPUT_SQNR_SLACK_DB: f64 = 0.01;

#[test]
fn own_calibration_gives_pytorchs_int8_model() {
    let Some(zoo) = shared_zoo("zoo_static own calibration") else {
        return;
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(zoo.join("manifest.json")).unwrap()).unwrap();
    for net in NETS {
        let float = floats(&zoo.join(format!("{net}_float.npy")));
        for engine in ENGINES {
            let torch = floats(&zoo.join(format!("{net}_{engine}.npy")));
            let torch_sqnr = manifest[net][format!("{engine}_output_sqnr_db")]
                .as_f64()
                .expect("manifest SQNR");
            // Every export of the network: BN kept, folded by the legacy exporter, dynamo.
            for export in ["onnx", "folded.onnx", "dynamo.onnx"] {
                let file = format!("{net}.{export}");
                if !zoo.join(&file).is_file() {
                    continue;
                }
                let mut wb = session(&zoo, &file, engine);
                run(&mut wb, "quantize calib batch=4");
                let ours = predict(&mut wb, &format!("{net}-{engine}-{export}"));
                let vs_torch = sqnr(&torch, &ours);
                let out = sqnr(&float, &ours);
                println!(
                    "{file} {engine}: vs PyTorch int8 {vs_torch:.2} dB; output SQNR {out:.3} (PyTorch {torch_sqnr:.3})"
                );
                assert!(vs_torch >= EXPORT_FLOOR_DB, "{file} {engine}");
                if export != "onnx" {
                    continue;
                }
                assert!(
                    (out - torch_sqnr).abs() <= OUTPUT_SQNR_SLACK_DB,
                    "{file} {engine}: {out:.3} vs {torch_sqnr:.3}"
                );
                assert!(vs_torch >= BN_KEPT_FLOOR_DB, "{file} {engine}");
            }
        }
    }
}

/// The bundled parity network (`tests/fixtures/parity/`, made by `tools/parity-gen/gen.py` with
/// PyTorch 2.15): the pieces of torchvision's quantizable models in one small graph — fused
/// Conv+BN(+ReLU), `add_relu`, squeeze-excitation (mean, Hardsigmoid, `mul`), Hardswish,
/// depthwise and strided 1×1 convs, `cat` with channel shuffle, a spatial mean. With qlab's own
/// calibration its int8 logits are PyTorch's bit for bit on both engines; this runs from a
/// fresh clone.
#[test]
fn bundled_parity_network_is_pytorchs_int8_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let float = floats(&dir.join("float.npy"));
    for engine in ENGINES {
        let mut wb = session(&dir, "net.onnx", engine);
        run(&mut wb, "quantize calib batch=4");
        let ours = predict(&mut wb, &format!("parity-{engine}"));
        let torch = floats(&dir.join(format!("{engine}.npy")));
        assert_identical(&torch, &ours, engine);
        let want = manifest[format!("{engine}_output_sqnr_db")]
            .as_f64()
            .unwrap();
        assert!((sqnr(&float, &ours) - want).abs() < 1e-3, "{engine}");
    }
}
