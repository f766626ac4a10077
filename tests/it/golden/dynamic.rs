//! Golden checks for `dynamic.json`: dynamic Linear and LSTM. Converted weights, activation
//! qparams and int8 Linear outputs must match bit for bit; fp16 Linear outputs and all LSTM
//! outputs go through float code (f16 GEMM order, transcendentals) and are compared with the
//! tolerance of golden README §11, also against the AVX2 host's values where recorded. Cases
//! that raise in PyTorch (fp16 on qnnpack) must get qlab's typed error from the forward pass,
//! which runs before any recorded value is compared.

use super::Check;
use super::json::*;
use ndarray::{ArrayD, IxDyn};
use qlab::engine::Engine;
use qlab::qnn::dynamic::{
    DynamicLinear, DynamicLstm, DynamicWeight, DynamicWeightDtype, LstmConfig, LstmFloatParams,
    quantize_activation,
};
use serde_json::Value;

/// Float outputs may differ from PyTorch by this much relative to max(|want|, 1).
const FLOAT_TOLERANCE: f32 = 1e-6;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "dynamic_linear" => linear,
        "dynamic_lstm" => lstm,
        _ => return None,
    })
}

fn engine(c: &Case) -> Engine {
    Engine::parse(c.engine.as_deref().unwrap_or("fbgemm")).expect("known engine")
}

fn array(t: &Value) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&shape(t)), f32s(t)).expect("golden tensor shape")
}

/// `null` (an absent optional tensor) as `None`.
fn optional<T>(v: &Value, f: impl Fn(&Value) -> T) -> Option<T> {
    (!v.is_null()).then(|| f(v))
}

fn size(v: &Value) -> Result<usize, String> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or(format!("{v} is not a size"))
}

fn weight_dtype(name: &str) -> DynamicWeightDtype {
    match name {
        "qint8_per_tensor" | "qint8" => DynamicWeightDtype::QInt8PerTensor,
        "qint8_per_channel" => DynamicWeightDtype::QInt8PerChannel,
        "float16" => DynamicWeightDtype::Float16,
        other => panic!("unknown weight_dtype {other}"),
    }
}

/// A converted weight against the module's recorded weight (qtensor or f16-valued f32 tensor).
pub(super) fn expect_weight(what: &str, got: &DynamicWeight, want: &Value) -> Outcome {
    match got {
        DynamicWeight::QInt8(p) => {
            let q = qtensor(want);
            expect_eq(
                &format!("{what}.int_repr"),
                p.data.iter().map(|&v| v as i32).collect::<Vec<_>>(),
                q.int_values(),
            )?;
            let (scales, zps): (Vec<f64>, Vec<i64>) = match q.q_scale() {
                Ok(s) => (vec![s], vec![q.q_zero_point().expect("per tensor")]),
                Err(_) => (
                    q.q_per_channel_scales().expect("per channel").to_vec(),
                    q.q_per_channel_zero_points().expect("per channel").to_vec(),
                ),
            };
            expect_f64_bits(&format!("{what}.scales"), &p.scales, &scales)?;
            Ok(expect_eq(
                &format!("{what}.zero_points"),
                p.zero_points.iter().map(|&z| z as i64).collect::<Vec<_>>(),
                zps,
            )?)
        }
        DynamicWeight::Float16 { values, .. } => Ok(expect_f32_bits(
            &format!("{what} (f16)"),
            values,
            &f32s(want),
        )?),
    }
}

/// `|got - want| <= FLOAT_TOLERANCE · max(|want|, 1)` element-wise, with equal shapes.
pub(super) fn expect_close(what: &str, got: &ArrayD<f32>, want: &Value) -> Result<(), String> {
    expect_eq(&format!("{what}.shape"), got.shape().to_vec(), shape(want))?;
    let got: Vec<f32> = got.iter().copied().collect();
    expect_close_f32(what, &got, &f32s(want), FLOAT_TOLERANCE)
}

/// `expect_close` against the main value and, where recorded, the AVX2 host's value (fp16 GEMMs
/// differ by an ulp there, golden README §3).
fn expect_close_on_hosts(what: &str, got: &ArrayD<f32>, expected: &Value) -> Outcome {
    expect_close(what, got, &expected[what])?;
    match expected.pointer(&format!("/isa_variants/avx2/{what}")) {
        Some(avx2) => Ok(expect_close(&format!("{what} [avx2]"), got, avx2)?),
        None => Ok(()),
    }
}

