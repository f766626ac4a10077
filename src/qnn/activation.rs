//! Quantized activations: `relu`, `relu6`, `hardtanh`, `clamp` (integer clamps, qparams kept)
//! and `leaky_relu`, `hardswish`, `hardsigmoid`, `sigmoid`, `tanh` (float path with output qparams).
//!
//! Rules (NUMERICS §6.5; all confirmed on every golden case of the three engines):
//! * relu: `max(q, z)`. relu6 / hardtanh / clamp: `min(max(q, Q(lo)), Q(hi))` with the bounds
//!   quantized by the scalar `quantize_val` (`z + RNE(v · 1/s)` in f32).
//! * float-path activations: split dequantize (fma body / `(q - z)·s` tail, see `pointwise`),
//!   the function in f32, vector quantize to the output qparams. The vector body's `exp` /
//!   `tanh` (Sleef in PyTorch) are modelled as rounded once from f64; the scalar tail uses libm
//!   and, for sigmoid, PyTorch's f64 sum and quotient.
//! * qnnpack engine, quint8 hardswish / sigmoid / tanh: QNNPACK's 256-entry lookup tables,
//!   built from `x = s·(i - z)` (plain f32 product) and rounded with `lrintf` after a clamp to
//!   [0, 255] (PyTorch routes them there; on the golden data they agree with the float path).
//! * sigmoid outputs scale 1/256 with zero point 0 (quint8) or -128 (qint8); tanh outputs scale
//!   2/256 with zero point 128 (quint8) or 0 (qint8), as PyTorch fixes them.

use super::QnnError;
use super::pointwise::{FloatQuirks, Lane, Operand, map_float, map_table, output};
use crate::engine::{Engine, Numerics};
use crate::tensor::quantize::dequantize_val;
use crate::tensor::{QDType, QTensor};

/// Applies an integer map to every element, keeping the input's qparams.
fn map_int(op: &'static str, x: &QTensor, f: impl Fn(i32) -> i32) -> Result<QTensor, QnnError> {
    let xo = Operand::of(op, "input", x)?;
    let values = x.int_values().into_iter().map(f).collect();
    output(xo.dtype, values, x.shape(), xo.scale, xo.zero_point as i64)
}

/// `torch.relu` on a quantized tensor.
pub fn relu(x: &QTensor) -> Result<QTensor, QnnError> {
    let z = Operand::of("relu", "input", x)?.zero_point;
    map_int("relu", x, |q| q.max(z))
}

/// `quantized::relu6`: clamp to `[z, Q(6)]`.
pub fn relu6(x: &QTensor) -> Result<QTensor, QnnError> {
    let xo = Operand::of("relu6", "input", x)?;
    let six = xo.quantize_scalar(6.0);
    map_int("relu6", x, |q| q.max(xo.zero_point).min(six))
}

/// `torch.clamp(x, min, max)` on a quantized tensor; a missing bound does not clamp.
pub fn clamp(x: &QTensor, min: Option<f32>, max: Option<f32>) -> Result<QTensor, QnnError> {
    let xo = Operand::of("clamp", "input", x)?;
    let lo = min.map_or(xo.qmin(), |v| xo.quantize_scalar(v));
    let hi = max.map_or(xo.qmax(), |v| xo.quantize_scalar(v));
    // max then min (not `clamp`): with lo > hi PyTorch returns hi everywhere.
    map_int("clamp", x, |q| q.max(lo).min(hi))
}

/// `nn.quantized.functional.hardtanh(x, min_val, max_val)`.
pub fn hardtanh(x: &QTensor, min_val: f32, max_val: f32) -> Result<QTensor, QnnError> {
    clamp(x, Some(min_val), Some(max_val))
}

/// `quantized::leaky_relu(x, negative_slope, scale, zero_point)`.
pub fn leaky_relu(
    x: &QTensor,
    negative_slope: f32,
    scale: f64,
    zero_point: i64,
) -> Result<QTensor, QnnError> {
    map_float(
        "leaky_relu",
        x,
        scale,
        zero_point,
        FloatQuirks::default(),
        |v, _| {
            if v > 0.0 { v } else { v * negative_slope }
        },
    )
}

