//! Training: central-difference gradient checks of every op with a backward and of the
//! cross-entropy loss, BatchNorm running statistics, SGD / Adam steps, the QAT hook's
//! straight-through gradient, and an MLP trained from scratch on the digits data.

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use qlab::graph::train::{
    Adam, FitConfig, Masked, Mode, NoHooks, Optimizer, Rng, Sgd, TrainHooks, accuracy, backward,
    cross_entropy, fit, forward_train, parameters, parameters_mut, reset_parameters,
};
use qlab::graph::{
    BatchNormParams, ConvParams, Graph, GraphError, GraphInput, LinearParams, LstmDirection,
    LstmParams, Node, Op, PoolParams, Value,
};
use qlab::import::npy::read_npy;
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Helpers

fn arr(shape: &[usize], data: Vec<f32>) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

/// Uniform values in [-1, 1).
fn rand(rng: &mut Rng, shape: &[usize]) -> ArrayD<f32> {
    let n = shape.iter().product();
    arr(shape, (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect())
}

/// Values with |v| in [0.2, 1): away from the kinks at 0.
fn rand_away_from_zero(rng: &mut Rng, shape: &[usize]) -> ArrayD<f32> {
    rand(rng, shape).mapv(|v| v.signum() * (0.2 + 0.8 * v.abs()))
}

/// Distinct values spaced 0.1 apart in random order: no ties within 2·eps in max pooling.
fn distinct(rng: &mut Rng, shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - n as f32 * 0.05).collect();
    rng.shuffle(&mut v);
    arr(shape, v)
}

/// A graph of one node `n` reading float inputs `x0..` then constants `c0..`, writing `y`.
fn one_node(op: Op, inputs: &[ArrayD<f32>], consts: Vec<Value>) -> Graph {
    let mut g = Graph::default();
    let mut names = Vec::new();
    for (i, x) in inputs.iter().enumerate() {
        let name = format!("x{i}");
        g.inputs.push(GraphInput {
            name: name.clone(),
            shape: x.shape().iter().map(|&d| Some(d)).collect(),
        });
        names.push(name);
    }
    for (i, c) in consts.into_iter().enumerate() {
        let name = format!("c{i}");
        g.constants.insert(name.clone(), c);
        names.push(name);
    }
    g.nodes.push(Node {
        name: "n".into(),
        op,
        inputs: names,
        outputs: vec!["y".into()],
    });
    g.outputs = vec!["y".into()];
    g
}

/// `L = Σ y·r` of a training forward.
fn weighted_loss(graph: &Graph, inputs: &[ArrayD<f32>], r: &ArrayD<f32>, mode: Mode) -> f32 {
    let mut g = graph.clone();
    let vals = inputs.iter().cloned().map(Value::F32).collect();
    let (out, _) = forward_train(&mut g, vals, mode, &mut NoHooks).unwrap();
    (out[0].f32("y").unwrap() * r).sum()
}

fn assert_close(what: &str, numeric: f32, analytic: f32) {
    let tol = 5e-3 + 1e-2 * numeric.abs().max(analytic.abs());
    assert!(
        (numeric - analytic).abs() <= tol,
        "{what}: numeric {numeric} vs analytic {analytic}"
    );
}

/// Central differences (eps 1e-2) of `L = Σ y·r` against the backward, for every element of
/// every float input and every parameter.
fn grad_check(what: &str, graph: &Graph, inputs: &[ArrayD<f32>], mode: Mode) {
    const EPS: f32 = 1e-2;
    let mut rng = Rng::new(99);
    let mut g = graph.clone();
    let vals = inputs.iter().cloned().map(Value::F32).collect();
    let (out, tape) = forward_train(&mut g, vals, mode, &mut NoHooks).unwrap();
    let r = rand(&mut rng, out[0].shape());
    let grads = backward(graph, &tape, vec![r.clone()]).unwrap();
    for (i, x) in inputs.iter().enumerate() {
        let name = format!("x{i}");
        let analytic = &grads.values[&name];
        assert_eq!(analytic.shape(), x.shape(), "{what}: {name} gradient shape");
        for k in 0..x.len() {
            let mut shifted = inputs.to_vec();
            let mut at = |delta: f32| {
                shifted[i].as_slice_mut().unwrap()[k] = x.as_slice().unwrap()[k] + delta;
                weighted_loss(graph, &shifted, &r, mode)
            };
            let numeric = (at(EPS) - at(-EPS)) / (2.0 * EPS);
            assert_close(
                &format!("{what} d{name}[{k}]"),
                numeric,
                analytic.as_slice().unwrap()[k],
            );
        }
    }
    let names: Vec<String> = parameters(graph).into_iter().map(|(n, _)| n).collect();
    for pname in names {
        let analytic = &grads.params[&pname];
        for k in 0..analytic.len() {
            let at = |delta: f32| {
                let mut g = graph.clone();
                for (n, mut p) in parameters_mut(&mut g) {
                    if n == pname {
                        let v = p.iter_mut().nth(k).unwrap();
                        *v += delta;
                    }
                }
                weighted_loss(&g, inputs, &r, mode)
            };
            let numeric = (at(EPS) - at(-EPS)) / (2.0 * EPS);
            assert_close(
                &format!("{what} d{pname}[{k}]"),
                numeric,
                analytic.iter().nth(k).copied().unwrap(),
            );
        }
    }
}

