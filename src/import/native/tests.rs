//! The native format's compatibility promise: a model saved by an earlier qlab keeps loading.
//! `tests/fixtures/native_v1/every_param.qlab` was written by the version-1 writer (commit
//! 63332a2, before ops serialised themselves) from [`every_param`], a small graph that carries
//! every kind of op tensor (conv, linear, batch-norm and layer-norm weights, a bidirectional
//! LSTM, a ConstantOfShape value, float and int constants) and the attributes whose JSON form
//! needs care (infinite Clip bounds, the Resize mode, Unary / Binary functions, the functional
//! Linear flag, a fusion).

use super::*;
use crate::graph::{
    BatchNormParams, Binary, ConvParams, LayerNormParams, LinearCall, LinearParams, LstmDirection,
    LstmParams, PoolParams, ReduceParams, Reduction, ResizeMode, Unary, run, test_node as node,
};
use ndarray::{Array1, Array2, Dimension};

/// Deterministic weights: multiples of 1/16, exact in f32 on every platform.
fn w(shape: &[usize], seed: usize) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |i| {
        let k = i.slice().iter().fold(seed, |k, &d| k * 7 + d);
        (k % 17) as f32 / 16.0 - 0.5
    })
}

fn vector(n: usize, seed: usize) -> Array1<f32> {
    w(&[n], seed).into_dimensionality().expect("rank 1")
}

fn matrix(r: usize, c: usize, seed: usize) -> Array2<f32> {
    w(&[r, c], seed).into_dimensionality().expect("rank 2")
}

/// `x [N, 2, 4, 4]` → conv, BN, ReLU, max-pool, resize, reduce, linear, layer norm, clips,
/// a functional linear, an LSTM over one step, and a ConstantOfShape beside it.
fn every_param() -> Graph {
    let direction = |seed| LstmDirection {
        w_ih: matrix(12, 4, seed),
        w_hh: matrix(12, 3, seed + 1),
        b_ih: vector(12, seed + 2),
        b_hh: vector(12, seed + 3),
    };
    let pool = PoolParams {
        kernel: vec![2, 2],
        stride: vec![2, 2],
        pad_begin: vec![0, 0],
        pad_end: vec![0, 0],
        dilation: vec![1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let nodes = vec![
        node(
            "conv1",
            Op::Conv(ConvParams {
                weight: w(&[3, 2, 3, 3], 1),
                bias: Some(vector(3, 2)),
                stride: vec![1, 1],
                pad_begin: vec![1, 1],
                pad_end: vec![1, 1],
                dilation: vec![1, 1],
                groups: 1,
            }),
            &["x"],
            &["c1"],
        ),
        node(
            "bn1",
            Op::BatchNorm(BatchNormParams {
                weight: vector(3, 3),
                bias: vector(3, 4),
                running_mean: vector(3, 5),
                running_var: vector(3, 6).mapv(|v| v + 1.0),
                eps: 1e-5,
                momentum: 0.1,
            }),
            &["c1"],
            &["b1"],
        ),
        node("relu1", Op::Relu, &["b1"], &["r1"]),
        node("pool", Op::MaxPool(pool), &["r1"], &["p1"]),
        node(
            "up",
            Op::Resize {
                mode: ResizeMode::Nearest,
                align_corners: false,
            },
            &["p1", "scales"],
            &["u1"],
        ),
        node(
            "mean",
            Op::Reduce(ReduceParams {
                kind: Reduction::Mean,
                axes: Some(vec![2, 3]),
                keepdims: false,
                noop_with_empty_axes: false,
            }),
            &["u1"],
            &["m1"],
        ),
        node(
            "hsig",
            Op::Unary(Unary::HardSigmoid {
                alpha: 0.25,
                beta: 0.5,
            }),
            &["m1"],
            &["h1"],
        ),
        node("max", Op::Binary(Binary::Max), &["h1", "m1"], &["x1"]),
        node(
            "fc1",
            Op::Linear(LinearParams::new(matrix(5, 3, 7), Some(vector(5, 8)))),
            &["x1"],
            &["l1"],
        ),
        node(
            "ln",
            Op::LayerNorm(LayerNormParams {
                weight: w(&[5], 9),
                bias: Some(w(&[5], 10)),
                axis: -1,
                eps: 1e-5,
            }),
            &["l1"],
            &["n1"],
        ),
        node(
            "clip_hi",
            Op::Clip {
                min: f32::NEG_INFINITY,
                max: 0.75,
            },
            &["n1"],
            &["k1"],
        ),
        node(
            "fc2",
            Op::Linear(LinearParams {
                call: LinearCall::Functional,
                ..LinearParams::new(matrix(4, 5, 11), None)
            }),
            &["k1"],
            &["l2"],
        ),
        node(
            "steps",
            Op::Unsqueeze {
                axes: Some(vec![0]),
            },
            &["l2"],
            &["s1"],
        ),
        node(
            "lstm",
            Op::Lstm(LstmParams {
                hidden_size: 3,
                directions: vec![direction(12), direction(16)],
            }),
            &["s1"],
            &["y"],
        ),
        node(
            "clip_lo",
            Op::Clip {
                min: -0.25,
                max: f32::INFINITY,
            },
            &["y"],
            &["k2"],
        ),
        node("scale", Op::Mul, &["k2", "gain"], &["out"]),
        node(
            "fill",
            Op::ConstantOfShape {
                value: Value::I64(ArrayD::from_elem(IxDyn(&[1]), 7)),
            },
            &["fill_shape"],
            &["filled"],
        ),
    ];
    let constants = BTreeMap::from([
        (
            "scales".to_string(),
            Value::F32(ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, 1.0, 2.0, 2.0]).unwrap()),
        ),
        (
            "gain".to_string(),
            Value::F32(ArrayD::from_elem(IxDyn(&[1]), 1.5)),
        ),
        (
            "fill_shape".to_string(),
            Value::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![2, 3]).unwrap()),
        ),
    ]);
    Graph {
        inputs: vec![GraphInput {
            name: "x".into(),
            shape: vec![None, Some(2), Some(4), Some(4)],
        }],
        outputs: vec!["out".into(), "filled".into()],
        nodes,
        constants,
        fusions: vec![Fusion {
            modules: vec!["conv1".into(), "bn1".into(), "relu1".into()],
            types: vec!["Conv2d".into(), "BatchNorm2d".into(), "ReLU".into()],
            qat: true,
        }],
    }
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/native_v1/every_param.qlab")
}

