//! The keys each case kind may carry (golden README §4–§10), so that a field the harness does not
//! know fails the case loudly instead of being ignored. Every key listed here is read by the
//! kind's check, except the ones the README describes as orientation only, which are deliberately
//! not compared: `note` (qops), `float_output_reference` (dynamic LSTM), `onnx_graph`,
//! `float_output`, `onnxruntime_float_output` (PTQ flows) and `prepared_modules` (QAT).

use super::json::Case;
use serde_json::Value;

/// The keys one kind may use.
struct Fields {
    params: &'static [&'static str],
    inputs: &'static [&'static str],
    expected: &'static [&'static str],
}

const fn f(
    params: &'static [&'static str],
    inputs: &'static [&'static str],
    expected: &'static [&'static str],
) -> Fields {
    Fields {
        params,
        inputs,
        expected,
    }
}

const FLAT: &[&str] = &["int_repr", "scale", "zero_point", "qdtype"];
const FLAT_OR_INDEXED: &[&str] = &[
    "int_repr",
    "scale",
    "zero_point",
    "qdtype",
    "values",
    "indices",
];
const QKERNEL_OUT: &[&str] = &[
    "int_repr",
    "scale",
    "zero_point",
    "qdtype",
    "exact_int_repr",
    "exact_acc_int32",
    "int16_pair_saturation_model_int_repr",
    "int16_pair_saturation_model_acc",
];
const CONV_PARAMS: &[&str] = &[
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "relu",
    "weight_qscheme",
    "out_scale",
    "out_zero_point",
    "note",
];
const BN_FOLD_OUT: &[&str] = &[
    "fused_weight",
    "fused_bias",
    "fused_output",
    "unfused_output",
];
const BN_INPUTS: [&str; 4] = ["bn_weight", "bn_bias", "bn_running_mean", "bn_running_var"];

fn fields(kind: &str) -> Option<Fields> {
    Some(match kind {
        "quantize_per_tensor" => f(
            &["dtype", "scale", "zero_point"],
            &["x"],
            &["int_repr", "dequantized", "q_scale", "q_zero_point"],
        ),
        "dequantize_per_tensor" => f(&[], &["q"], &["dequantized"]),
        "quantize_per_channel" => f(
            &["dtype", "axis"],
            &["x", "scales", "zero_points"],
            &["int_repr", "dequantized"],
        ),
        "choose_qparams_per_tensor" => f(
            &["reduce_range"],
            &["x"],
            &["scale", "zero_point", "quantize_per_tensor_dynamic"],
        ),
        "quantize_per_tensor_dynamic" => f(&["dtype", "reduce_range"], &["x"], &["q"]),
        "observer" => f(
            &["observer", "preset", "args"],
            &["batches"],
            &[
                "min_val",
                "max_val",
                "histogram",
                "scale",
                "zero_point",
                "zero_point_torch_dtype",
                "steps",
            ],
        ),
        "observer_passthrough" => f(
            &["observer", "args"],
            &["batches"],
            &["outputs", "as_float16", "calculate_qparams_raises"],
        ),
        "fake_quantize_module" => f(
            &[
                "preset",
                "class",
                "observer",
                "observer_args",
                "constructor_kwargs",
                "quant_min",
                "quant_max",
                "dtype",
                "qscheme",
                "ch_axis",
                "schedule",
            ],
            &["steps"],
            &["steps"],
        ),
        "fake_quantize_per_tensor_affine" => f(
            &[
                "scale",
                "zero_point",
                "quant_min",
                "quant_max",
                "tensor_qparams",
            ],
            &["x", "grad_output"],
            &["output", "grad_input"],
        ),
        "fake_quantize_per_channel_affine" => f(
            &["axis", "quant_min", "quant_max"],
            &["x", "scales", "zero_points", "grad_output"],
            &["output", "grad_input"],
        ),
        "fuse_conv_bn_eval" => f(
            &["conv_type", "conv_args", "bn_eps", "transpose"],
            &[
                "conv_weight",
                "conv_bias",
                BN_INPUTS[0],
                BN_INPUTS[1],
                BN_INPUTS[2],
                BN_INPUTS[3],
                "x",
            ],
            BN_FOLD_OUT,
        ),
        "fuse_linear_bn_eval" => f(
            &["in_features", "out_features", "bias", "bn_eps"],
            &[
                "linear_weight",
                "linear_bias",
                BN_INPUTS[0],
                BN_INPUTS[1],
                BN_INPUTS[2],
                BN_INPUTS[3],
                "x",
            ],
            BN_FOLD_OUT,
        ),
        "fuse_modules" => f(
            &["modules_to_fuse", "model"],
            &["state_dict", "x"],
            &[
                "eval_modules",
                "eval_state_dict",
                "eval_output",
                "qat_modules",
                "unfused_output",
            ],
        ),
        "linear" => f(
            &[
                "in_features",
                "out_features",
                "bias",
                "relu",
                "weight_qscheme",
                "out_scale",
                "out_zero_point",
                "note",
            ],
            &["x", "weight", "bias"],
            QKERNEL_OUT,
        ),
        "conv1d" | "conv2d" | "conv3d" => f(CONV_PARAMS, &["x", "weight", "bias"], QKERNEL_OUT),
        "qfunctional" => f(
            &["op", "out_scale", "out_zero_point", "dim", "scalar"],
            &["a", "b"],
            FLAT,
        ),
        "relu" | "relu6" | "sigmoid" | "tanh" => f(&[], &["x"], FLAT),
        "hardtanh" => f(&["min_val", "max_val"], &["x"], FLAT),
        "leaky_relu" => f(
            &["negative_slope", "out_scale", "out_zero_point"],
            &["x"],
            FLAT,
        ),
        "hardswish" => f(&["out_scale", "out_zero_point"], &["x"], FLAT),
        "clamp" => f(&["min", "max"], &["x"], FLAT),
        "max_pool2d" => f(
            &["kernel_size", "stride", "padding", "dilation", "ceil_mode"],
            &["x"],
            FLAT,
        ),
        "avg_pool2d" => f(
            &[
                "kernel_size",
                "stride",
                "padding",
                "ceil_mode",
                "count_include_pad",
                "divisor_override",
            ],
            &["x"],
            FLAT,
        ),
        "adaptive_avg_pool2d" => f(&["output_size"], &["x"], FLAT),
        "interpolate" => f(
            &["mode", "align_corners", "size", "scale_factor"],
            &["x"],
            FLAT,
        ),
        "mean" => f(&["dim", "keepdim"], &["x"], FLAT),
        "sort" => f(
            &["dim", "descending", "stable"],
            &["x"],
            &["values", "indices"],
        ),
        "topk" => f(
            &["k", "dim", "largest", "sorted"],
            &["x"],
            &["values", "indices"],
        ),
        "max" | "min" => f(&["dim", "keepdim"], &["x"], FLAT_OR_INDEXED),
        "dynamic_linear" => f(
            &[
                "weight_dtype",
                "in_features",
                "out_features",
                "bias",
                "module_reduce_range",
            ],
            &["x", "weight_float", "bias"],
            &["weight", "y", "act_qparams_hint"],
        ),
        "dynamic_lstm" => f(
            &[
                "input_size",
                "hidden_size",
                "num_layers",
                "bidirectional",
                "batch_first",
                "weight_dtype",
            ],
            &["x", "h0", "c0", "weights"],
            &["output", "h_n", "c_n", "weights", "float_output_reference"],
        ),
        "static_ptq" => f(
            &[
                "fuse_modules",
                "model",
                "model_args",
                "onnx_file",
                "onnx_graph",
                "qconfig",
            ],
            &["float_state_dict", "calibration_batches", "x"],
            &[
                "fused_modules",
                "fused_float_state_dict",
                "observers",
                "quantized_modules",
                "module_outputs",
                "output",
                "float_output",
                "onnxruntime_float_output",
            ],
        ),
        "dynamic_ptq" => f(
            &[
                "dtype",
                "model",
                "model_args",
                "onnx_file",
                "onnx_graph",
                "qconfig_spec",
            ],
            &["float_state_dict", "x"],
            &[
                "quantized_modules",
                "module_outputs",
                "output",
                "float_output",
                "onnxruntime_float_output",
            ],
        ),
        "qat" => f(
            &[
                "fuse_modules_qat",
                "loss",
                "model",
                "model_args",
                "onnx_file",
                "optimizer",
                "prepared_modules",
                "qconfig",
            ],
            &["float_state_dict", "train_batches", "x"],
            &[
                "prepared_state_dict_initial",
                "steps",
                "quantized_modules",
                "module_outputs",
                "output",
            ],
        ),
        _ => return None,
    })
}

