//! Convert-time weight quantization of dynamic modules, as `quantize_dynamic` does it for each
//! qconfig: qint8 per-tensor symmetric (`default_dynamic_qconfig`, also every LSTM gate matrix),
//! qint8 per-channel symmetric along the output axis (`per_channel_dynamic_qconfig`), or float16
//! (`float16_dynamic_qconfig`). The symmetric qparams rule is written out here (NUMERICS §2.2
//! step 3 for qint8 over its full range -128..127); it is the MinMaxObserver /
//! PerChannelMinMaxObserver result, so a later merge can route it through `crate::observer`.

use crate::qnn::{PackedWeight, QnnError};
use crate::tensor::quantize::min_max;
use crate::tensor::{QDType, QTensor};
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

/// Half of the qint8 span: `(127 - (-128)) / 2`, the symmetric divisor of §2.2.
const QINT8_HALF_SPAN: f32 = 127.5;

/// The symmetric qint8 scale of values spanning `[min, max]`:
/// `max( max(-min(min, 0), max(max, 0)) / 127.5, f32::EPSILON )`, all in f32.
pub fn symmetric_qint8_scale(min: f32, max: f32) -> f32 {
    // torch.min/max propagate NaN where f32::min/max would drop it.
    if min.is_nan() || max.is_nan() {
        return f32::NAN;
    }
    let scale = (-min.min(0.0)).max(max.max(0.0)) / QINT8_HALF_SPAN;
    if scale < f32::EPSILON {
        f32::EPSILON
    } else {
        scale
    }
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
        let pack = |qt: QTensor| PackedWeight::new(op, &qt).map(DynamicWeight::QInt8);
        match dtype {
            DynamicWeightDtype::QInt8PerTensor => {
                let (lo, hi) = min_max(w);
                let scale = symmetric_qint8_scale(lo, hi) as f64;
                pack(QTensor::quantize_per_tensor(
                    w,
                    &shape,
                    scale,
                    0,
                    QDType::QInt8,
                )?)
            }
            DynamicWeightDtype::QInt8PerChannel => {
                let scales: Vec<f64> = (0..out)
                    .map(|c| {
                        let (lo, hi) = min_max(&w[c * k..(c + 1) * k]);
                        symmetric_qint8_scale(lo, hi) as f64
                    })
                    .collect();
                pack(QTensor::quantize_per_channel(
                    w,
                    &shape,
                    &scales,
                    &vec![0; out],
                    0,
                    QDType::QInt8,
                )?)
            }
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
