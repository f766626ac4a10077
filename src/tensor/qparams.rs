//! Quantization parameters as PyTorch stores them: f64 scales and i64 zero points.

use super::{QDType, QScheme, TensorError};
use serde::{Deserialize, Serialize};

/// The qparams of a quantized tensor. Symmetric schemes are stored as their affine form with the
/// symmetric zero point, which is what PyTorch does at convert time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QParams {
    /// One scale and zero point for the whole tensor.
    PerTensor { scale: f64, zero_point: i64 },
    /// One scale and zero point per index along `axis`.
    PerChannel {
        scales: Vec<f64>,
        zero_points: Vec<i64>,
        axis: usize,
    },
}

impl QParams {
    /// The scheme a tensor with these qparams reports (`per_tensor_affine` or `per_channel_affine`).
    pub fn qscheme(&self) -> QScheme {
        match self {
            QParams::PerTensor { .. } => QScheme::PerTensorAffine,
            QParams::PerChannel { .. } => QScheme::PerChannelAffine,
        }
    }

    /// Scale and zero point that apply to channel `c` (the only pair for per-tensor qparams).
    pub fn channel(&self, c: usize) -> (f64, i64) {
        match self {
            QParams::PerTensor { scale, zero_point } => (*scale, *zero_point),
            QParams::PerChannel {
                scales,
                zero_points,
                ..
            } => (scales[c], zero_points[c]),
        }
    }

    /// Checks these qparams against a dtype and a tensor shape.
    pub fn validate(&self, dtype: QDType, shape: &[usize]) -> Result<(), TensorError> {
        match self {
            QParams::PerTensor { scale, zero_point } => {
                check_scale(*scale)?;
                check_zero_point(*zero_point, dtype)
            }
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } => {
                if *axis >= shape.len() {
                    return Err(TensorError::AxisOutOfBounds {
                        axis: *axis as i64,
                        ndim: shape.len(),
                    });
                }
                let axis_len = shape[*axis];
                if scales.len() != zero_points.len() || scales.len() != axis_len {
                    return Err(TensorError::ChannelCountMismatch {
                        scales: scales.len(),
                        zero_points: zero_points.len(),
                        axis_len,
                    });
                }
                scales.iter().try_for_each(|&s| check_scale(s))?;
                zero_points
                    .iter()
                    .try_for_each(|&z| check_zero_point(z, dtype))
            }
        }
    }
}

/// Rejects scales PyTorch would take but that can only produce garbage (NaN, inf, 0, negative).
pub(crate) fn check_scale(scale: f64) -> Result<(), TensorError> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(TensorError::BadScale { scale })
    }
}

/// Rejects a zero point that the storage type cannot represent.
pub(crate) fn check_zero_point(zero_point: i64, dtype: QDType) -> Result<(), TensorError> {
    if (dtype.qmin()..=dtype.qmax()).contains(&zero_point) {
        Ok(())
    } else {
        Err(TensorError::ZeroPointOutOfRange {
            zero_point,
            dtype: dtype.name(),
            qmin: dtype.qmin(),
            qmax: dtype.qmax(),
        })
    }
}

/// Resolves a possibly negative axis against a rank, as PyTorch's `dim` arguments allow.
pub(crate) fn resolve_axis(axis: i64, ndim: usize) -> Result<usize, TensorError> {
    // A 0-d tensor accepts dim 0 and -1, like PyTorch.
    let n = ndim.max(1) as i64;
    let a = if axis < 0 { axis + n } else { axis };
    if (0..n).contains(&a) {
        Ok(a as usize)
    } else {
        Err(TensorError::AxisOutOfBounds { axis, ndim })
    }
}