/// Whether PyTorch sends this input to one of QNNPACK's 256-entry lookup tables (quint8 on
/// the qnnpack engine: hardswish, sigmoid, tanh).
fn uses_qnnpack_lut(x: &QTensor, numerics: Numerics) -> bool {
    numerics.engine == Engine::Qnnpack && x.dtype() == QDType::QUInt8
}

/// QNNPACK's lookup-table activation: entry `i` is `lrintf(clamp(g(s·(i - z)), 0, 255))`, where
/// `g` returns the output already in quantized units (zero point included, before rounding).
fn qnnpack_lut(
    op: &'static str,
    x: &QTensor,
    out_scale: f64,
    out_zero_point: i64,
    g: impl Fn(f32) -> f32,
) -> Result<QTensor, QnnError> {
    let xo = Operand::unary(op, x, out_scale, out_zero_point)?;
    let table: Vec<i32> = (0..256)
        .map(|i| {
            let v = g(dequantize_val(i, xo.zero_point, xo.scale as f32));
            // NaN clamps to NaN and converts to 0, as lrintf + (uint8_t) does in practice.
            v.clamp(0.0, 255.0).round_ties_even() as i32
        })
        .collect();
    map_table(x, &table, x.numel(), &[], out_scale, out_zero_point)
}

/// `exp` rounded once from f64: stands in for Sleef's `expf_u10` in PyTorch's vector lambdas,
/// which is correctly rounded on nearly every input (libm's `expf` serves the scalar tails).
fn exp_rounded_once(v: f32) -> f32 {
    (v as f64).exp() as f32
}

/// `x · min(max(x + 3, 0), 6) / 6` in f32.
fn hardswish_f32(v: f32) -> f32 {
    v * (v + 3.0).clamp(0.0, 6.0) / 6.0
}

/// `quantized::hardswish(x, scale, zero_point)`. On qnnpack (quint8) QNNPACK's table adds the
/// zero point before rounding: `lrintf(hardswish(x) · f32(1/s_y) + z_y)`.
pub fn hardswish(
    x: &QTensor,
    scale: f64,
    zero_point: i64,
    numerics: Numerics,
) -> Result<QTensor, QnnError> {
    if uses_qnnpack_lut(x, numerics) {
        let inv = 1.0f32 / scale as f32;
        qnnpack_lut("hardswish", x, scale, zero_point, |v| {
            inv * hardswish_f32(v) + zero_point as f32
        })
    } else {
        // qhardswish_kernel passes the f64 scales along: the tail dequantizes with the f64 input
        // scale and the vector body forms 1/s_out in f64.
        let quirks = FloatQuirks {
            tail_f64_scale: true,
            body_inverse_f64: true,
        };
        map_float("hardswish", x, scale, zero_point, quirks, |v, _| {
            hardswish_f32(v)
        })
    }
}

/// `min(max(x + 3, 0), 6) / 6` in f32.
fn hardsigmoid_f32(v: f32) -> f32 {
    (v + 3.0).clamp(0.0, 6.0) / 6.0
}

/// `F.hardsigmoid` on a quantized tensor: fixed output qparams, scale 1/256 with zero point 0
/// (quint8) or -128 (qint8). qnnpack (quint8) uses QNNPACK's table
/// `lrintf(f32(1/(1/256)) · hardsigmoid(x))`; elsewhere `qhardsigmoid_kernel`'s float path with
/// the f32 input scale.
pub fn hardsigmoid(x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
    const SCALE: f64 = 1.0 / 256.0;
    if uses_qnnpack_lut(x, numerics) {
        return qnnpack_lut("hardsigmoid", x, SCALE, 0, |v| 256.0 * hardsigmoid_f32(v));
    }
    let zero_point = if Operand::of("hardsigmoid", "input", x)?.dtype == QDType::QInt8 {
        -128
    } else {
        0
    };
    map_float(
        "hardsigmoid",
        x,
        SCALE,
        zero_point,
        FloatQuirks::default(),
        |v, _| hardsigmoid_f32(v),
    )
}