fn linear(c: &Case) -> Outcome {
    let (e, p, inp, exp) = (engine(c), &c.params, &c.inputs, &c.expected);
    // qlab's dynamic Linear always passes reduce_range=True, as `nnqd.Linear` does; the flag is
    // then decided by the engine (qnnpack ignores it).
    if p["module_reduce_range"] != true {
        return Err("module_reduce_range other than true is not supported by qlab".into());
    }
    let w = &inp["weight_float"];
    expect_eq(
        "[out_features, in_features]",
        shape(w),
        vec![size(&p["out_features"])?, size(&p["in_features"])?],
    )?;
    expect_eq("bias", Some(!inp["bias"].is_null()), p["bias"].as_bool())?;
    let dtype = weight_dtype(p["weight_dtype"].as_str().expect("weight_dtype"));
    let m = DynamicLinear::new(
        &array(&inp["weight_float"]),
        optional(&inp["bias"], f32s),
        dtype,
        false,
    )
    .qlab()?;
    let x = array(&inp["x"]);
    let y = m.forward(&x, e).qlab()?;
    expect_weight("weight", &m.weight, &exp["weight"])?;
    if dtype == DynamicWeightDtype::Float16 {
        return expect_close_on_hosts("y", &y, exp);
    }
    let hint = &exp["act_qparams_hint"];
    let (_, q) = quantize_activation(x.as_slice().expect("standard"), e).qlab()?;
    expect_f64_bits("act scale", &[q.scale], &[num(&hint["scale"])])?;
    expect_eq(
        "act zero_point",
        q.zero_point as i64,
        hint["zero_point"].as_i64().expect("zp"),
    )?;
    expect_eq("y.shape", y.shape().to_vec(), shape(&exp["y"]))?;
    Ok(expect_f32_bits(
        "y",
        y.as_slice().expect("standard"),
        &f32s(&exp["y"]),
    )?)
}

fn lstm(c: &Case) -> Outcome {
    let (p, inp, exp) = (&c.params, &c.inputs, &c.expected);
    let flag = |k: &str| p[k].as_bool().expect("bool param");
    let size = |k: &str| p[k].as_u64().expect("size param") as usize;
    let config = LstmConfig {
        input_size: size("input_size"),
        hidden_size: size("hidden_size"),
        num_layers: size("num_layers"),
        bidirectional: flag("bidirectional"),
        batch_first: flag("batch_first"),
    };
    let names: Vec<String> = (0..config.num_layers)
        .flat_map(|l| {
            ["", "_reverse"][..config.directions()]
                .iter()
                .map(move |s| format!("_l{l}{s}"))
        })
        .collect();
    let w = &inp["weights"];
    let params: Vec<LstmFloatParams> = names
        .iter()
        .map(|n| LstmFloatParams {
            w_ih: array(&w[format!("weight_ih{n}")]),
            w_hh: array(&w[format!("weight_hh{n}")]),
            b_ih: optional(&w[format!("bias_ih{n}")], f32s),
            b_hh: optional(&w[format!("bias_hh{n}")], f32s),
        })
        .collect();
    let dtype = weight_dtype(p["weight_dtype"].as_str().expect("weight_dtype"));
    let m = DynamicLstm::new(config, &params, dtype).qlab()?;
    let (x, h0, c0) = (
        array(&inp["x"]),
        optional(&inp["h0"], array),
        optional(&inp["c0"], array),
    );
    let out = m.forward(&x, h0.as_ref(), c0.as_ref(), engine(c)).qlab()?;
    for (n, cell) in names.iter().zip(&m.cells) {
        let ws = &exp["weights"];
        expect_weight(
            &format!("weight_ih{n}"),
            &cell.ih.weight,
            &ws[format!("weight_ih{n}")],
        )?;
        expect_weight(
            &format!("weight_hh{n}"),
            &cell.hh.weight,
            &ws[format!("weight_hh{n}")],
        )?;
    }
    expect_close_on_hosts("output", &out.output, exp)?;
    expect_close_on_hosts("h_n", &out.h_n, exp)?;
    expect_close_on_hosts("c_n", &out.c_n, exp)
}
