//! Small ONNX graphs built in code check the importer's op mapping and the float kernels on
//! values worked out by hand (PyTorch's conventions for each op).

use crate::support::onnx;

use onnx::{attr_i, attr_ints, attr_s, f32_tensor, model};
use qlab::graph::{Value, run};
use qlab::import::onnx::import_onnx_bytes;

fn eval(bytes: &[u8], dims: &[usize], x: Vec<f32>) -> Vec<f32> {
    let graph = import_onnx_bytes(bytes, "t.onnx").expect("imports");
    assert_eq!(graph.nodes[0].name, "m", "module path from the node name");
    let x = Value::F32(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), x).unwrap());
    let out = run(&graph, vec![x], |_, _| {}).expect("runs");
    out[0].f32("y").unwrap().iter().copied().collect()
}

#[test]
fn resize_nearest_and_bilinear() {
    let scales = f32_tensor("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let nearest = model(
        "Resize",
        &[1, 1, 2, 2],
        &["", "scales"],
        vec![scales.clone()],
        vec![
            attr_s("mode", "nearest"),
            attr_s("coordinate_transformation_mode", "asymmetric"),
            attr_s("nearest_mode", "floor"),
        ],
    );
    let y = eval(&nearest, &[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        y,
        [
            1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0
        ]
    );
    let bilinear = model(
        "Resize",
        &[1, 1, 2, 2],
        &["", "scales"],
        vec![scales],
        vec![
            attr_s("mode", "linear"),
            attr_s("coordinate_transformation_mode", "pytorch_half_pixel"),
        ],
    );
    let y = eval(&bilinear, &[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(y[..4], [1.0, 1.25, 1.75, 2.0]);
}

#[test]
fn avg_pool_ceil_mode_and_padding() {
    // PyTorch: F.avg_pool2d(arange(16).view(1,1,4,4), 3, stride=2, padding=1, ceil_mode=True,
    // count_include_pad=False): ceil mode adds a third window starting at row/col 3 (inside the
    // input), so the output is 3×3 and edge windows average only their in-bounds elements.
    let bytes = model(
        "AveragePool",
        &[1, 1, 4, 4],
        &[],
        vec![],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_i("ceil_mode", 1),
            attr_i("count_include_pad", 0),
        ],
    );
    let y = eval(&bytes, &[1, 1, 4, 4], (0..16).map(|v| v as f32).collect());
    assert_eq!(y, [2.5, 4.0, 5.0, 8.5, 10.0, 11.0, 12.5, 14.0, 15.0]);
}

#[test]
fn clip_softmax_sigmoid() {
    let lo = f32_tensor("lo", &[], &[0.0]);
    let hi = f32_tensor("hi", &[], &[6.0]);
    let y = eval(
        &model("Clip", &[4], &["lo", "hi"], vec![lo, hi], vec![]),
        &[4],
        vec![-1.0, 3.0, 7.0, 6.0],
    );
    assert_eq!(y, [0.0, 3.0, 6.0, 6.0]);
    let y = eval(
        &model("Softmax", &[1, 2], &[], vec![], vec![attr_i("axis", -1)]),
        &[1, 2],
        vec![0.0, 0.0],
    );
    assert_eq!(y, [0.5, 0.5]);
    let y = eval(
        &model("Sigmoid", &[1], &[], vec![], vec![]),
        &[1],
        vec![0.0],
    );
    assert_eq!(y, [0.5]);
}

#[test]
fn grouped_dilated_conv_with_asymmetric_padding() {
    // Two groups, each a 1×2 kernel of ones with dilation 2 and padding (left 0, right 2):
    // y[g, i] = x[g, i] + x[g, i + 2] (zero beyond the end).
    let w = f32_tensor("w", &[2, 1, 1, 2], &[1.0; 4]);
    let bytes = model(
        "Conv",
        &[1, 2, 1, 4],
        &["w"],
        vec![w],
        vec![
            attr_i("group", 2),
            attr_ints("dilations", &[1, 2]),
            attr_ints("pads", &[0, 0, 0, 2]),
            attr_ints("kernel_shape", &[1, 2]),
        ],
    );
    let y = eval(
        &bytes,
        &[1, 2, 1, 4],
        vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0],
    );
    assert_eq!(y, [4.0, 6.0, 3.0, 4.0, 40.0, 60.0, 30.0, 40.0]);
}

#[test]
fn degenerate_geometry_is_an_error_not_a_panic() {
    let zero_kernel = model(
        "MaxPool",
        &[1, 1, 4, 4],
        &[],
        vec![],
        vec![attr_ints("kernel_shape", &[0, 2])],
    );
    assert!(import_onnx_bytes(&zero_kernel, "t.onnx").is_err());
    let zero_stride = model(
        "MaxPool",
        &[1, 1, 4, 4],
        &[],
        vec![],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[0, 1]),
        ],
    );
    assert!(import_onnx_bytes(&zero_stride, "t.onnx").is_err());
    let w = f32_tensor("w", &[1, 1, 0, 2], &[]);
    let zero_conv = model("Conv", &[1, 1, 4, 4], &["w"], vec![w], vec![]);
    match import_onnx_bytes(&zero_conv, "t.onnx") {
        Err(_) => {}
        Ok(graph) => {
            let x = Value::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 1, 4, 4])));
            assert!(
                run(&graph, vec![x], |_, _| {}).is_err(),
                "a zero-size kernel must not run"
            );
        }
    }
}

/// A 3-D convolution imports, passes the graph check and runs: a 1×1×1 kernel of 2 doubles.
#[test]
fn conv3d_imports_and_runs() {
    let w = f32_tensor("w", &[1, 1, 1, 1, 1], &[2.0]);
    let bytes = model("Conv", &[1, 1, 2, 1, 2], &["w"], vec![w], vec![]);
    let y = eval(&bytes, &[1, 1, 2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(y, [2.0, 4.0, 6.0, 8.0]);
}