/// `torch.sigmoid` on a quantized tensor: `1 / (1 + exp(-x))` in f32 (QNNPACK's table on
/// qnnpack: `lrintf(256 / (1 + expf(-x)))`).
pub fn sigmoid(x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
    const SCALE: f64 = 1.0 / 256.0;
    if uses_qnnpack_lut(x, numerics) {
        return qnnpack_lut("sigmoid", x, SCALE, 0, |v| 256.0 / (1.0 + (-v).exp()));
    }
    let zero_point = if Operand::of("sigmoid", "input", x)?.dtype == QDType::QInt8 {
        -128
    } else {
        0
    };
    map_float(
        "sigmoid",
        x,
        SCALE,
        zero_point,
        FloatQuirks::default(),
        |v, lane| match lane {
            Lane::Vector => 1.0 / (1.0 + exp_rounded_once(-v)),
            // `1.0f / (1.0 + std::exp(-x))`: expf, then the sum and quotient in f64.
            Lane::Scalar => (1.0 / (1.0 + (-v).exp() as f64)) as f32,
        },
    )
}

/// `torch.tanh` on a quantized tensor (QNNPACK's table on qnnpack:
/// `lrintf(f32(128·tanh(x) + 128))` with the double `tanh` and sum).
pub fn tanh(x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
    const SCALE: f64 = 2.0 / 256.0;
    if uses_qnnpack_lut(x, numerics) {
        // tanh.c calls the double `tanh`, so the scaling and offset happen in f64.
        return qnnpack_lut("tanh", x, SCALE, 128, |v| {
            (128.0 * (v as f64).tanh() + 128.0) as f32
        });
    }
    let zero_point = if Operand::of("tanh", "input", x)?.dtype == QDType::QUInt8 {
        128
    } else {
        0
    };
    map_float(
        "tanh",
        x,
        SCALE,
        zero_point,
        FloatQuirks::default(),
        |v, lane| match lane {
            Lane::Vector => (v as f64).tanh() as f32,
            Lane::Scalar => v.tanh(),
        },
    )
}

/// PyTorch keeps these modules' output qparams in f32 buffers, so the scale they report (and
/// quantize to) is the f32-rounded value.
fn module_scale(scale: f64) -> f64 {
    scale as f32 as f64
}

/// `nn.quantized.ReLU6`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReLU6;

impl ReLU6 {
    pub fn forward(&self, x: &QTensor) -> Result<QTensor, QnnError> {
        relu6(x)
    }
}

/// `nn.quantized.Hardtanh` (bounds default to -1 and 1 as in PyTorch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hardtanh {
    pub min_val: f32,
    pub max_val: f32,
}

impl Default for Hardtanh {
    fn default() -> Self {
        Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }
    }
}

impl Hardtanh {
    pub fn forward(&self, x: &QTensor) -> Result<QTensor, QnnError> {
        hardtanh(x, self.min_val, self.max_val)
    }
}

/// `nn.quantized.LeakyReLU(scale, zero_point, negative_slope)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyReLU {
    pub scale: f64,
    pub zero_point: i64,
    pub negative_slope: f32,
}

impl LeakyReLU {
    pub fn new(scale: f64, zero_point: i64, negative_slope: f32) -> Self {
        LeakyReLU {
            scale: module_scale(scale),
            zero_point,
            negative_slope,
        }
    }

    pub fn forward(&self, x: &QTensor) -> Result<QTensor, QnnError> {
        leaky_relu(x, self.negative_slope, self.scale, self.zero_point)
    }
}

/// `nn.quantized.Hardswish(scale, zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hardswish {
    pub scale: f64,
    pub zero_point: i64,
}

impl Hardswish {
    pub fn new(scale: f64, zero_point: i64) -> Self {
        Hardswish {
            scale: module_scale(scale),
            zero_point,
        }
    }

