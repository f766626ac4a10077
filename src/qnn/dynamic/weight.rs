//! Convert-time weight quantization of dynamic modules, as `quantize_dynamic` does it for each
//! qconfig: qint8 per-tensor symmetric (`default_dynamic_qconfig`, also every LSTM gate matrix),
//! qint8 per-channel symmetric along the output axis (`per_channel_dynamic_qconfig`), or float16
//! (`float16_dynamic_qconfig`). The qint8 weights go through the same observers those qconfigs
//! name (`default_weight_observer`, `default_per_channel_weight_observer`), so the qparams rule
//! lives in one place: `crate::observer`.

use crate::observer::observe_and_quantize;
use crate::qconfig::presets::{default_per_channel_weight_observer, default_weight_observer};
use crate::qnn::{PackedWeight, QnnError};
use half::f16;

/// Which weight representation a dynamic module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DynamicWeightDtype {
    /// qint8, one symmetric scale for the whole matrix.
    QInt8PerTensor,
    /// qint8, one symmetric scale per output row (axis 0).
    QInt8PerChannel,
    /// IEEE half precision, kept as the f32 values of the f16s.
    Float16,
}

/// A dynamic module's converted weight `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
pub enum DynamicWeight {
    /// Symmetric qint8 (zero points 0), packed for the u8×s8 GEMM.
    QInt8(PackedWeight),
    /// f16-rounded values, row-major `[out, k]`.
    Float16 {
        values: Vec<f32>,
        out: usize,
        k: usize,
    },
}

/// `f32(f16(clamp(w, ±65504)))`: PyTorch saturates before the round-to-nearest-even cast.
pub fn round_to_f16(w: f32) -> f32 {
    let max = f16::MAX.to_f32();
    f16::from_f32(w.clamp(-max, max)).to_f32()
}

impl DynamicWeight {
    /// Converts a float weight (row-major `[out, k]`) to `dtype`.
    pub fn convert(
        op: &'static str,
        w: &[f32],
        out: usize,
        k: usize,
        dtype: DynamicWeightDtype,
    ) -> Result<DynamicWeight, QnnError> {
        if w.len() != out * k {
            return Err(QnnError::Shape {
                op,
                detail: format!("weight has {} values for [{out}, {k}]", w.len()),
            });
        }
        let shape = [out, k];
        let observed = |spec| -> Result<DynamicWeight, QnnError> {
            let (q, _) = observe_and_quantize(&spec, w, &shape)?;
            Ok(DynamicWeight::QInt8(PackedWeight::new(op, &q)?))
        };
        match dtype {
            DynamicWeightDtype::QInt8PerTensor => observed(default_weight_observer()),
            DynamicWeightDtype::QInt8PerChannel => observed(default_per_channel_weight_observer()),
            DynamicWeightDtype::Float16 => Ok(DynamicWeight::Float16 {
                values: w.iter().map(|&v| round_to_f16(v)).collect(),
                out,
                k,
            }),
        }
    }

    /// Output features (rows).
    pub fn out(&self) -> usize {
        match self {
            DynamicWeight::QInt8(p) => p.out,
            DynamicWeight::Float16 { out, .. } => *out,
        }
    }

    /// Input features (columns).
    pub fn k(&self) -> usize {
        match self {
            DynamicWeight::QInt8(p) => p.k,
            DynamicWeight::Float16 { k, .. } => *k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scale the dynamic weight observer gives values spanning `[min, max]`.
    fn symmetric_qint8_scale(min: f32, max: f32) -> f32 {
        crate::observer::qparams_from_min_max(&[min], &[max], None, &default_weight_observer())
            .unwrap()
            .scales[0]
    }

    #[test]
    fn symmetric_scale_uses_the_larger_magnitude_and_eps_floor() {
        // NUMERICS §2.2 example: qint8 symmetric on [-1, 3] → 3 / 127.5.
        assert_eq!(symmetric_qint8_scale(-1.0, 3.0), 0.023529412);
        assert_eq!(symmetric_qint8_scale(-3.0, 1.0), 3.0f32 / 127.5);
        assert_eq!(symmetric_qint8_scale(0.0, 0.0), f32::EPSILON);
        assert!(symmetric_qint8_scale(f32::NAN, f32::NAN).is_nan());
    }

    #[test]
    fn f16_rounding_saturates_and_flushes() {
        // NUMERICS §7.3: 1e6 is stored as 65504, 1e-8 becomes 0.
        assert_eq!(round_to_f16(1e6), 65504.0);
        assert_eq!(round_to_f16(-1e6), -65504.0);
        assert_eq!(round_to_f16(1e-8), 0.0);
        assert_eq!(round_to_f16(1.0 + 1.0 / 4096.0), 1.0, "ties to even");
    }

    #[test]
    fn non_finite_weights_are_rejected_not_packed() {
        for bad in [f32::NAN, f32::INFINITY] {
            for dtype in [
                DynamicWeightDtype::QInt8PerTensor,
                DynamicWeightDtype::QInt8PerChannel,
            ] {
                let r = DynamicWeight::convert("t", &[bad, 1.0], 1, 2, dtype);
                assert!(matches!(r, Err(QnnError::Tensor(_))), "{dtype:?}: {r:?}");
            }
        }
        // float16 keeps NaN and saturates infinities, as PyTorch's clamp-then-cast does.
        let r = DynamicWeight::convert("t", &[f32::INFINITY], 1, 1, DynamicWeightDtype::Float16);
        assert!(matches!(r, Ok(DynamicWeight::Float16 { values, .. }) if values == [65504.0]));
    }

    #[test]
    fn per_channel_scales_follow_each_row() {
        let w = [1.0, -2.0, 0.5, 0.25];
        let DynamicWeight::QInt8(p) =
            DynamicWeight::convert("t", &w, 2, 2, DynamicWeightDtype::QInt8PerChannel).unwrap()
        else {
            panic!("qint8 expected")
        };
        assert_eq!(
            p.scales,
            vec![(2.0f32 / 127.5) as f64, (0.5f32 / 127.5) as f64]
        );
        assert_eq!(p.zero_points, vec![0, 0]);
        // -2 · f32(1/s) lands just above -127.5, so the row minimum is -127, not -128.
        assert_eq!(p.data, vec![64, -127, 127, 64]);
    }
}
