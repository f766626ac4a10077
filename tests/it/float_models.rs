//! The float engine reproduces PyTorch on the bundled digits models: the same number of correct
//! test images as PyTorch's recorded accuracy (CNN 0.99496, MLP 0.97481, LSTM 0.97985 of 397).

use qlab::graph::{Value, run};
use qlab::import::npy::read_npy;
use qlab::import::onnx::load_onnx;
use std::path::Path;

fn correct(model: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    let graph = load_onnx(&root.join(model)).expect("model imports");
    let x = read_npy(&root.join("data/digits_test_x.npy")).expect("test inputs");
    let Value::I64(labels) = read_npy(&root.join("data/digits_test_y.npy")).expect("labels") else {
        panic!("labels are integers")
    };
    let out = run(&graph, vec![x], |_, _| {}).expect("model runs");
    let logits = out[0].f32("logits").expect("float logits");
    assert_eq!(logits.shape(), &[labels.len(), 10]);
    logits
        .outer_iter()
        .zip(labels.iter())
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 as i64 == **label
        })
        .count()
}

#[test]
fn digits_cnn_matches_pytorch_accuracy() {
    assert_eq!(correct("digits_cnn.onnx"), 395); // 0.99496 × 397
}

#[test]
fn digits_mlp_matches_pytorch_accuracy() {
    assert_eq!(correct("digits_mlp.onnx"), 387); // 0.97481 × 397
}

#[test]
fn digits_lstm_matches_pytorch_accuracy() {
    assert_eq!(correct("digits_lstm.onnx"), 389); // 0.97985 × 397
}

/// Reads a golden f32 tensor object `{dtype, shape, data}`.
fn golden_tensor(v: &serde_json::Value) -> ndarray::ArrayD<f32> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), data).unwrap()
}

/// The workflow models of the golden set run in float and agree with PyTorch's float output.
#[test]
fn workflow_models_match_pytorch_float_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("workflows.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for case in cases["cases"].as_array().unwrap() {
        let Some(want) = case["expected"].get("float_output") else {
            continue;
        };
        let model = if case["name"].as_str().unwrap().contains("cnn") {
            "workflow_cnn.onnx"
        } else {
            "workflow_mlp_lstm.onnx"
        };
        let graph = load_onnx(&dir.join(model)).expect("imports");
        let x = golden_tensor(&case["inputs"]["x"]);
        let out = run(&graph, vec![Value::F32(x)], |_, _| {}).expect("runs");
        let got = out[0].f32("output").unwrap();
        let want = golden_tensor(want);
        assert_eq!(got.shape(), want.shape());
        let worst = got
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{}: relative error {worst}", case["name"]);
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} cases had a float_output");
}

/// MobileNetV2 (random weights, not bundled) imports and runs when the shared models are present.
#[test]
fn mobilenet_v2_imports_and_runs() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let model = shared.join("models/mobilenet_v2_224.onnx");
    let data = shared.join("data/noise_224_test.npy");
    if !model.exists() || !data.exists() {
        crate::support::skip(
            "mobilenet_v2_imports_and_runs",
            format_args!("{} or {} not present", model.display(), data.display()),
        );
        return;
    }
    let graph = load_onnx(&model).expect("mobilenet imports");
    assert!(
        graph.node("features.18.0").is_some(),
        "module paths recovered"
    );
    let x = read_npy(&data).expect("noise data");
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let a = pool(1)
        .install(|| run(&graph, vec![x.clone()], |_, _| {}))
        .expect("runs");
    let b = pool(2)
        .install(|| run(&graph, vec![x], |_, _| {}))
        .expect("runs again");
    let logits = a[0].f32("logits").unwrap();
    assert_eq!(logits.shape(), &[2, 1000]);
    assert!(logits.iter().all(|v| v.is_finite()));
    assert_eq!(a, b, "bit-identical across runs and thread counts");
    let top1: Vec<usize> = logits
        .outer_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m })
                .0
        })
        .collect();
    println!("mobilenet_v2 top-1 classes on noise_224_test: {top1:?}");
}

