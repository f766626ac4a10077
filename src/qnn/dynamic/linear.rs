//! `nn.quantized.dynamic.Linear` (optionally with a fused ReLU): float in, float out, with the
//! weight converted once and the activation quantized on every call.
//!
//! int8 weights: exact i32 accumulation (§6.1), then one float epilogue per engine (§7.1 step 4).
//! The host profile never matters here: fbgemm's activations stay within 0..=127, where the
//! int16 pair sums of AVX2 kernels cannot saturate (§8), and qnnpack is exact. float16 weights:
//! an f32 GEMM with the f16-rounded weights, then the bias (fbgemm only; qnnpack has no fp16
//! kernels and PyTorch raises).

use super::activation::quantize_activation;
use super::weight::{DynamicWeight, DynamicWeightDtype};
use crate::engine::Engine;
use crate::kernels::reference::gemm_u8_i8_i32;
use crate::qnn::QnnError;
use ndarray::{ArrayD, IxDyn};

const OP: &str = "linear_dynamic";

/// A dynamically quantized Linear layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicLinear {
    pub weight: DynamicWeight,
    /// Float bias, as PyTorch keeps it.
    pub bias: Option<Vec<f32>>,
    pub relu: bool,
}

/// The int8 output rule of `engine`: `y = acc · (s_x·s_w) + b`.
#[inline]
fn int8_output(engine: Engine, acc: i32, multiplier: f32, bias: f32) -> f32 {
    if engine.float_requant() {
        // fbgemm's float requantization is one fused multiply-add (§7.1: unfused is off by an
        // ulp ~30 % of the time).
        (acc as f32).mul_add(multiplier, bias)
    } else {
        (acc as f32) * multiplier + bias
    }
}

impl DynamicLinear {
    /// Converts a float `weight [out, in]` and optional bias `[out]` as `quantize_dynamic` does.
    pub fn new(
        weight: &ArrayD<f32>,
        bias: Option<Vec<f32>>,
        dtype: DynamicWeightDtype,
        relu: bool,
    ) -> Result<DynamicLinear, QnnError> {
        let &[out, k] = weight.shape() else {
            return Err(QnnError::Shape {
                op: OP,
                detail: format!("weight must be [out, in], got {:?}", weight.shape()),
            });
        };
        if let Some(b) = &bias
            && b.len() != out
        {
            return Err(QnnError::Shape {
                op: OP,
                detail: format!("bias has {} values for {out} outputs", b.len()),
            });
        }
        let w = weight.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        Ok(DynamicLinear {
            weight: DynamicWeight::convert(OP, w, out, k, dtype)?,
            bias,
            relu,
        })
    }

    pub fn in_features(&self) -> usize {
        self.weight.k()
    }

    pub fn out_features(&self) -> usize {
        self.weight.out()
    }

    /// Runs on `x [..., in]` (rank ≥ 2, as PyTorch requires) and returns `[..., out]`.
    pub fn forward(&self, x: &ArrayD<f32>, engine: Engine) -> Result<ArrayD<f32>, QnnError> {
        let k = self.in_features();
        if x.ndim() < 2 || x.shape()[x.ndim() - 1] != k {
            return Err(QnnError::Shape {
                op: OP,
                detail: format!(
                    "input must be [..., {k}] with rank >= 2, got {:?}",
                    x.shape()
                ),
            });
        }
        let rows = x.shape()[..x.ndim() - 1].iter().product();
        let xs = x.as_standard_layout();
        let y = self.forward_rows(xs.as_slice().expect("standard layout"), rows, engine)?;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank >= 2") = self.out_features();
        Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("output shape"))
    }

    /// Runs on `rows` row-major rows of `in_features` values (one activation range for all).
    pub(crate) fn forward_rows(
        &self,
        x: &[f32],
        rows: usize,
        engine: Engine,
    ) -> Result<Vec<f32>, QnnError> {
        let (n, k) = (self.out_features(), self.in_features());
        debug_assert_eq!(x.len(), rows * k);
        let bias = |c: usize| self.bias.as_ref().map_or(0.0, |b| b[c]);
        let mut y = match &self.weight {
            DynamicWeight::QInt8(w) => {
                let (a, q) = quantize_activation(x, engine)?;
                let mut acc = vec![0i32; rows * n];
                gemm_u8_i8_i32(
                    rows,
                    n,
                    k,
                    &a,
                    q.zero_point,
                    &w.data,
                    &w.zero_points,
                    false,
                    &mut acc,
                );
                let sx = q.scale as f32;
                let multipliers: Vec<f32> = (0..n)
                    .map(|c| sx * w.scales[if w.scales.len() == 1 { 0 } else { c }] as f32)
                    .collect();
                acc.iter()
                    .enumerate()
                    .map(|(i, &v)| int8_output(engine, v, multipliers[i % n], bias(i % n)))
                    .collect::<Vec<f32>>()
            }
            DynamicWeight::Float16 { values, .. } => {
                if !engine.float_requant() {
                    return Err(QnnError::EngineUnsupported {
                        op: "linear_prepack_fp16",
                        engine,
                    });
                }
                (0..rows * n)
                    .map(|i| {
                        let (r, c) = (i / n, i % n);
                        let dot = x[r * k..(r + 1) * k]
                            .iter()
                            .zip(&values[c * k..(c + 1) * k])
                            .fold(0.0f32, |s, (&a, &w)| a.mul_add(w, s));
                        dot + bias(c)
                    })
                    .collect()
            }
        };
        if self.relu {
            // fbgemm's fused epilogue is std::max(0, y): NaN becomes 0.
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Ok(y)
    }
}
