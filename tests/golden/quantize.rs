//! Golden checks for `quantize.json`: per-tensor and per-channel quantize, dequantize, and the
//! C++ qparams chooser behind dynamic quantization.

use super::Check;
use super::json::*;
use qlab::tensor::{QDType, QTensor, choose_quantization_params};
use qlab::tensor::quantize::min_max;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "quantize_per_tensor" => quantize_per_tensor,
        "dequantize_per_tensor" => dequantize_per_tensor,
        "quantize_per_channel" => quantize_per_channel,
        "choose_qparams_per_tensor" => choose_qparams_per_tensor,
        "quantize_per_tensor_dynamic" => quantize_per_tensor_dynamic,
        _ => return None,
    })
}

fn quantize_per_tensor(c: &Case) -> Result<(), String> {
    let x = &c.inputs["x"];
    let dtype = qdtype(&c.params["dtype"]);
    let q = QTensor::quantize_per_tensor(&f32s(x), &shape(x), num(&c.params["scale"]), c.params["zero_point"].as_i64().unwrap(), dtype)
        .map_err(|e| e.to_string())?;
    expect_eq("int_repr", q.int_values(), i32s(&c.expected["int_repr"]))?;
    expect_f32_bits("dequantized", &q.dequantize(), &f32s(&c.expected["dequantized"]))?;
    expect_f64_bits("q_scale", &[q.q_scale().unwrap()], &[num(&c.expected["q_scale"])])?;
    expect_eq("q_zero_point", q.q_zero_point().unwrap(), c.expected["q_zero_point"].as_i64().unwrap())
}

fn dequantize_per_tensor(c: &Case) -> Result<(), String> {
    let q = qtensor(&c.inputs["q"]);
    expect_f32_bits("dequantized", &q.dequantize(), &f32s(&c.expected["dequantized"]))
}

fn quantize_per_channel(c: &Case) -> Result<(), String> {
    let x = &c.inputs["x"];
    let q = QTensor::quantize_per_channel(
        &f32s(x),
        &shape(x),
        &f64s(&c.inputs["scales"]),
        &i64s(&c.inputs["zero_points"]),
        c.params["axis"].as_i64().unwrap(),
        qdtype(&c.params["dtype"]),
    )
    .map_err(|e| e.to_string())?;
    expect_eq("int_repr", q.int_values(), i32s(&c.expected["int_repr"]))?;
    expect_f32_bits("dequantized", &q.dequantize(), &f32s(&c.expected["dequantized"]))
}

fn choose_qparams_per_tensor(c: &Case) -> Result<(), String> {
    let x = &c.inputs["x"];
    let data = f32s(x);
    // The qnnpack engine ignores reduce_range (golden README §2.3).
    let reduce = c.params["reduce_range"].as_bool().unwrap() && c.engine.as_deref() != Some("qnnpack");
    let (min, max) = min_max(&data);
    let chosen = choose_quantization_params(min, max, 0, 255, false, reduce).map_err(|e| e.to_string())?;
    expect_f64_bits("scale", &[chosen.scale], &[num(&c.expected["scale"])])?;
    expect_eq("zero_point", chosen.zero_point as i64, c.expected["zero_point"].as_i64().unwrap())?;
    let q = QTensor::quantize_per_tensor_dynamic(&data, &shape(x), QDType::QUInt8, reduce).map_err(|e| e.to_string())?;
    let want = qtensor(&c.expected["quantize_per_tensor_dynamic"]);
    expect_eq("dynamic.int_repr", q.int_values(), want.int_values())?;
    expect_f64_bits("dynamic.scale", &[q.q_scale().unwrap()], &[want.q_scale().unwrap()])?;
    expect_eq("dynamic.zero_point", q.q_zero_point().unwrap(), want.q_zero_point().unwrap())
}

fn quantize_per_tensor_dynamic(c: &Case) -> Result<(), String> {
    let x = &c.inputs["x"];
    let reduce = c.params["reduce_range"].as_bool().unwrap();
    let q = QTensor::quantize_per_tensor_dynamic(&f32s(x), &shape(x), qdtype(&c.params["dtype"]), reduce)
        .map_err(|e| e.to_string())?;
    let want = qtensor(&c.expected["q"]);
    expect_eq("int_repr", q.int_values(), want.int_values())?;
    expect_f64_bits("scale", &[q.q_scale().unwrap()], &[want.q_scale().unwrap()])?;
    expect_eq("zero_point", q.q_zero_point().unwrap(), want.q_zero_point().unwrap())
}
