//! Per-call activation quantization of dynamic ops (NUMERICS §7.1 steps 1–3): min/max over the
//! whole input, qparams by the C++ `ChooseQuantizationParams` (§2.8) onto `0..=qmax` with qmax
//! from the engine (127 on fbgemm/x86, which pass reduce_range; 255 on qnnpack, which ignores it),
//! then the quint8 quantize rule of §1.2. Empty input uses the range [0, 0], as PyTorch does
//! ("no output data will be generated, so use arbitrary qparams").

use crate::engine::Engine;
use crate::qnn::QnnError;
use crate::tensor::quantize::{inv_scale, min_max, quantize_val_8bit};
use crate::tensor::{ChosenQParams, choose_quantization_params};

/// Quantizes `x` with qparams chosen from its own range; returns the u8 values and the qparams.
pub fn quantize_activation(
    x: &[f32],
    engine: Engine,
) -> Result<(Vec<u8>, ChosenQParams), QnnError> {
    let (lo, hi) = min_max(x);
    let qmax = engine.dynamic_activation_qmax();
    let q = choose_quantization_params(lo, hi, 0, qmax, false, false)?;
    let inv = inv_scale(q.scale);
    let values = x
        .iter()
        .map(|&v| quantize_val_8bit(v, inv, q.zero_point, 0, qmax) as u8)
        .collect();
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
    fn empty_input_gets_the_default_scale() {
        let (q, p) = quantize_activation(&[], Engine::Fbgemm).unwrap();
        assert!(q.is_empty());
        assert_eq!((p.scale, p.zero_point), (0.1, 0));
    }
}
