//! `nn.quantized.dynamic.Linear` (optionally with a fused ReLU): float in, float out, with the
//! weight converted once and the activation quantized on every call.
//!
//! int8 weights: exact i32 accumulation (§6.1), then one float epilogue per engine (§7.1 step 4).
//! The host profile never matters here: fbgemm's activations stay within 0..=128 (the reduced
//! range plus a possible tie at its top), where the int16 pair sums of AVX2 kernels cannot
//! saturate (§8: 2·128·127 = 32512 and 2·128·(-128) = -32768 both fit), and qnnpack is exact. float16 weights:
//! an f32 GEMM with the f16-rounded weights, then the bias (fbgemm only; qnnpack has no fp16
//! kernels and PyTorch raises).

use super::activation::quantize_activation;
use super::weight::{DynamicWeight, DynamicWeightDtype};
use crate::engine::Engine;
use crate::kernels::gemm::gemm_on;
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
                // Exact accumulation: nothing can saturate here (module doc).
                // Dynamic modules carry an engine, not a `Numerics`: the process's tier.
                let tier = crate::isa::selected();
                gemm_on(
                    tier,
                    rows,
                    &a,
                    q.zero_point,
                    &w.gemm_weights(),
                    false,
                    &mut acc,
                )
                .expect("the process's tier is one the host has");
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
                if engine == Engine::Qnnpack {
                    return Err(QnnError::EngineUnsupported {
                        op: "linear_prepack_fp16",
                        engine,
                    });
                }
                // fbgemm's fp16 kernel accumulates along k with FMAs from zero; PyTorch adds the
                // bias afterwards. This order reproduces the recorded VNNI-host outputs exactly.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::quantize::dequantize_val;
    use proptest::prelude::*;

    fn array(shape: &[usize], v: Vec<f32>) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    #[test]
    fn fbgemm_fuses_the_bias_add_and_qnnpack_rounds_twice() {
        // 3 · f32(1/3) = 1 + 2^-25 exactly; rounded to f32 first it is 1.0, so adding -1 gives 0.
        let third = 1.0f32 / 3.0;
        assert_eq!(
            int8_output(Engine::Fbgemm, 3, third, -1.0),
            2.0f32.powi(-25)
        );
        assert_eq!(int8_output(Engine::X86, 3, third, -1.0), 2.0f32.powi(-25));
        assert_eq!(int8_output(Engine::Qnnpack, 3, third, -1.0), 0.0);
    }

    /// W = [[0.5, -0.25], [255/256, 0]]: per-tensor scale 2^-7, q = [[64, -32], [127, 0]]
    /// (127.5 ties to 128 and clamps). x = [[0, 255/64]] on qnnpack: scale 2^-6, zp 0,
    /// q = [0, 255]. acc = [-8160, 0], multiplier 2^-13, so y = [-0.99609375, 0] + bias.
    fn hand_checked(relu: bool) -> Vec<f32> {
        let w = array(&[2, 2], vec![0.5, -0.25, 255.0 / 256.0, 0.0]);
        let m = DynamicLinear::new(
            &w,
            Some(vec![1.25, -1.0]),
            DynamicWeightDtype::QInt8PerTensor,
            relu,
        )
        .unwrap();
        let DynamicWeight::QInt8(p) = &m.weight else {
            panic!("qint8 expected")
        };
        assert_eq!(
            (p.data.as_slice(), p.scales[0]),
            (&[64, -32, 127, 0][..], 2f64.powi(-7))
        );
        let y = m
            .forward(&array(&[1, 2], vec![0.0, 255.0 / 64.0]), Engine::Qnnpack)
            .unwrap();
        assert_eq!(y.shape(), [1, 2]);
        y.into_raw_vec_and_offset().0
    }

    #[test]
    fn hand_checked_qnnpack_output() {
        assert_eq!(hand_checked(false), vec![0.25390625, -1.0]);
        assert_eq!(hand_checked(true), vec![0.25390625, 0.0]);
    }

    #[test]
    fn shapes_and_engines_are_checked() {
        let w = array(&[3, 2], vec![0.1; 6]);
        let m = DynamicLinear::new(&w, None, DynamicWeightDtype::QInt8PerChannel, false).unwrap();
        for bad in [array(&[2], vec![0.0; 2]), array(&[1, 3], vec![0.0; 3])] {
            assert!(matches!(
                m.forward(&bad, Engine::Fbgemm),
                Err(QnnError::Shape { .. })
            ));
        }
        assert!(matches!(
            DynamicLinear::new(&w, Some(vec![0.0; 2]), DynamicWeightDtype::Float16, false),
            Err(QnnError::Shape { .. })
        ));
        let half = DynamicLinear::new(&w, None, DynamicWeightDtype::Float16, false).unwrap();
        let x = array(&[1, 2], vec![1.0, 2.0]);
        assert!(matches!(
            half.forward(&x, Engine::Qnnpack),
            Err(QnnError::EngineUnsupported {
                engine: Engine::Qnnpack,
                ..
            })
        ));
        assert_eq!(half.forward(&x, Engine::Fbgemm).unwrap().shape(), [1, 3]);
    }

    #[test]
    fn empty_input_gives_empty_output() {
        let w = array(&[3, 2], vec![0.1; 6]);
        let m = DynamicLinear::new(&w, None, DynamicWeightDtype::QInt8PerTensor, false).unwrap();
        let y = m
            .forward(&array(&[0, 4, 2], vec![]), Engine::Fbgemm)
            .unwrap();
        assert_eq!(y.shape(), [0, 4, 3]);
    }

    #[test]
    fn non_finite_input_does_not_panic() {
        let w = array(&[2, 2], vec![0.5, -0.25, 1.0, 0.0]);
        let m = DynamicLinear::new(&w, None, DynamicWeightDtype::QInt8PerTensor, true).unwrap();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for engine in Engine::ALL {
                let x = array(&[1, 2], vec![bad, 1.0]);
                assert_eq!(m.forward(&x, engine).unwrap().shape(), [1, 2]);
            }
        }
    }

    proptest! {
        /// Exact accumulation makes the int8 path equal to the float product of the dequantized
        /// operands, up to the final f32 roundings.
        #[test]
        fn int8_equals_dequantized_float_product(
            (m, k, n) in (1usize..4, 1usize..9, 1usize..5),
            seed in proptest::collection::vec(-3.0f32..3.0, 4 * 8 + 8 * 4 + 4),
            per_channel in any::<bool>(),
            qnnpack in any::<bool>(),
        ) {
            let engine = if qnnpack { Engine::Qnnpack } else { Engine::Fbgemm };
            let dtype = if per_channel {
                DynamicWeightDtype::QInt8PerChannel
            } else {
                DynamicWeightDtype::QInt8PerTensor
            };
            let x = seed[..m * k].to_vec();
            let w = seed[32..32 + n * k].to_vec();
            let bias = seed[64..64 + n].to_vec();
            let lin = DynamicLinear::new(&array(&[n, k], w), Some(bias.clone()), dtype, false)
                .unwrap();
            let y = lin.forward(&array(&[m, k], x.clone()), engine).unwrap();
            let DynamicWeight::QInt8(p) = &lin.weight else { panic!("qint8 expected") };
            let (qx, q) = quantize_activation(&x, engine).unwrap();
            let xd: Vec<f64> = qx
                .iter()
                .map(|&v| dequantize_val(v as i32, q.zero_point, q.scale as f32) as f64)
                .collect();
            for (i, &got) in y.iter().enumerate() {
                let (r, c) = (i / n, i % n);
                let sw = p.scales[if per_channel { c } else { 0 }];
                let dot: f64 = (0..k)
                    .map(|j| xd[r * k + j] * (p.row(c)[j] as f64 * sw as f32 as f64))
                    .sum();
                let want = dot + bias[c] as f64;
                prop_assert!(
                    (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "y[{i}] = {got}, dequantized product {want}"
                );
            }
        }
    }
}
