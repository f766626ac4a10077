//! Cross-layer equalization against PyTorch: `tests/fixtures/equalize/equalize.json` was
//! recorded from `torch.ao.quantization._equalize.equalize` (`tools/golden_equalize.py`), and
//! qlab must leave the same weights and biases, bit for bit, after the same number of sweeps.
//! The pair search finds exactly the chains PyTorch was given, and the float function of the
//! model is unchanged.

use ndarray::{Array1, ArrayD, IxDyn};
use qlab::graph::{ConvParams, Graph, GraphInput, LinearParams, Node, Op, Value, run};
use qlab::workflow::{Pair, equalize, find_pairs};
use serde_json::Value as Json;

fn floats(v: &Json) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        // Each is the exact decimal of a float32: the cast back is exact.
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn shape(m: &Json) -> Vec<usize> {
    m["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn module(m: &Json) -> Op {
    let weight = ArrayD::from_shape_vec(IxDyn(&shape(m)), floats(&m["weight"])).unwrap();
    let bias = (!m["bias"].is_null()).then(|| Array1::from(floats(&m["bias"])));
    match m["kind"].as_str().unwrap() {
        "linear" => Op::Linear(LinearParams::new(
            weight.into_dimensionality().unwrap(),
            bias,
        )),
        _ => {
            let dims = weight.ndim() - 2;
            Op::Conv(ConvParams {
                weight,
                bias,
                stride: vec![1; dims],
                pad_begin: vec![0; dims],
                pad_end: vec![0; dims],
                dilation: vec![1; dims],
                groups: m["groups"].as_u64().unwrap() as usize,
            })
        }
    }
}

/// `m0 → relu0 → m1 → relu1 → …`, as the recorded `nn.Sequential`.
fn chain(modules: &serde_json::Map<String, Json>) -> Graph {
    let mut nodes = Vec::new();
    let mut value = "x".to_string();
    for (i, (name, m)) in modules.iter().enumerate() {
        let out = format!("{name}_out");
        nodes.push(Node {
            name: name.clone(),
            op: module(m),
            inputs: vec![value.clone()],
            outputs: vec![out.clone()],
        });
        value = out;
        if i + 1 < modules.len() {
            let out = format!("relu{i}_out");
            nodes.push(Node {
                name: format!("relu{i}"),
                op: Op::Relu,
                inputs: vec![value.clone()],
                outputs: vec![out.clone()],
            });
            value = out;
        }
    }
    // Any batch; the rank of the first module's input.
    let rank = match &nodes[0].op {
        Op::Conv(c) => c.weight.ndim(),
        _ => 2,
    };
    Graph {
        inputs: vec![GraphInput {
            name: "x".into(),
            shape: vec![None; rank],
        }],
        outputs: vec![value],
        nodes,
        constants: Default::default(),
        fusions: Vec::new(),
    }
}

fn weights(op: &Op) -> (Vec<f32>, Option<Vec<f32>>) {
    match op {
        Op::Conv(c) => (
            c.weight.iter().copied().collect(),
            c.bias.as_ref().map(|b| b.to_vec()),
        ),
        Op::Linear(l) => (
            l.weight.iter().copied().collect(),
            l.bias.as_ref().map(|b| b.to_vec()),
        ),
        _ => unreachable!(),
    }
}

fn cases() -> Vec<Json> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/equalize/equalize.json"
    );
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn pairs(case: &Json) -> Vec<Pair> {
    case["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            let names: Vec<String> = g
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            names
                .windows(2)
                .map(|w| Pair {
                    first: w[0].clone(),
                    second: w[1].clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn equalize_matches_pytorch_bit_for_bit() {
    let cases = cases();
    assert!(cases.len() >= 5);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut graph = chain(case["modules"].as_object().unwrap());
        let done = equalize(
            &mut graph,
            &pairs(case),
            case["threshold"].as_f64().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            done.sweeps as u64,
            case["expected"]["sweeps"].as_u64().unwrap(),
            "{name}: sweeps"
        );
        for (module, want) in case["expected"]["modules"].as_object().unwrap() {
            let node = graph.node(module).unwrap();
            let (w, b) = weights(&node.op);
            let want_w = floats(&want["weight"]);
            let diff = w
                .iter()
                .zip(&want_w)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                diff,
                0,
                "{name}/{module}: {diff} of {} weights differ",
                w.len()
            );
            match (b, want["bias"].is_null()) {
                (None, true) => {}
                (Some(b), false) => {
                    let want_b = floats(&want["bias"]);
                    assert!(
                        b.iter()
                            .zip(&want_b)
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{name}/{module}: bias {b:?} vs {want_b:?}"
                    );
                }
                other => panic!("{name}/{module}: bias presence differs {other:?}"),
            }
        }
        // The channels met: each pair's spread shrank.
        for (pair, before, after) in &done.spread {
            assert!(after < before, "{name} {pair:?}: spread {before} → {after}");
        }
    }
}

#[test]
fn the_pair_search_finds_the_recorded_chains() {
    for case in cases() {
        let graph = chain(case["modules"].as_object().unwrap());
        let (found, skipped) = find_pairs(&graph);
        // Every recorded chain is equalizable, and nothing else is in these models.
        assert_eq!(found, pairs(&case), "{}", case["name"]);
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}

/// ReLU commutes with a positive per-channel scale: the model computes the same function.
#[test]
fn equalization_keeps_the_float_function() {
    let case = cases()
        .into_iter()
        .find(|c| c["name"] == "conv_relu_conv")
        .unwrap();
    let mut graph = chain(case["modules"].as_object().unwrap());
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 9, 9]), |i| {
        ((i[0] * 7 + i[1] * 5 + i[2] * 3 + i[3]) % 11) as f32 / 5.0 - 1.0
    });
    let before = run(&graph, vec![Value::F32(x.clone())], |_, _| {}).unwrap();
    let (pairs, _) = find_pairs(&graph);
    equalize(&mut graph, &pairs, 1e-4).unwrap();
    let after = run(&graph, vec![Value::F32(x)], |_, _| {}).unwrap();
    let (a, b) = (before[0].f32("y").unwrap(), after[0].f32("y").unwrap());
    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(worst <= 1e-5 * scale, "max difference {worst} of {scale}");
}

