//! Per-call activation quantization of dynamic ops (NUMERICS §7.1 steps 1–3): min/max over the
//! whole input, qparams by the C++ `ChooseQuantizationParams` (§2.8) onto `0..=qmax` with qmax
//! from the engine (127 on fbgemm/x86, which pass reduce_range; 255 on qnnpack, which ignores it),
//! then quint8 values. Empty input uses the range [0, 0], as PyTorch does ("no output data will
//! be generated, so use arbitrary qparams").
//!
//! The quantize rule differs per engine. qnnpack calls `at::quantize_per_tensor` (§1.2:
//! `RNE(x·inv) + zp`). fbgemm quantizes while packing the activation matrix
//! (`PackAWithQuantRowOffset` → `QuantizeAvx2<uint8_t, LEGACY = true>`): `RNE(fma(x, inv, zp))`,
//! one rounding of the exact `x·inv + zp`, so ties and near-ties can land one step apart from the
//! §1.2 rule. Both clamp to quint8's 0..=255; on fbgemm a tie at the top of the range can give 128.

use crate::engine::Engine;
use crate::qnn::QnnError;
use crate::tensor::quantize::{CLIP_BELOW_2_31, inv_scale, min_max, quantize_val_8bit};
use crate::tensor::{ChosenQParams, choose_quantization_params};

/// fbgemm's packing quantizer: `x·inv + zp` fused, clipped below 2^31 (NaN too, as `minps`
/// returns its second operand), rounded to nearest even (below -2^31 saturates), clamped.
#[inline]
fn quantize_fused(x: f32, inv: f32, zero_point: i32) -> u8 {
    let v = x.mul_add(inv, zero_point as f32);
    let v = if v.is_nan() || v > CLIP_BELOW_2_31 {
        CLIP_BELOW_2_31
    } else {
        v
    };
    (v.round_ties_even() as i32).clamp(0, 255) as u8
}

/// Quantizes `x` with qparams chosen from its own range; returns the u8 values and the qparams.
pub fn quantize_activation(
    x: &[f32],
    engine: Engine,
) -> Result<(Vec<u8>, ChosenQParams), QnnError> {
    let (lo, hi) = min_max(x);
    let q = choose_quantization_params(lo, hi, 0, engine.dynamic_activation_qmax(), false, false)?;
    let inv = inv_scale(q.scale);
    let z = q.zero_point;
    let values = if engine.float_requant() {
        x.iter().map(|&v| quantize_fused(v, inv, z)).collect()
    } else {
        x.iter()
            .map(|&v| quantize_val_8bit(v, inv, z, 0, 255) as u8)
            .collect()
    };
    Ok((values, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_depends_on_engine() {
        let x = [-1.0, 0.0, 3.0];
        let (fb, qf) = quantize_activation(&x, Engine::Fbgemm).unwrap();
        let (qn, qq) = quantize_activation(&x, Engine::Qnnpack).unwrap();
        assert_eq!(qf.scale, 4.0 / 127.0);
        assert_eq!(qq.scale, 4.0 / 255.0);
        assert_eq!((fb[2], qn[2]), (127, 255));
        assert_eq!((qf.zero_point, qq.zero_point), (32, 64));
    }

    #[test]
    fn fbgemm_rounds_after_adding_the_zero_point() {
        // 0.5 + 1 = 1.5 ties to 2; the §1.2 rule rounds 0.5 to 0 first and gives 1.
        assert_eq!(quantize_fused(0.5, 1.0, 1), 2);
        assert_eq!(quantize_val_8bit(0.5, 1.0, 1, 0, 255), 1);
        // [-1.5, 125.5] on fbgemm: scale 1, zero point RNE(1.5) = 2, so the maximum lands on the
        // tie 127.5 and rounds to 128, above qmax = 127 (quint8's clamp is what applies).
        let (q, p) = quantize_activation(&[-1.5, 125.5], Engine::Fbgemm).unwrap();
        assert_eq!((p.scale, p.zero_point), (1.0, 2));
        assert_eq!(q, vec![0, 128]);
        assert_eq!(quantize_fused(f32::NAN, 1.0, 0), 255);
        assert_eq!(quantize_fused(f32::NEG_INFINITY, 1.0, 0), 0);
    }

    #[test]
    fn empty_input_gets_the_default_scale() {
        let (q, p) = quantize_activation(&[], Engine::Fbgemm).unwrap();
        assert!(q.is_empty());
        assert_eq!((p.scale, p.zero_point), (0.1, 0));
    }
}
