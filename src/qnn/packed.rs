//! Packed weights: the int8 weight matrix of a linear or conv layer in the row-major `[out, k]`
//! order the kernels read, with its qparams and per-row sums precomputed at convert time. Fast
//! tiers may change the layout behind this type without touching callers.

use super::QnnError;
use crate::kernels::gemm::{GemmWeights, PackCache};
use crate::tensor::{QDType, QParams, QTensor};

/// An int8 weight with one scale / zero point per output row (or one for all).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeight {
    /// `[out, k]` row-major. Treat as read-only once built: the GEMM panels cached from it are
    /// not rebuilt if it changes (build a new `PackedWeight` instead).
    pub data: Vec<i8>,
    pub out: usize,
    pub k: usize,
    /// Stored scales (f64, as PyTorch keeps them): one, or one per output row.
    pub scales: Vec<f64>,
    /// Zero points: one, or one per output row.
    pub zero_points: Vec<i32>,
    /// The weight's original shape (`[out, in]` or `[out, in/groups, k...]`).
    pub shape: Vec<usize>,
    /// The fast kernels' panel layouts of `data`, built on first use.
    cache: PackCache,
}

impl PackedWeight {
    /// Packs a qint8 weight whose dim 0 is the output channel (per-channel axis must be 0).
    pub fn new(op: &'static str, w: &QTensor) -> Result<PackedWeight, QnnError> {
        if w.dtype() != QDType::QInt8 {
            return Err(QnnError::Operand {
                op,
                operand: "weight",
                expected: "qint8",
                got: w.dtype().to_string(),
            });
        }
        let shape = w.shape().to_vec();
        let out = *shape.first().ok_or_else(|| QnnError::Shape {
            op,
            detail: "weight is 0-d".into(),
        })?;
        let k = w.numel().checked_div(out).unwrap_or(0);
        let (scales, zero_points) = match w.qparams() {
            QParams::PerTensor { scale, zero_point } => (vec![*scale], vec![*zero_point as i32]),
            QParams::PerChannel {
                scales,
                zero_points,
                axis: 0,
            } => (
                scales.clone(),
                zero_points.iter().map(|&z| z as i32).collect(),
            ),
            QParams::PerChannel { axis, .. } => {
                return Err(QnnError::Operand {
                    op,
                    operand: "weight",
                    expected: "per-tensor or per-channel along axis 0",
                    got: format!("per-channel along axis {axis}"),
                });
            }
        };
        let data = w.int_values().into_iter().map(|v| v as i8).collect();
        Ok(PackedWeight {
            data,
            out,
            k,
            scales,
            zero_points,
            shape,
            cache: PackCache::default(),
        })
    }

    /// The GEMM operand over all rows, with the cached panels.
    pub fn gemm_weights(&self) -> GemmWeights<'_> {
        GemmWeights {
            data: &self.data,
            n: self.out,
            k: self.k,
            zero_points: &self.zero_points,
            cache: Some(&self.cache),
        }
    }

    /// The weight row of output channel `c`.
    pub fn row(&self, c: usize) -> &[i8] {
        &self.data[c * self.k..(c + 1) * self.k]
    }
}