    pub fn forward(&self, x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
        hardswish(x, self.scale, self.zero_point, numerics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::HostProfile;
    use crate::tensor::{QParams, QStorage};

    fn n(e: Engine) -> Numerics {
        Numerics::new(e, HostProfile::Vnni)
    }

    fn q(dtype: QDType, values: &[i32], scale: f64, zero_point: i64) -> QTensor {
        QTensor::from_int_repr(
            QStorage::from_i32(dtype, values.iter().copied()),
            &[values.len()],
            QParams::PerTensor { scale, zero_point },
        )
        .unwrap()
    }

    #[test]
    fn clamps_use_quantized_bounds() {
        let x = q(QDType::QInt8, &[-128, -11, 0, 100, 127], 0.5, -10);
        assert_eq!(relu(&x).unwrap().int_values(), vec![-10, -10, 0, 100, 127]);
        // Q(6) = -10 + 12 = 2.
        assert_eq!(relu6(&x).unwrap().int_values(), vec![-10, -10, 0, 2, 2]);
        // Q(-0.75) = -10 + RNE(-1.5) = -12, Q(1.25) = -10 + RNE(2.5) = -8: ties to even.
        assert_eq!(
            hardtanh(&x, -0.75, 1.25).unwrap().int_values(),
            vec![-12, -11, -8, -8, -8]
        );
        assert_eq!(
            clamp(&x, None, Some(0.0)).unwrap().int_values(),
            vec![-128, -11, -10, -10, -10]
        );
        // Crossed bounds give the upper bound everywhere, as PyTorch does.
        assert_eq!(
            clamp(&x, Some(1.0), Some(-1.0)).unwrap().int_values(),
            vec![-12; 5]
        );
    }

    #[test]
    fn fixed_output_qparams() {
        let x = q(QDType::QUInt8, &[0, 128, 255], 0.1, 128);
        let s = sigmoid(&x, n(Engine::Fbgemm)).unwrap();
        assert_eq!(
            (s.q_scale().unwrap(), s.q_zero_point().unwrap()),
            (1.0 / 256.0, 0)
        );
        assert_eq!(s.int_values()[1], 128);
        let t = tanh(&x, n(Engine::Fbgemm)).unwrap();
        assert_eq!(
            (t.q_scale().unwrap(), t.q_zero_point().unwrap()),
            (2.0 / 256.0, 128)
        );
        assert_eq!(t.int_values()[1], 128);
        let t = tanh(&q(QDType::QInt8, &[0], 0.1, 0), n(Engine::Qnnpack)).unwrap();
        assert_eq!(t.q_zero_point().unwrap(), 0);
    }

    #[test]
    fn qnnpack_hardswish_table_adds_the_zero_point_before_rounding() {
        // x = 3 → hardswish 3 → 3 / 2 = 1.5 in output units. fbgemm: RNE(1.5) + 1 = 3;
        // QNNPACK's table: lrintf(1.5 + 1) = 2.
        let x = q(QDType::QUInt8, &[3], 1.0, 0);
        assert_eq!(
            hardswish(&x, 2.0, 1, n(Engine::Fbgemm))
                .unwrap()
                .int_values(),
            vec![3]
        );
        assert_eq!(
            hardswish(&x, 2.0, 1, n(Engine::Qnnpack))
                .unwrap()
                .int_values(),
            vec![2]
        );
        // qint8 stays on the float path on qnnpack.
        let x = q(QDType::QInt8, &[3], 1.0, 0);
        assert_eq!(
            hardswish(&x, 2.0, 1, n(Engine::Qnnpack))
                .unwrap()
                .int_values(),
            vec![3]
        );
    }

    #[test]
    fn modules_round_their_scale_to_f32() {
        assert_eq!(Hardswish::new(0.025, 20).scale, 0.025f32 as f64);
        assert_eq!(LeakyReLU::new(0.03, 50, 0.1).scale, 0.03f32 as f64);
    }

    #[test]
    fn errors_are_typed() {
        let e = q(QDType::QUInt8, &[], 0.1, 0);
        assert!(matches!(relu(&e), Err(QnnError::EmptyInput { .. })));
        let x = q(QDType::QUInt8, &[1], 0.1, 0);
        assert!(matches!(
            leaky_relu(&x, 0.1, 0.1, 300),
            Err(QnnError::Tensor(_))
        ));
    }
}