/// Keys of `obj` (an object, or null for "none") not in `known`.
fn unknown<'a>(obj: &'a Value, known: &[&str]) -> Result<Vec<&'a str>, String> {
    match obj {
        Value::Null => Ok(vec![]),
        Value::Object(m) => Ok(m
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect()),
        other => Err(format!("not an object: {other}")),
    }
}

/// Fails when the case's kind is unknown or any of its keys is one the harness does not read.
/// `raises` and `isa_variants` (§1.4) are allowed in every `expected`; an ISA variant may only
/// replace keys the kind knows.
pub fn check_known(case: &Case) -> Result<(), String> {
    let fields = fields(&case.kind)
        .ok_or_else(|| format!("unknown case kind '{}': no check for it", case.kind))?;
    if let Some(e) = case.engine.as_deref()
        && !["fbgemm", "qnnpack", "x86"].contains(&e)
    {
        return Err(format!("unknown engine '{e}'"));
    }
    let mut expected = fields.expected.to_vec();
    expected.extend(["raises", "isa_variants"]);
    let mut bad = case.extra_keys.clone();
    for (section, obj, known) in [
        ("params", &case.params, fields.params),
        ("inputs", &case.inputs, fields.inputs),
        ("expected", &case.expected, &expected[..]),
    ] {
        bad.extend(
            unknown(obj, known)
                .map_err(|e| format!("{section}: {e}"))?
                .into_iter()
                .map(|k| format!("{section}.{k}")),
        );
    }
    if let Some(Value::Object(hosts)) = case.expected.get("isa_variants") {
        for (host, v) in hosts {
            if host != "avx2" {
                bad.push(format!("expected.isa_variants.{host}"));
            }
            bad.extend(
                unknown(v, fields.expected)?
                    .into_iter()
                    .map(|k| format!("expected.isa_variants.{host}.{k}")),
            );
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fields the harness does not read: {}",
            bad.join(", ")
        ))
    }
}
