//! Empirical bias correction on the digits CNN: the modules corrected are PyTorch's targets
//! (unfused Conv2d / Linear with a bias: here only `fc`, the convs are fused with their ReLU);
//! each channel's shift is the mean of quantized − float output with the float Linear computed
//! here by hand on the quantized model's input; afterwards that mean is near zero.

use ndarray::{Array2, ArrayD, Axis, Ix2};
use qlab::engine::Numerics;
use qlab::graph::{Op, Value};
use qlab::import::npy::read_npy;
use qlab::import::onnx::load_onnx;
use qlab::qconfig::presets::get_default_qconfig;
use qlab::workflow::{
    QConfigMap, QValue, QuantizedModel, convert, correct_bias, fuse_auto, prepare,
};

fn digits() -> (QuantizedModel, Vec<Value>) {
    let root = crate::support::root();
    let graph = load_onnx(&root.join("sample-models/digits_cnn.onnx")).unwrap();
    let calib = read_npy(&root.join("sample-models/data/digits_calib_x.npy")).unwrap();
    let (fused, _) = fuse_auto(&graph).unwrap();
    let mut prepared = prepare(
        &fused,
        &QConfigMap::global(get_default_qconfig("fbgemm").unwrap()),
    )
    .unwrap();
    let Value::F32(x) = &calib else {
        panic!("float images")
    };
    let batches: Vec<Value> = x
        .axis_chunks_iter(Axis(0), 64)
        .map(|c| Value::F32(c.to_owned()))
        .collect();
    for b in &batches {
        prepared.calibrate_batch(vec![b.clone()]).unwrap();
    }
    (convert(&prepared, Numerics::default()).unwrap(), batches)
}

/// Per output feature, the mean over `batches` of fc's quantized output minus `x·Wᵀ + b` on
/// fc's dequantized quantized input, with the float weights of the graph.
fn fc_mean_error(model: &QuantizedModel, batches: &[Value]) -> Vec<f64> {
    let fc = model
        .graph
        .nodes
        .iter()
        .position(|n| n.name == "fc")
        .unwrap();
    let node = &model.graph.nodes[fc];
    let Op::Linear(l) = &node.op else {
        panic!("fc is a Linear")
    };
    // The float twin keeps the float model's bias: the quantized module's is what changes.
    let bias = l.bias.clone().unwrap();
    let mut sums = vec![0.0f64; l.weight.nrows()];
    let mut rows = 0usize;
    for x in batches {
        let (mut input, mut output) = (None, None);
        model
            .run_with_stats(vec![x.clone()], |n, outs, _| {
                if n.outputs[0] == node.inputs[0] {
                    input = Some(outs[0].clone());
                }
                if n.name == "fc" {
                    output = Some(outs[0].clone());
                }
            })
            .unwrap();
        let (Some(QValue::Quant(xi)), Some(QValue::Quant(yo))) = (input, output) else {
            panic!("fc runs quantized")
        };
        let xi = Array2::from_shape_vec((xi.shape()[0], xi.shape()[1]), xi.dequantize()).unwrap();
        let yo: Array2<f32> = ArrayD::from_shape_vec(yo.shape().to_vec(), yo.dequantize())
            .unwrap()
            .into_dimensionality::<Ix2>()
            .unwrap();
        for (r, row) in xi.outer_iter().enumerate() {
            for (o, w) in l.weight.outer_iter().enumerate() {
                // The float module in f32, as PyTorch's shadow computes it.
                let f: f32 = row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + bias[o];
                sums[o] += f64::from(yo[[r, o]] - f);
            }
        }
        rows += xi.nrows();
    }
    sums.iter().map(|s| s / rows as f64).collect()
}

#[test]
fn bias_correction_shifts_fc_by_its_mean_error() {
    let (mut model, batches) = digits();
    let before = fc_mean_error(&model, &batches);
    let done = correct_bias(&mut model, &batches).unwrap();
    let layers: Vec<&str> = done.iter().map(|c| c.layer.as_str()).collect();
    assert_eq!(layers, ["fc"], "only the unfused Linear is a target");
    for (got, want) in done[0].shift.iter().zip(&before) {
        // Both sides sum f32 products in their own order: agree to f32 rounding of logits ~10.
        assert!(
            (f64::from(*got) - want).abs() <= 2e-6 + 1e-4 * want.abs(),
            "shift {got} vs hand-computed mean error {want}"
        );
    }
    let after = fc_mean_error(&model, &batches);
    // What remains is the output's own rounding (its scale is ~0.05): a fraction of before.
    let total = |v: &[f64]| v.iter().map(|e| e.abs()).sum::<f64>();
    assert!(
        total(&after) < 0.35 * total(&before),
        "mean error per channel {before:?} → {after:?}"
    );
}