/// What PyTorch would not refuse but cannot be right, and what it would refuse, are typed
/// errors naming the module.
#[test]
fn bad_pairs_are_typed_errors() {
    let case = cases()
        .into_iter()
        .find(|c| c["name"] == "depthwise_then_pointwise")
        .unwrap();
    let graph = chain(case["modules"].as_object().unwrap());
    let pair = |a: &str, b: &str| Pair {
        first: a.into(),
        second: b.into(),
    };
    for (p, want) in [
        (pair("m1", "m0"), "grouped"),
        (pair("m0", "m0"), "itself"),
        (pair("m0", "nope"), "no such module"),
        (pair("relu0", "m1"), "only Conv1d/Conv2d and Linear"),
    ] {
        let mut g = graph.clone();
        let e = equalize(&mut g, std::slice::from_ref(&p), 1e-4)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{p:?}: {e}");
        assert_eq!(g, graph, "a refused pair changes nothing");
    }
    let mut nan = graph.clone();
    if let Op::Conv(c) = &mut nan.nodes[0].op {
        c.weight[[0, 0, 0, 0]] = f32::NAN;
    }
    let e = equalize(&mut nan, &[pair("m0", "m1")], 1e-4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
}

/// The `equalize` verb: refused while BatchNorm is unfolded, then equalizes the digits CNN's
/// one ReLU-joined pair without changing the float accuracy, and the script line prints back.
#[test]
fn the_equalize_verb_on_the_digits_cnn() {
    use qlab::session::{Output, Workbench, parse_line};
    let root = crate::support::root();
    let mut wb = Workbench::new();
    wb.set_base_dir(root);
    let mut apply = |line: &str| {
        let cmd = parse_line(line).unwrap().unwrap();
        assert_eq!(
            parse_line(&cmd.to_string()).unwrap(),
            Some(cmd.clone()),
            "{line}"
        );
        wb.apply(&cmd).map(|o| match o {
            Output::Text(t) => t,
            other => other.to_string(),
        })
    };
    apply("load model sample-models/digits_cnn.onnx").unwrap();
    apply("load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy")
        .unwrap();
    let e = apply("equalize").unwrap_err().to_string();
    assert!(e.contains("'bn1': BatchNorm is not folded"), "{e}");
    apply("fuse auto").unwrap();
    let before = apply("eval test").unwrap();
    let out = apply("equalize threshold=0.001").unwrap();
    assert!(
        out.starts_with("equalized 1 pair(s) in 2 sweep(s)") && out.contains("conv1 → conv2"),
        "{out}"
    );
    assert_eq!(
        apply("eval test").unwrap(),
        before,
        "the float function is unchanged"
    );
    let e = apply("equalize conv2,conv1").unwrap_err().to_string();
    assert!(e.contains("conv2"), "{e}");
    assert!(parse_line("equalize conv1").is_err());
    assert!(parse_line("equalize threshold=-1").is_err());
}

/// A Linear feeding a conv (or the reverse) is never paired, even with matching counts: their
/// channels lie on different axes.
#[test]
fn mixed_conv_and_linear_pairs_are_refused() {
    use qlab::graph::{ConvParams, LinearParams};
    let linear = Op::Linear(LinearParams::new(ndarray::Array2::ones((4, 3)), None));
    let conv = Op::Conv(ConvParams {
        weight: ArrayD::ones(IxDyn(&[2, 4, 1, 1])),
        bias: None,
        stride: vec![1, 1],
        pad_begin: vec![0, 0],
        pad_end: vec![0, 0],
        dilation: vec![1, 1],
        groups: 1,
    });
    let node = |name: &str, op: Op, input: &str| Node {
        name: name.into(),
        op,
        inputs: vec![input.into()],
        outputs: vec![format!("{name}_out")],
    };
    let mut graph = Graph {
        inputs: vec![GraphInput {
            name: "x".into(),
            shape: vec![None, None],
        }],
        outputs: vec!["b_out".into()],
        nodes: vec![node("a", linear, "x"), node("b", conv, "a_out")],
        constants: Default::default(),
        fusions: Vec::new(),
    };
    let (found, skipped) = find_pairs(&graph);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let pair = Pair {
        first: "a".into(),
        second: "b".into(),
    };
    let e = equalize(&mut graph, &[pair], 1e-4).unwrap_err().to_string();
    assert!(e.contains("a Conv pairs with a Conv"), "{e}");
}
