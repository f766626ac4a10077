//! Golden checks for `quantize.json`: per-tensor and per-channel quantize, dequantize, and the
//! C++ qparams chooser behind dynamic quantization.

use super::Check;
use super::json::*;
use qlab::tensor::quantize::min_max;
use qlab::tensor::{QDType, QTensor, choose_quantization_params};

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

/// `reduce_range` as the engine applies it: qnnpack forces it to false (golden README §2.3).
fn effective_reduce_range(c: &Case) -> Result<bool, String> {
    let asked = c.params["reduce_range"]
        .as_bool()
        .ok_or("reduce_range is not a bool")?;
    Ok(asked && c.engine.as_deref() != Some("qnnpack"))
}

fn quantize_per_tensor(c: &Case) -> Outcome {
    let x = &c.inputs["x"];
    let dtype = qdtype(&c.params["dtype"]);
    let q = QTensor::quantize_per_tensor(
        &f32s(x),
        &shape(x),
        num(&c.params["scale"]),
        c.params["zero_point"].as_i64().unwrap(),
        dtype,
    )
    .qlab()?;
    expect_eq("int_repr", q.int_values(), i32s(&c.expected["int_repr"]))?;
    expect_f32_bits(
        "dequantized",
        &q.dequantize(),
        &f32s(&c.expected["dequantized"]),
    )?;
    expect_f64_bits(
        "q_scale",
        &[q.q_scale().unwrap()],
        &[num(&c.expected["q_scale"])],
    )?;
    Ok(expect_eq(
        "q_zero_point",
        q.q_zero_point().unwrap(),
        c.expected["q_zero_point"].as_i64().unwrap(),
    )?)
}

fn dequantize_per_tensor(c: &Case) -> Outcome {
    let q = qtensor(&c.inputs["q"]);
    Ok(expect_f32_bits(
        "dequantized",
        &q.dequantize(),
        &f32s(&c.expected["dequantized"]),
    )?)
}

fn quantize_per_channel(c: &Case) -> Outcome {
    let x = &c.inputs["x"];
    let q = QTensor::quantize_per_channel(
        &f32s(x),
        &shape(x),
        &f64s(&c.inputs["scales"]),
        &i64s(&c.inputs["zero_points"]),
        c.params["axis"].as_i64().unwrap(),
        qdtype(&c.params["dtype"]),
    )
    .qlab()?;
    expect_eq("int_repr", q.int_values(), i32s(&c.expected["int_repr"]))?;
    Ok(expect_f32_bits(
        "dequantized",
        &q.dequantize(),
        &f32s(&c.expected["dequantized"]),
    )?)
}

fn choose_qparams_per_tensor(c: &Case) -> Outcome {
    let x = &c.inputs["x"];
    let data = f32s(x);
    let reduce = effective_reduce_range(c)?;
    let (min, max) = min_max(&data);
    let chosen = choose_quantization_params(min, max, 0, 255, false, reduce).qlab()?;
    expect_f64_bits("scale", &[chosen.scale], &[num(&c.expected["scale"])])?;
    expect_eq(
        "zero_point",
        chosen.zero_point as i64,
        c.expected["zero_point"].as_i64().unwrap(),
    )?;
    let q =
        QTensor::quantize_per_tensor_dynamic(&data, &shape(x), QDType::QUInt8, reduce).qlab()?;
    let want = qtensor(&c.expected["quantize_per_tensor_dynamic"]);
    expect_eq("dynamic.int_repr", q.int_values(), want.int_values())?;
    expect_f64_bits(
        "dynamic.scale",
        &[q.q_scale().unwrap()],
        &[want.q_scale().unwrap()],
    )?;
    Ok(expect_eq(
        "dynamic.zero_point",
        q.q_zero_point().unwrap(),
        want.q_zero_point().unwrap(),
    )?)
}

fn quantize_per_tensor_dynamic(c: &Case) -> Outcome {
    let x = &c.inputs["x"];
    let reduce = effective_reduce_range(c)?;
    let q = QTensor::quantize_per_tensor_dynamic(
        &f32s(x),
        &shape(x),
        qdtype(&c.params["dtype"]),
        reduce,
    )
    .qlab()?;
    let want = qtensor(&c.expected["q"]);
    expect_eq("int_repr", q.int_values(), want.int_values())?;
    expect_f64_bits("scale", &[q.q_scale().unwrap()], &[want.q_scale().unwrap()])?;
    Ok(expect_eq(
        "zero_point",
        q.q_zero_point().unwrap(),
        want.q_zero_point().unwrap(),
    )?)
}