/// The native format round-trips every sample model losslessly, and a failed save leaves the
/// previous copy intact.
#[test]
fn native_format_round_trips() {
    use qlab::import::native::{load_native, save_native};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    let tmp = std::env::temp_dir().join(format!("qlab-native-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for model in ["digits_cnn.onnx", "digits_mlp.onnx", "digits_lstm.onnx"] {
        let graph = load_onnx(&root.join(model)).unwrap();
        let dir = tmp.join(model.replace(".onnx", ".qlab"));
        save_native(&graph, &dir).unwrap();
        save_native(&graph, &dir).unwrap(); // overwriting an existing model works too
        let back = load_native(&dir).unwrap();
        assert_eq!(back, graph, "{model} round trip");
    }
    let err = load_native(&tmp.join("missing.qlab")).unwrap_err();
    assert!(err.to_string().contains("graph.json"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// `save_native` replaces only a qlab model: a directory holding anything else, a foreign
/// `graph.json`, or a file at the path is refused by name and left as it was; `.` is refused.
#[test]
fn native_save_never_destroys_what_is_not_a_model() {
    use qlab::import::native::{load_native, save_native};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    let graph = load_onnx(&root.join("digits_mlp.onnx")).unwrap();
    let tmp = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/native-save-tests");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let refused = |path: &Path, why: &str| {
        let err = save_native(&graph, path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
    };

    let user_dir = tmp.join("photos");
    std::fs::create_dir(&user_dir).unwrap();
    std::fs::write(user_dir.join("cat.jpg"), "meow").unwrap();
    refused(&user_dir, "cat.jpg");
    assert_eq!(
        std::fs::read_to_string(user_dir.join("cat.jpg")).unwrap(),
        "meow"
    );

    let foreign = tmp.join("other.qlab");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("graph.json"), r#"{"format": "keras"}"#).unwrap();
    refused(&foreign, "qlab-graph");
    let kept = std::fs::read_to_string(foreign.join("graph.json")).unwrap();
    assert_eq!(kept, r#"{"format": "keras"}"#);

    let file = tmp.join("notes.qlab");
    std::fs::write(&file, "notes").unwrap();
    refused(&file, "is a file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "notes");

    refused(&tmp.join("."), "must end in a file or directory name");

    // A model of another qlab version is still qlab's own: replaced, and the result loads.
    let model = tmp.join("digits.qlab");
    save_native(&graph, &model).unwrap();
    let json = model.join("graph.json");
    let old = std::fs::read_to_string(&json).unwrap();
    std::fs::write(&json, old.replacen("\"version\": 1", "\"version\": 0", 1)).unwrap();
    assert!(
        load_native(&model).is_err(),
        "the edited version is not loadable"
    );
    save_native(&graph, &model).unwrap();
    assert_eq!(load_native(&model).unwrap(), graph);
    let mut names: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["digits.qlab", "notes.qlab", "other.qlab", "photos"]);
}

/// The real-client zoo: every export of every network reproduces PyTorch's float logits on the
/// zoo's test inputs to a relative 1e-4 (of the largest logit), at the zoo's batch of 2 for
/// exports whose batch the importer freed and sample by sample for those it pins.
mod zoo {
    use crate::support::{skip, zoo_file};
    use ndarray::{ArrayD, Axis};
    use qlab::graph::{Graph, Value, run};
    use qlab::import::npy::read_npy;
    use qlab::import::onnx::load_onnx;

    fn outputs(graph: &Graph, x: &Value) -> ArrayD<f32> {
        let pinned = graph.inputs[0].shape[0];
        let n = x.shape()[0];
        let run_rows = |v: Value| {
            let out = run(graph, vec![v], |_, _| {}).expect("model runs");
            out[0].f32("logits").expect("float logits").clone()
        };
        match (pinned, x) {
            (None, _) => run_rows(x.clone()),
            (Some(b), Value::F32(a)) => rows(n, b, |r| {
                run_rows(Value::F32(a.slice_axis(Axis(0), r.into()).to_owned()))
            }),
            (Some(b), Value::I64(a)) => rows(n, b, |r| {
                run_rows(Value::I64(a.slice_axis(Axis(0), r.into()).to_owned()))
            }),
        }
    }

    fn rows(n: usize, b: usize, f: impl Fn(std::ops::Range<usize>) -> ArrayD<f32>) -> ArrayD<f32> {
        let parts: Vec<ArrayD<f32>> = (0..n).step_by(b).map(|s| f(s..s + b)).collect();
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(0), &views).expect("same shapes")
    }

    /// Checks one export; `free` says whether its batch must come out free.
    fn check(net: &str, export: &str, data: &str, free: bool) {
        let (Some(model), Some(x), Some(want)) = (
            zoo_file(&format!("{net}{export}.onnx")),
            zoo_file(data),
            zoo_file(&format!("{net}_float.npy")),
        ) else {
            skip(
                format_args!("float zoo {net}{export}"),
                "the shared zoo (../shared/zoo) is not beside this checkout",
            );
            return;
        };
        let graph = load_onnx(&model).unwrap_or_else(|e| panic!("{net}{export}: {e}"));
        assert_eq!(
            graph.inputs[0].shape[0].is_none(),
            free,
            "{net}{export}: batch freedom"
        );
        let x = read_npy(&x).expect("inputs");
        let Value::F32(want) = read_npy(&want).expect("logits") else {
            panic!("float logits")
        };
        let got = outputs(&graph, &x);
        assert_eq!(got.shape(), want.shape(), "{net}{export}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(want.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * scale,
            "{net}{export}: max |diff| {worst} against max |logit| {scale}"
        );
    }

    #[test]
    fn text_exports_match_pytorch() {
        check("text", "", "text_test.npy", true);
        check("text", ".folded", "text_test.npy", false);
        check("text", ".dynamo", "text_test.npy", false);
    }

    #[test]
    fn shufflenet_exports_match_pytorch() {
        check("shufflenet_v2_x0_5", "", "test.npy", true);
        check("shufflenet_v2_x0_5", ".folded", "test.npy", true);
        check("shufflenet_v2_x0_5", ".dynamo", "test.npy", true);
    }

    #[test]
    fn mobilenet_v3_exports_match_pytorch() {
        check("mobilenet_v3_large", "", "test.npy", true);
        check("mobilenet_v3_large", ".dynamo", "test.npy", true);
    }
}

/// qlab's float convolution gives PyTorch's outputs bit for bit (PyTorch 2.15, oneDNN's AVX-512
/// kernels, recorded in `tests/fixtures/torch_conv/`): depthwise, pointwise with reduce blocks
/// of 80, 256 and 512 channels, and the direct kernel over several 16-channel blocks. This is
/// what lets calibration observe PyTorch's activations and derive its qparams.
#[test]
fn conv_sums_in_pytorchs_order() {
    use qlab::graph::ConvParams;
    use qlab::graph::ops::conv_forward;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_conv");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    // The recorded inputs: ((i·7919 + seed·104729) mod 2003) / 2003 · 2 - 1, scaled, in f32.
    let values = |n: usize, seed: u64, scale: f32| -> Vec<f32> {
        (0..n as u64)
            .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 2003.0 * 2.0 - 1.0)
            .map(|v| v * scale)
            .collect()
    };
    for case in meta["cases"].as_array().unwrap() {
        let u = |k: &str| case[k].as_u64().unwrap() as usize;
        let (n, ic, oc, hw, k, s, p, g) = (
            u("n"),
            u("ic"),
            u("oc"),
            u("hw"),
            u("kernel"),
            u("stride"),
            u("pad"),
            u("groups"),
        );
        let x = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[n, ic, hw, hw]),
            values(n * ic * hw * hw, 1, 1.0),
        )
        .unwrap();
        let params = ConvParams {
            weight: ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(&[oc, ic / g, k, k]),
                values(oc * ic / g * k * k, 2, 0.2),
            )
            .unwrap(),
            bias: Some(ndarray::Array1::from(values(oc, 3, 0.5))),
            stride: vec![s, s],
            pad_begin: vec![p, p],
            pad_end: vec![p, p],
            dilation: vec![1, 1],
            groups: g,
        };
        let name = case["name"].as_str().unwrap();
        let got = conv_forward(name, &x, &params).unwrap();
        let Value::F32(want) = read_npy(&dir.join(format!("{name}.npy"))).unwrap() else {
            panic!("{name}: float fixture")
        };
        assert_eq!(got.shape(), want.shape(), "{name}");
        let differ = got
            .iter()
            .zip(want.iter())
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "{name}: {differ} of {} outputs differ",
            got.len()
        );
    }
}
