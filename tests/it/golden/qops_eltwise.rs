//! Golden checks for the elementwise, activation, pooling, resizing and functional quantized ops
//! of `qops_*.json`: every case runs on its recorded engine (host profile VNNI; none of these ops
//! depends on the host) and must reproduce the flat output object exactly, qparams included.

use super::Check;
use super::json::*;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::qnn::{
    AdaptiveAvgPool2d, AvgPool2d, Hardswish, Hardtanh, Layout, LeakyReLU, MaxPool2d, QFunctional,
    QnnError, ReLU6, ResizeMode, ResizeTarget, activation, functional, interpolate,
};
use qlab::tensor::QTensor;
use serde_json::Value;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "qfunctional" => qfunctional,
        "relu" | "relu6" | "hardtanh" | "leaky_relu" | "hardswish" | "sigmoid" | "tanh"
        | "clamp" => unary,
        "max_pool2d" => max_pool2d,
        "avg_pool2d" => avg_pool2d,
        "adaptive_avg_pool2d" => adaptive_avg_pool2d,
        "interpolate" => resize,
        _ => return None,
    })
}

fn numerics(c: &Case) -> Numerics {
    let engine = Engine::parse(c.engine.as_deref().unwrap_or("fbgemm")).expect("known engine");
    Numerics::new(engine, HostProfile::Vnni)
}

fn expect(got: Result<QTensor, QnnError>, want: &Value) -> Outcome {
    Ok(expect_flat_qtensor("output", &got.qlab()?, want)?)
}

fn f(v: &Value) -> f32 {
    num(v) as f32
}

fn int(v: &Value) -> i64 {
    v.as_i64().expect("integer")
}

/// An `int or [h, w]` parameter.
fn pair(v: &Value) -> [usize; 2] {
    match v.as_array() {
        Some(a) => [
            a[0].as_u64().expect("dim") as usize,
            a[1].as_u64().expect("dim") as usize,
        ],
        None => [v.as_u64().expect("int or pair") as usize; 2],
    }
}

fn qfunctional(c: &Case) -> Outcome {
    let p = &c.params;
    let a = qtensor(&c.inputs["a"]);
    let got = match p["op"].as_str().expect("op") {
        "add_scalar" => functional::add_scalar(&a, num(&p["scalar"])),
        "mul_scalar" => functional::mul_scalar(&a, num(&p["scalar"])),
        op => {
            let m = QFunctional::new(num(&p["out_scale"]), int(&p["out_zero_point"]));
            let b = qtensor(&c.inputs["b"]);
            match op {
                "add" => m.add(&a, &b, numerics(c)),
                "add_relu" => m.add_relu(&a, &b, numerics(c)),
                "mul" => m.mul(&a, &b),
                "mul_relu" => m.mul_relu(&a, &b),
                "cat" => m.cat(&[&a, &b], int(&p["dim"])),
                other => return Err(format!("unknown qfunctional op {other}").into()),
            }
        }
    };
    expect(got, &c.expected)
}

fn unary(c: &Case) -> Outcome {
    let p = &c.params;
    let x = qtensor(&c.inputs["x"]);
    let got = match c.kind.as_str() {
        "relu" => activation::relu(&x),
        "relu6" => ReLU6.forward(&x),
        "hardtanh" => Hardtanh {
            min_val: f(&p["min_val"]),
            max_val: f(&p["max_val"]),
        }
        .forward(&x),
        "clamp" => activation::clamp(&x, Some(f(&p["min"])), Some(f(&p["max"]))),
        "leaky_relu" => LeakyReLU::new(
            num(&p["out_scale"]),
            int(&p["out_zero_point"]),
            f(&p["negative_slope"]),
        )
        .forward(&x),
        "hardswish" => {
            Hardswish::new(num(&p["out_scale"]), int(&p["out_zero_point"])).forward(&x, numerics(c))
        }
        "sigmoid" => activation::sigmoid(&x, numerics(c)),
        "tanh" => activation::tanh(&x, numerics(c)),
        other => return Err(format!("unknown unary kind {other}").into()),
    };
    expect(got, &c.expected)
}

fn max_pool2d(c: &Case) -> Outcome {
    let p = &c.params;
    let kernel = pair(&p["kernel_size"]);
    let m = MaxPool2d {
        kernel,
        stride: if p["stride"].is_null() {
            kernel
        } else {
            pair(&p["stride"])
        },
        padding: pair(&p["padding"]),
        dilation: pair(&p["dilation"]),
        ceil_mode: p["ceil_mode"].as_bool().expect("ceil_mode"),
    };
    expect(
        m.forward(&qtensor(&c.inputs["x"]), numerics(c)),
        &c.expected,
    )
}

fn avg_pool2d(c: &Case) -> Outcome {
    let p = &c.params;
    let kernel = pair(&p["kernel_size"]);
    let m = AvgPool2d {
        kernel,
        stride: if p["stride"].is_null() {
            kernel
        } else {
            pair(&p["stride"])
        },
        padding: pair(&p["padding"]),
        ceil_mode: p["ceil_mode"].as_bool().expect("ceil_mode"),
        count_include_pad: p["count_include_pad"].as_bool().expect("count_include_pad"),
        divisor_override: p["divisor_override"].as_i64(),
        // The golden inputs are contiguous NCHW tensors.
        layout: Layout::Nchw,
    };
    expect(
        m.forward(&qtensor(&c.inputs["x"]), numerics(c)),
        &c.expected,
    )
}

fn adaptive_avg_pool2d(c: &Case) -> Outcome {
    let m = AdaptiveAvgPool2d::new(pair(&c.params["output_size"]));
    expect(
        m.forward(&qtensor(&c.inputs["x"]), numerics(c)),
        &c.expected,
    )
}

fn resize(c: &Case) -> Outcome {
    let p = &c.params;
    let target = if p["size"].is_null() {
        let s = &p["scale_factor"];
        let v = s
            .as_array()
            .map_or_else(|| [num(s); 2], |a| [num(&a[0]), num(&a[1])]);
        ResizeTarget::ScaleFactor(v)
    } else {
        ResizeTarget::Size(pair(&p["size"]))
    };
    let mode = match p["mode"].as_str().expect("mode") {
        "nearest" => ResizeMode::Nearest,
        "bilinear" => ResizeMode::Bilinear {
            align_corners: p["align_corners"].as_bool().expect("align_corners"),
        },
        other => return Err(format!("unknown mode {other}").into()),
    };
    expect(
        interpolate(&qtensor(&c.inputs["x"]), target, mode),
        &c.expected,
    )
}