fn check_op(what: &str, op: Op, inputs: Vec<ArrayD<f32>>, consts: Vec<Value>) {
    grad_check(what, &one_node(op, &inputs, consts), &inputs, Mode::Train);
}

fn i64s(shape: &[usize], v: Vec<i64>) -> Value {
    Value::I64(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Gradient checks

fn conv(rng: &mut Rng, w: &[usize], bias: bool, geometry: [Vec<usize>; 4], groups: usize) -> Op {
    let [stride, pad_begin, pad_end, dilation] = geometry;
    Op::Conv(ConvParams {
        weight: rand(rng, w),
        bias: bias.then(|| Array1::from_iter((0..w[0]).map(|i| 0.1 * i as f32))),
        stride,
        pad_begin,
        pad_end,
        dilation,
        groups,
    })
}

#[test]
fn conv_gradients() {
    let mut rng = Rng::new(1);
    let op = conv(
        &mut rng,
        &[6, 2, 3, 2],
        true,
        [vec![2, 1], vec![1, 0], vec![0, 1], vec![1, 2]],
        2,
    );
    check_op(
        "conv2d groups/stride/asym pad/dilation",
        op,
        vec![rand(&mut rng, &[2, 4, 5, 6])],
        vec![],
    );
    let op = conv(
        &mut rng,
        &[4, 3, 3],
        true,
        [vec![2], vec![1], vec![1], vec![1]],
        1,
    );
    check_op("conv1d", op, vec![rand(&mut rng, &[2, 3, 7])], vec![]);
    let op = conv(
        &mut rng,
        &[2, 2, 2, 3, 2],
        true,
        [vec![1, 2, 1], vec![1, 0, 1], vec![0, 1, 0], vec![1, 1, 1]],
        1,
    );
    check_op("conv3d", op, vec![rand(&mut rng, &[1, 2, 4, 4, 3])], vec![]);
    let op = conv(
        &mut rng,
        &[3, 1, 3, 3],
        false,
        [vec![1, 1], vec![1, 1], vec![1, 1], vec![1, 1]],
        3,
    );
    check_op(
        "depthwise conv2d",
        op,
        vec![rand(&mut rng, &[1, 3, 5, 5])],
        vec![],
    );
    let op = conv(
        &mut rng,
        &[4, 3, 1, 1],
        true,
        [vec![1, 1], vec![0, 0], vec![0, 0], vec![1, 1]],
        1,
    );
    check_op(
        "pointwise conv2d",
        op,
        vec![rand(&mut rng, &[2, 3, 3, 2])],
        vec![],
    );
}

#[test]
fn linear_and_matmul_gradients() {
    let mut rng = Rng::new(2);
    let op = Op::Linear(LinearParams::new(
        rand(&mut rng, &[4, 5]).into_dimensionality().unwrap(),
        Some(Array1::from_vec(vec![0.1, -0.2, 0.3, 0.0])),
    ));
    check_op(
        "linear 3-d input",
        op,
        vec![rand(&mut rng, &[2, 3, 5])],
        vec![],
    );
    let op = Op::Linear(LinearParams::new(
        rand(&mut rng, &[3, 4]).into_dimensionality().unwrap(),
        None,
    ));
    check_op("linear no bias", op, vec![rand(&mut rng, &[2, 4])], vec![]);
    let (a, b) = (rand(&mut rng, &[2, 1, 3, 4]), rand(&mut rng, &[3, 4, 2]));
    check_op("matmul broadcast", Op::MatMul, vec![a, b], vec![]);
    let (a, b) = (rand(&mut rng, &[4]), rand(&mut rng, &[2, 4, 3]));
    check_op("matmul 1-d lhs", Op::MatMul, vec![a, b], vec![]);
    let (a, b) = (rand(&mut rng, &[3, 4]), rand(&mut rng, &[4]));
    check_op("matmul 1-d rhs", Op::MatMul, vec![a, b], vec![]);
}

fn bn(rng: &mut Rng, c: usize) -> Op {
    Op::BatchNorm(BatchNormParams {
        weight: Array1::from_iter((0..c).map(|_| 0.5 + rng.next_f32())),
        bias: Array1::from_iter((0..c).map(|_| rng.next_f32() - 0.5)),
        running_mean: Array1::from_iter((0..c).map(|_| rng.next_f32() * 0.2)),
        running_var: Array1::from_iter((0..c).map(|_| 0.5 + rng.next_f32())),
        eps: 1e-5,
        momentum: 0.1,
    })
}

#[test]
fn batch_norm_gradients() {
    let mut rng = Rng::new(3);
    let x = rand(&mut rng, &[4, 3, 2, 2]);
    let graph = one_node(bn(&mut rng, 3), std::slice::from_ref(&x), vec![]);
    grad_check(
        "batchnorm train",
        &graph,
        std::slice::from_ref(&x),
        Mode::Train,
    );
    grad_check(
        "batchnorm eval",
        &graph,
        std::slice::from_ref(&x),
        Mode::Eval,
    );
    let x = rand(&mut rng, &[5, 2]);
    let graph = one_node(bn(&mut rng, 2), std::slice::from_ref(&x), vec![]);
    grad_check("batchnorm1d train", &graph, &[x], Mode::Train);
}

#[test]
fn activation_gradients() {
    let mut rng = Rng::new(4);
    check_op(
        "relu",
        Op::Relu,
        vec![rand_away_from_zero(&mut rng, &[3, 5])],
        vec![],
    );
    // Clip to [-0.5, 0.5]: values 0.1 inside or well outside the bounds.
    let x = arr(&[6], vec![-0.9, -0.4, -0.1, 0.2, 0.4, 0.8]);
    check_op(
        "clip",
        Op::Clip {
            min: -0.5,
            max: 0.5,
        },
        vec![x],
        vec![],
    );
    check_op(
        "sigmoid",
        Op::Sigmoid,
        vec![rand(&mut rng, &[2, 4])],
        vec![],
    );
    check_op("tanh", Op::Tanh, vec![rand(&mut rng, &[2, 4])], vec![]);
    check_op(
        "softmax axis 1",
        Op::Softmax { axis: 1 },
        vec![rand(&mut rng, &[3, 4])],
        vec![],
    );
    check_op(
        "softmax axis -1",
        Op::Softmax { axis: -1 },
        vec![rand(&mut rng, &[2, 3, 4])],
        vec![],
    );
    check_op(
        "softmax axis 0",
        Op::Softmax { axis: 0 },
        vec![rand(&mut rng, &[3, 2])],
        vec![],
    );
}

#[test]
fn clip_boundary_convention_is_hardtanh() {
    let x = arr(&[4], vec![-0.5, 0.0, 0.5, 0.7]);
    let mut graph = one_node(
        Op::Clip {
            min: -0.5,
            max: 0.5,
        },
        std::slice::from_ref(&x),
        vec![],
    );
    let (_, tape) =
        forward_train(&mut graph, vec![Value::F32(x)], Mode::Train, &mut NoHooks).unwrap();
    let grads = backward(&graph, &tape, vec![ArrayD::ones(IxDyn(&[4]))]).unwrap();
    assert_eq!(
        grads.values["x0"].as_slice().unwrap(),
        &[0.0, 1.0, 0.0, 0.0]
    );
}

fn pool(
    kernel: &[usize],
    stride: &[usize],
    pads: (&[usize], &[usize]),
    ceil: bool,
    include: bool,
) -> PoolParams {
    PoolParams {
        kernel: kernel.to_vec(),
        stride: stride.to_vec(),
        pad_begin: pads.0.to_vec(),
        pad_end: pads.1.to_vec(),
        dilation: vec![1; kernel.len()],
        ceil_mode: ceil,
        count_include_pad: include,
    }
}

#[test]
fn pool_gradients() {
    let mut rng = Rng::new(5);
    let p = pool(&[3, 3], &[2, 2], (&[1, 1], &[1, 1]), true, false);
    check_op(
        "maxpool2d ceil pad",
        Op::MaxPool(p),
        vec![distinct(&mut rng, &[2, 2, 6, 5])],
        vec![],
    );
    let p = pool(&[2], &[2], (&[0], &[0]), false, false);
    check_op(
        "maxpool1d",
        Op::MaxPool(p),
        vec![distinct(&mut rng, &[1, 2, 7])],
        vec![],
    );
    let mut p = pool(&[2, 2], &[1, 2], (&[1, 0], &[0, 1]), false, false);
    p.dilation = vec![2, 1];
    check_op(
        "maxpool2d dilated asym pad",
        Op::MaxPool(p),
        vec![distinct(&mut rng, &[1, 1, 5, 5])],
        vec![],
    );
    let p = pool(&[3, 3], &[2, 2], (&[1, 1], &[1, 1]), true, true);
    check_op(
        "avgpool count_include_pad ceil",
        Op::AvgPool(p),
        vec![rand(&mut rng, &[2, 2, 6, 5])],
        vec![],
    );
    let p = pool(&[3, 2], &[2, 2], (&[1, 0], &[1, 1]), true, false);
    check_op(
        "avgpool exclude pad ceil",
        Op::AvgPool(p),
        vec![rand(&mut rng, &[1, 2, 6, 5])],
        vec![],
    );
    check_op(
        "global avgpool",
        Op::GlobalAvgPool,
        vec![rand(&mut rng, &[2, 3, 3, 2])],
        vec![],
    );
}

#[test]
fn maxpool_ties_go_to_the_first_maximum() {
    let x = arr(&[1, 1, 1, 4], vec![1.0, 1.0, 0.0, 0.0]);
    let p = pool(&[1, 2], &[1, 2], (&[0, 0], &[0, 0]), false, false);
    let mut graph = one_node(Op::MaxPool(p), std::slice::from_ref(&x), vec![]);
    let (_, tape) =
        forward_train(&mut graph, vec![Value::F32(x)], Mode::Train, &mut NoHooks).unwrap();
    let grads = backward(&graph, &tape, vec![arr(&[1, 1, 1, 2], vec![2.0, 3.0])]).unwrap();
    assert_eq!(
        grads.values["x0"].as_slice().unwrap(),
        &[2.0, 0.0, 3.0, 0.0]
    );
}

#[test]
fn elementwise_broadcast_gradients() {
    let mut rng = Rng::new(6);
    for op in [Op::Add, Op::Sub, Op::Mul] {
        let what = format!("{} broadcast", op.kind());
        check_op(
            &what,
            op,
            vec![rand(&mut rng, &[2, 3, 4]), rand(&mut rng, &[3, 1])],
            vec![],
        );
    }
    let b = rand(&mut rng, &[1, 4]).mapv(|v| 1.0 + 0.5 * v);
    check_op(
        "Div broadcast",
        Op::Div,
        vec![rand(&mut rng, &[3, 4]), b],
        vec![],
    );
    let a = rand(&mut rng, &[4]).mapv(|v| 1.0 + 0.5 * v);
    check_op(
        "Div broadcast lhs",
        Op::Div,
        vec![rand(&mut rng, &[2, 1]), a],
        vec![],
    );
}

#[test]
fn shape_op_gradients() {
    let mut rng = Rng::new(7);
    let (a, b) = (rand(&mut rng, &[2, 3]), rand(&mut rng, &[2, 2]));
    check_op("concat", Op::Concat { axis: -1 }, vec![a, b], vec![]);
    check_op(
        "flatten",
        Op::Flatten { axis: 1 },
        vec![rand(&mut rng, &[2, 3, 2])],
        vec![],
    );
    let target = i64s(&[2], vec![3, -1]);
    check_op(
        "reshape",
        Op::Reshape { allowzero: false },
        vec![rand(&mut rng, &[2, 3, 2])],
        vec![target],
    );
    check_op(
        "transpose",
        Op::Transpose {
            perm: vec![2, 0, 1],
        },
        vec![rand(&mut rng, &[2, 3, 4])],
        vec![],
    );
    check_op(
        "squeeze",
        Op::Squeeze {
            axes: Some(vec![1]),
        },
        vec![rand(&mut rng, &[2, 1, 3])],
        vec![],
    );
    check_op(
        "unsqueeze",
        Op::Unsqueeze {
            axes: Some(vec![0, 3]),
        },
        vec![rand(&mut rng, &[2, 3])],
        vec![],
    );
    check_op(
        "identity",
        Op::Identity,
        vec![rand(&mut rng, &[2, 3])],
        vec![],
    );
    // Slice axes 1 and 2: [1:-1:1] and [0:3:2] of a [2, 4, 5] tensor.
    let slice_args = vec![
        i64s(&[2], vec![1, 0]),
        i64s(&[2], vec![-1, 3]),
        i64s(&[2], vec![1, 2]),
        i64s(&[2], vec![1, 2]),
    ];
    check_op(
        "slice",
        Op::Slice,
        vec![rand(&mut rng, &[2, 4, 5])],
        slice_args,
    );
    let idx = i64s(&[2, 2], vec![2, 0, 2, -1]);
    check_op(
        "gather",
        Op::Gather { axis: 1 },
        vec![rand(&mut rng, &[2, 4, 3])],
        vec![idx],
    );
}

#[test]
fn chained_graph_gradients_accumulate_over_fan_out() {
    // y = relu(x) * x + linear(x): x is read three times.
    let mut rng = Rng::new(8);
    let x = rand_away_from_zero(&mut rng, &[3, 4]);
    let mut g = one_node(Op::Relu, std::slice::from_ref(&x), vec![]);
    g.nodes[0].outputs = vec!["r".into()];
    let node = |name: &str, op, inputs: &[&str], out: &str| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![out.into()],
    };
    g.nodes.push(node("mul", Op::Mul, &["r", "x0"], "m"));
    let lin = Op::Linear(LinearParams::new(
        rand(&mut rng, &[4, 4]).into_dimensionality().unwrap(),
        Some(Array1::zeros(4)),
    ));
    g.nodes.push(node("fc", lin, &["x0"], "l"));
    g.nodes.push(node("add", Op::Add, &["m", "l"], "y"));
    grad_check("fan-out graph", &g, &[x], Mode::Train);
}

#[test]
fn cross_entropy_gradient_matches_central_differences() {
    let mut rng = Rng::new(9);
    let logits = rand(&mut rng, &[4, 5]).mapv(|v| 3.0 * v);
    let labels = [0, 4, 2, 2];
    let (_, grad) = cross_entropy(&logits, &labels).unwrap();
    for k in 0..logits.len() {
        let at = |d: f32| {
            let mut z = logits.clone();
            z.as_slice_mut().unwrap()[k] += d;
            cross_entropy(&z, &labels).unwrap().0
        };
        let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
        assert_close(
            &format!("dlogits[{k}]"),
            numeric,
            grad.as_slice().unwrap()[k],
        );
    }
    // Hand value: uniform logits give ln(C).
    let (loss, _) = cross_entropy(&ArrayD::zeros(IxDyn(&[2, 4])), &[1, 3]).unwrap();
    assert!((loss - 4f32.ln()).abs() < 1e-6);
    // Large logits stay finite.
    let (loss, g) = cross_entropy(&arr(&[1, 2], vec![1000.0, -1000.0]), &[1]).unwrap();
    assert!((loss - 2000.0).abs() < 1e-3 && g.iter().all(|v| v.is_finite()));
}

#[test]
fn cross_entropy_rejects_bad_labels() {
    let z = ArrayD::zeros(IxDyn(&[2, 3]));
    assert!(matches!(
        cross_entropy(&z, &[0, 3]),
        Err(GraphError::Shape { .. })
    ));
    assert!(matches!(
        cross_entropy(&z, &[0, -1]),
        Err(GraphError::Shape { .. })
    ));
    assert!(matches!(
        cross_entropy(&z, &[0]),
        Err(GraphError::Shape { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// BatchNorm running statistics, optimizers, hooks

#[test]
fn batch_norm_running_stats_follow_pytorch_rule() {
    // Channel 0 holds 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1 holds
    // 0, 0, 2, 2 (mean 1, biased var 1, unbiased 4/3).
    let x = arr(&[2, 2, 1, 2], vec![1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 2.0, 2.0]);
    let op = Op::BatchNorm(BatchNormParams {
        weight: Array1::ones(2),
        bias: Array1::zeros(2),
        running_mean: Array1::from_vec(vec![0.0, 1.0]),
        running_var: Array1::from_vec(vec![1.0, 2.0]),
        eps: 1e-5,
        momentum: 0.1,
    });
    let mut g = one_node(op, std::slice::from_ref(&x), vec![]);
    let (out, _) = forward_train(
        &mut g,
        vec![Value::F32(x.clone())],
        Mode::Train,
        &mut NoHooks,
    )
    .unwrap();
    let Op::BatchNorm(p) = &g.nodes[0].op else {
        unreachable!()
    };
    let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
    assert!(close(p.running_mean[0], 0.9 * 0.0 + 0.1 * 2.5));
    assert!(close(p.running_mean[1], 0.9 * 1.0 + 0.1 * 1.0));
    assert!(close(p.running_var[0], 0.9 * 1.0 + 0.1 * 5.0 / 3.0));
    assert!(close(p.running_var[1], 0.9 * 2.0 + 0.1 * 4.0 / 3.0));
    // Normalised with the biased variance: (1 - 2.5) / sqrt(1.25 + eps).
    let y = out[0].f32("y").unwrap();
    assert!(close(y[[0, 0, 0, 0]], -1.5 / (1.25f32 + 1e-5).sqrt()));
    // Eval mode neither uses nor changes batch statistics.
    let before = g.clone();
    forward_train(&mut g, vec![Value::F32(x)], Mode::Eval, &mut NoHooks).unwrap();
    assert_eq!(g, before);
}

fn linear_graph(weight: Vec<f32>) -> Graph {
    let x = ArrayD::zeros(IxDyn(&[1, weight.len()]));
    let n = weight.len();
    let mut g = one_node(
        Op::Linear(LinearParams::new(
            Array2::from_shape_vec((1, n), weight).unwrap(),
            None,
        )),
        &[x],
        vec![],
    );
    g.nodes[0].name = "fc".into();
    g
}

fn weight_of(g: &Graph) -> Vec<f32> {
    parameters(g)[0].1.iter().copied().collect()
}

fn grads_of(v: Vec<f32>) -> BTreeMap<String, ArrayD<f32>> {
    let n = v.len();
    BTreeMap::from([("fc.weight".to_string(), arr(&[1, n], v))])
}

#[test]
fn sgd_steps_match_hand_computation() {
    let mut g = linear_graph(vec![1.0, -2.0]);
    let mut sgd = Sgd::new(0.1, 0.9, 0.01, false);
    let grads = grads_of(vec![0.5, 0.25]);
    sgd.step(&mut g, &grads).unwrap();
    // g = 0.5 + 0.01·1 = 0.51, buf = g, w = 1 - 0.1·0.51; g = 0.25 - 0.02 = 0.23, w = -2.023.
    let w = weight_of(&g);
    assert!(
        (w[0] - 0.949).abs() < 1e-6 && (w[1] + 2.023).abs() < 1e-6,
        "{w:?}"
    );
    sgd.step(&mut g, &grads).unwrap();
    // g = 0.5 + 0.00949 = 0.50949, buf = 0.9·0.51 + 0.50949 = 0.96849, w = 0.949 - 0.096849.
    let w = weight_of(&g);
    assert!((w[0] - 0.852151).abs() < 1e-6, "{w:?}");
    // Plain SGD without momentum: w = w - lr·g.
    let mut g = linear_graph(vec![1.0, -2.0]);
    Sgd::new(0.5, 0.0, 0.0, false).step(&mut g, &grads).unwrap();
    assert_eq!(weight_of(&g), vec![0.75, -2.125]);
    // Nesterov: buf = g = 0.5, update g + 0.9·buf = 0.95, w = 1 - 0.095.
    let mut g = linear_graph(vec![1.0]);
    Sgd::new(0.1, 0.9, 0.0, true)
        .step(&mut g, &grads_of(vec![0.5]))
        .unwrap();
    assert!((weight_of(&g)[0] - 0.905).abs() < 1e-6);
}

#[test]
fn adam_steps_match_hand_computation() {
    // With a constant gradient the bias-corrected moments are g and g², so every step moves
    // each weight by lr·g/(|g| + eps) ≈ lr·sign(g).
    let mut g = linear_graph(vec![1.0, -2.0]);
    let mut adam = Adam::new(0.1, (0.9, 0.999), 1e-8, 0.0);
    let grads = grads_of(vec![0.5, -0.25]);
    adam.step(&mut g, &grads).unwrap();
    let w = weight_of(&g);
    assert!(
        (w[0] - 0.9).abs() < 1e-6 && (w[1] + 1.9).abs() < 1e-6,
        "{w:?}"
    );
    adam.step(&mut g, &grads).unwrap();
    let w = weight_of(&g);
    assert!(
        (w[0] - 0.8).abs() < 1e-6 && (w[1] + 1.8).abs() < 1e-6,
        "{w:?}"
    );
    // Weight decay enters the gradient: g = 0.1 + 1·1 = 1.1 → m̂ = 1.1, v̂ = 1.21 → w = 1 - lr.
    let mut g = linear_graph(vec![1.0]);
    Adam::new(0.01, (0.9, 0.999), 1e-8, 1.0)
        .step(&mut g, &grads_of(vec![0.1]))
        .unwrap();
    assert!((weight_of(&g)[0] - 0.99).abs() < 1e-6);
}

#[test]
fn optimizer_rejects_mismatched_gradient() {
    let mut g = linear_graph(vec![1.0, -2.0]);
    let bad = grads_of(vec![0.5]);
    assert!(matches!(
        Sgd::new(0.1, 0.0, 0.0, false).step(&mut g, &bad),
        Err(GraphError::Shape { .. })
    ));
}

/// Rounds to a grid of 0.25 and clamps to [-0.5, 0.5]; the mask is 1 where the rounded value
/// was in range (NUMERICS §3.2's rule).
struct GridHook;

fn fake_quant(v: &ArrayD<f32>) -> Masked {
    let q = v.mapv(|x| (x / 0.25).round());
    Masked {
        value: q.mapv(|k| k.clamp(-2.0, 2.0) * 0.25),
        mask: Some(q.mapv(|k| if (-2.0..=2.0).contains(&k) { 1.0 } else { 0.0 })),
    }
}

impl TrainHooks for GridHook {
    fn weight(&mut self, _node: &str, w: &ArrayD<f32>) -> Option<Masked> {
        Some(fake_quant(w))
    }
    fn output(&mut self, node: &str, v: &ArrayD<f32>) -> Option<Masked> {
        (node == "n").then(|| fake_quant(v))
    }
}

#[test]
fn hooks_give_straight_through_gradients() {
    let w = arr(&[2, 3], vec![0.1, -0.3, 0.9, 0.6, -0.7, 0.2]);
    let x = arr(&[1, 3], vec![0.4, -0.2, 0.3]);
    let op = Op::Linear(LinearParams::new(
        w.clone().into_dimensionality().unwrap(),
        Some(Array1::from_vec(vec![0.0, 1.0])),
    ));
    let mut g = one_node(op, std::slice::from_ref(&x), vec![]);
    let (out, tape) = forward_train(
        &mut g,
        vec![Value::F32(x.clone())],
        Mode::Train,
        &mut GridHook,
    )
    .unwrap();
    let wq = fake_quant(&w);
    // Forward: y = x·Wqᵀ + b, then fake-quantized (Wq = [0, -0.25, 0.5; 0.5, -0.5, 0.25]).
    let y_raw = [
        0.4 * 0.0 + -0.2 * -0.25 + 0.3 * 0.5,
        1.0 + 0.4 * 0.5 + -0.2 * -0.5 + 0.3 * 0.25,
    ];
    let yq = fake_quant(&arr(&[1, 2], y_raw.to_vec()));
    assert_eq!(out[0].f32("y").unwrap(), &yq.value);
    let dy = arr(&[1, 2], vec![1.0, 2.0]);
    let grads = backward(&g, &tape, vec![dy.clone()]).unwrap();
    // Output mask: y_raw[1] = 1.375 rounds to 1.5 and is clamped → its gradient is cut.
    let out_mask = yq.mask.unwrap();
    assert_eq!(out_mask.as_slice().unwrap(), &[1.0, 0.0]);
    let dy_eff = &dy * &out_mask;
    // dx = dy_eff · Wq, dW = (dy_effᵀ · x) ⊙ weight mask, db = dy_eff.
    let wqv = &wq.value;
    for i in 0..3 {
        let want = dy_eff[[0, 0]] * wqv[[0, i]] + dy_eff[[0, 1]] * wqv[[1, i]];
        assert_eq!(grads.values["x0"][[0, i]], want);
    }
    let wmask = wq.mask.unwrap();
    assert_eq!(wmask.as_slice().unwrap(), &[1.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    for o in 0..2 {
        for i in 0..3 {
            let want = dy_eff[[0, o]] * x[[0, i]] * wmask[[o, i]];
            assert_eq!(grads.params["n.weight"][[o, i]], want);
        }
    }
    assert_eq!(
        grads.params["n.bias"].as_slice().unwrap(),
        dy_eff.as_slice().unwrap()
    );
}

#[test]
fn hook_changing_shape_is_an_error() {
    struct Bad;
    impl TrainHooks for Bad {
        fn weight(&mut self, _: &str, _: &ArrayD<f32>) -> Option<Masked> {
            Some(Masked {
                value: ArrayD::zeros(IxDyn(&[1])),
                mask: None,
            })
        }
    }
    let mut g = linear_graph(vec![1.0, 2.0]);
    let x = Value::F32(ArrayD::zeros(IxDyn(&[1, 2])));
    assert!(matches!(
        forward_train(&mut g, vec![x], Mode::Train, &mut Bad),
        Err(GraphError::Invalid { .. })
    ));
}

#[test]
fn lstm_graphs_cannot_be_trained() {
    let d = LstmDirection {
        w_ih: Array2::zeros((4, 1)),
        w_hh: Array2::zeros((4, 1)),
        b_ih: Array1::zeros(4),
        b_hh: Array1::zeros(4),
    };
    let x = ArrayD::zeros(IxDyn(&[2, 1, 1]));
    let mut g = one_node(
        Op::Lstm(LstmParams {
            hidden_size: 1,
            directions: vec![d],
        }),
        std::slice::from_ref(&x),
        vec![],
    );
    let err = forward_train(&mut g, vec![Value::F32(x)], Mode::Train, &mut NoHooks).unwrap_err();
    assert!(err.to_string().contains("LSTM"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Training from scratch

fn digits(split: &str) -> (ArrayD<f32>, Vec<i64>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models/data");
    let Value::F32(x) = read_npy(&root.join(format!("digits_{split}_x.npy"))).unwrap() else {
        panic!("float inputs")
    };
    let Value::I64(y) = read_npy(&root.join(format!("digits_{split}_y.npy"))).unwrap() else {
        panic!("integer labels")
    };
    (x, y.iter().copied().collect())
}

/// Flatten → Linear(64, 64) → ReLU → Linear(64, 10), randomly initialised.
fn mlp(seed: u64) -> Graph {
    let node = |name: &str, op, input: &str, out: &str| Node {
        name: name.into(),
        op,
        inputs: vec![input.into()],
        outputs: vec![out.into()],
    };
    let linear = |o, i| {
        Op::Linear(LinearParams::new(
            Array2::zeros((o, i)),
            Some(Array1::zeros(o)),
        ))
    };
    let mut g = Graph {
        inputs: vec![GraphInput {
            name: "x".into(),
            shape: vec![None, Some(1), Some(8), Some(8)],
        }],
        outputs: vec!["logits".into()],
        nodes: vec![
            node("flatten", Op::Flatten { axis: 1 }, "x", "f"),
            node("fc1", linear(64, 64), "f", "h"),
            node("relu", Op::Relu, "h", "r"),
            node("fc2", linear(10, 64), "r", "logits"),
        ],
        constants: BTreeMap::new(),
        fusions: Vec::new(),
    };
    reset_parameters(&mut g, &mut Rng::new(seed));
    g
}

#[test]
fn mlp_trains_from_scratch_on_digits() {
    let start = std::time::Instant::now();
    let (x, y) = digits("train");
    let (tx, ty) = digits("test");
    let mut g = mlp(0);
    let config = FitConfig {
        epochs: 20,
        batch_size: 32,
        seed: 1,
    };
    let mut adam = Adam::new(1e-2, (0.9, 0.999), 1e-8, 0.0);
    let losses = fit(&mut g, &x, &y, &config, &mut adam, &mut NoHooks).unwrap();
    let acc = accuracy(&g, &tx, &ty).unwrap();
    println!(
        "digits MLP from scratch: test accuracy {:.4} ({} / {}), losses {:?}, {:.2?}",
        acc,
        (acc * ty.len() as f32).round(),
        ty.len(),
        losses,
        start.elapsed()
    );
    assert!(losses.last().unwrap() < &losses[0]);
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn training_is_deterministic() {
    let (x, y) = digits("calib");
    let run = || {
        let mut g = mlp(5);
        let config = FitConfig {
            epochs: 2,
            batch_size: 16,
            seed: 3,
        };
        let mut sgd = Sgd::new(0.1, 0.9, 1e-4, false);
        let losses = fit(&mut g, &x, &y, &config, &mut sgd, &mut NoHooks).unwrap();
        (g, losses)
    };
    let (a, la) = run();
    let (b, lb) = run();
    assert_eq!(a, b);
    assert_eq!(la, lb);
    assert_ne!(a, mlp(5), "training changed the weights");
}

#[test]
fn reset_parameters_matches_pytorch_bounds() {
    let g = mlp(7);
    for (name, p) in parameters(&g) {
        let bound = 1.0 / 64f32.sqrt();
        assert!(p.iter().all(|v| v.abs() <= bound), "{name}");
        assert!(
            p.iter().any(|v| v.abs() > bound * 0.9),
            "{name} uses the range"
        );
    }
    let names: Vec<String> = parameters(&g).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
}

/// The imported CNN (Conv-BN-ReLU blocks, MaxPool, a residual Add, global pooling, Linear),
/// re-initialised and trained in train mode: BatchNorm uses batch statistics and its running
/// statistics are what eval-mode accuracy then uses.
#[test]
fn imported_cnn_trains_from_scratch_on_digits() {
    let start = std::time::Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    let mut g = qlab::import::onnx::load_onnx(&root.join("digits_cnn.onnx")).unwrap();
    reset_parameters(&mut g, &mut Rng::new(0));
    let (x, y) = digits("train");
    let (tx, ty) = digits("test");
    let config = FitConfig {
        epochs: 4,
        batch_size: 32,
        seed: 2,
    };
    let mut adam = Adam::new(1e-2, (0.9, 0.999), 1e-8, 0.0);
    let losses = fit(&mut g, &x, &y, &config, &mut adam, &mut NoHooks).unwrap();
    let acc = accuracy(&g, &tx, &ty).unwrap();
    println!(
        "digits CNN from scratch: test accuracy {acc:.4}, losses {losses:?}, {:.2?}",
        start.elapsed()
    );
    let Op::BatchNorm(bn) = &g.node("bn1").unwrap().op else {
        panic!("bn1 is BatchNorm")
    };
    assert!(
        bn.running_var.iter().any(|&v| v != 1.0),
        "running statistics were updated"
    );
    assert!(acc >= 0.9, "accuracy {acc}");
}

#[test]
fn frozen_batch_norm_uses_running_stats_in_train_mode() {
    struct Freeze;
    impl TrainHooks for Freeze {
        fn freeze_batch_norm(&mut self, node: &str) -> bool {
            node == "n"
        }
    }
    let mut rng = Rng::new(12);
    let x = rand(&mut rng, &[3, 2, 2]);
    let graph = one_node(bn(&mut rng, 2), std::slice::from_ref(&x), vec![]);
    let r = rand(&mut rng, &[3, 2, 2]);
    let run = |mode: Mode, hooks: &mut dyn TrainHooks| {
        let mut g = graph.clone();
        let (out, tape) = forward_train(&mut g, vec![Value::F32(x.clone())], mode, hooks).unwrap();
        let grads = backward(&g, &tape, vec![r.clone()]).unwrap();
        (g, out, grads)
    };
    let (g_frozen, out_frozen, grads_frozen) = run(Mode::Train, &mut Freeze);
    let (_, out_eval, grads_eval) = run(Mode::Eval, &mut NoHooks);
    assert_eq!(g_frozen, graph, "running statistics untouched");
    assert_eq!(out_frozen, out_eval);
    assert_eq!(grads_frozen.values["x0"], grads_eval.values["x0"]);
    assert_eq!(grads_frozen.params, grads_eval.params);
}

#[test]
fn backward_reports_bad_gradients_and_stops_at_shape_ops() {
    let x = arr(&[2, 3], vec![0.0; 6]);
    let mut g = one_node(Op::Relu, std::slice::from_ref(&x), vec![]);
    let (_, tape) = forward_train(
        &mut g,
        vec![Value::F32(x.clone())],
        Mode::Train,
        &mut NoHooks,
    )
    .unwrap();
    let wrong_shape = backward(&g, &tape, vec![ArrayD::zeros(IxDyn(&[3, 2]))]);
    assert!(matches!(wrong_shape, Err(GraphError::Shape { .. })));
    let wrong_count = backward(&g, &tape, vec![]);
    assert!(matches!(wrong_count, Err(GraphError::Invalid { .. })));
    let mut g = one_node(Op::Shape, std::slice::from_ref(&x), vec![]);
    g.nodes.push(Node {
        name: "fill".into(),
        op: Op::ConstantOfShape {
            value: Value::F32(arr(&[1], vec![1.0])),
        },
        inputs: vec!["y".into()],
        outputs: vec!["z".into()],
    });
    g.outputs = vec!["z".into()];
    let (out, tape) =
        forward_train(&mut g, vec![Value::F32(x)], Mode::Train, &mut NoHooks).unwrap();
    let grads = backward(&g, &tape, vec![ArrayD::ones(IxDyn(out[0].shape()))]).unwrap();
    assert!(
        !grads.values.contains_key("x0"),
        "shape-only paths carry no gradient"
    );
}