fn outputs(g: &Graph) -> Vec<Value> {
    let x = w(&[2, 2, 4, 4], 20);
    run(g, vec![Value::F32(x)], |_, _| {}).expect("the graph runs")
}

/// A version-1 model loads as the graph it was saved from and computes the same outputs.
#[test]
fn a_version_1_model_loads() {
    let text = std::fs::read_to_string(fixture().join("graph.json")).expect("fixture");
    assert!(text.contains("\"version\": 1"), "the fixture is version 1");
    let loaded = load_native(&fixture()).expect("a version-1 model loads");
    let want = every_param();
    assert_eq!(loaded, want);
    assert_eq!(outputs(&loaded), outputs(&want));
}

/// Today's writer still writes the version-1 shape: the fixture's `graph.json`, key for key,
/// and its tensors under the same names; and that round-trips.
#[test]
fn the_writer_writes_version_1() {
    let graph = every_param();
    let (text, weights) = encode_native(&graph, "every_param").expect("encodes");
    let json = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("JSON");
    let old = std::fs::read_to_string(fixture().join("graph.json")).expect("fixture");
    assert_eq!(json(&text), json(&old));
    let old_weights = std::fs::read(fixture().join("weights.safetensors")).expect("fixture");
    let names = |b: &[u8]| {
        let st = SafeTensors::deserialize(b).expect("safetensors");
        let mut n: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        n.sort();
        n
    };
    assert_eq!(names(&weights), names(&old_weights));
    let back =
        decode_native(&text, &weights, "graph.json", "weights.safetensors").expect("decodes");
    assert_eq!(back, graph);
}

/// The fixture's two files as `(graph.json as JSON, weights)`.
fn fixture_files() -> (serde_json::Value, Vec<u8>) {
    let text = std::fs::read_to_string(fixture().join("graph.json")).expect("fixture");
    let weights = std::fs::read(fixture().join("weights.safetensors")).expect("fixture");
    (serde_json::from_str(&text).expect("JSON"), weights)
}

/// The fixture with `edit` applied to its `graph.json`, decoded.
fn decode_edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Graph, NativeError> {
    let (mut json, weights) = fixture_files();
    edit(&mut json);
    decode_native(
        &json.to_string(),
        &weights,
        "graph.json",
        "weights.safetensors",
    )
}

fn node_mut<'a>(json: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    json["nodes"]
        .as_array_mut()
        .expect("nodes")
        .iter_mut()
        .find(|n| n["name"] == name)
        .expect("node")
}

/// A file of a newer version is refused for its version, naming both, even when it holds
/// ops this reader does not know.
#[test]
fn a_newer_version_is_refused_by_number() {
    let err = decode_edited(|j| {
        j["version"] = (VERSION + 1).into();
        node_mut(j, "relu1")["op"] = "relu_from_the_future".into();
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            NativeError::NewerVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let shown = err.to_string();
    for want in ["graph.json", "version 3", "version 2"] {
        assert!(shown.contains(want), "missing {want:?} in: {shown}");
    }
}

/// Hand-edited attributes that name tensors give typed errors, before any large allocation.
#[test]
fn tensor_attribute_edits_are_refused() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &[&str])> = vec![
        (
            Box::new(|j| node_mut(j, "lstm")["directions"] = (1u64 << 60).into()),
            &["graph.json", "1 or 2 directions"],
        ),
        (
            Box::new(|j| node_mut(j, "lstm")["directions"] = 0.into()),
            &["graph.json", "'lstm'", "direction"],
        ),
        (
            // A bias the file does not hold.
            Box::new(|j| node_mut(j, "fc2")["bias"] = true.into()),
            &["weights.safetensors", "'fc2.bias'", "missing"],
        ),
        (
            // Another node's tensors under this one's name: fc1's weight is a matrix.
            Box::new(|j| node_mut(j, "bn1")["name"] = "fc1".into()),
            &[
                "weights.safetensors",
                "'fc1.weight'",
                "rank 2, expected rank 1",
            ],
        ),
        (
            Box::new(|j| node_mut(j, "fill")["name"] = "fc2".into()),
            &["weights.safetensors", "'fc2.value'", "missing"],
        ),
        (
            Box::new(|j| {
                let c = j["constants"][0].clone();
                j["constants"].as_array_mut().expect("list").push(c);
            }),
            &["weights.safetensors", "claimed twice"],
        ),
        (
            Box::new(|j| node_mut(j, "clip_hi")["min"] = "lots".into()),
            &["graph.json", "'lots' is not a number"],
        ),
        (
            Box::new(|j| node_mut(j, "up")["mode"] = "cubic".into()),
            &["graph.json", "cubic"],
        ),
    ];
    for (edit, want) in cases {
        let shown = decode_edited(edit).unwrap_err().to_string();
        for w in want {
            assert!(shown.contains(w), "missing {w:?} in: {shown}");
        }
    }
}
