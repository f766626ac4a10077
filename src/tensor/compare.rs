//! Comparisons, equality, cloning and copying of quantized tensors.
//!
//! PyTorch's quantized comparators (`eq/ne/ge/le/gt/lt`, `QTensor.cpp`) dequantize both sides and
//! compare the floats, broadcasting as float comparisons do; a Python float operand is compared
//! in f32 against the dequantized tensor. `torch.equal` on quantized tensors is stricter: equal
//! only when dtype, quantizer (scheme, scales, zero points, axis) and shape agree and the stored
//! integers are identical. `copy_` from a quantized source keeps the integers and takes over the
//! source's quantizer (same scheme and dtype required); `copy_` from floats quantizes with the
//! destination's qparams into a contiguous destination of the same shape.

use super::qtensor::{advance, contiguous_strides};
use super::{QParams, QTensor, TensorError};

/// A comparison of two values, as the six PyTorch comparators apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

impl CmpOp {
    /// The IEEE comparison: NaN is unequal to everything, so only `Ne` holds for it.
    fn holds(self, a: f32, b: f32) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Ge => a >= b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Lt => a < b,
        }
    }
}

/// The shape two shapes broadcast to (trailing dims aligned; 1 stretches).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let y = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (x, y) {
                _ if x == y => Some(x),
                (1, _) => Some(y),
                (_, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Row-major `values` of `shape` repeated out to `target` (which `shape` must broadcast to).
fn broadcast_to<T: Copy>(values: &[T], shape: &[usize], target: &[usize]) -> Vec<T> {
    let lead = target.len() - shape.len();
    let own = contiguous_strides(shape);
    let strides: Vec<usize> = (0..target.len())
        .map(|i| match i.checked_sub(lead) {
            Some(j) if shape[j] != 1 => own[j],
            _ => 0,
        })
        .collect();
    let count: usize = target.iter().product();
    let mut idx = vec![0usize; target.len()];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(values[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        advance(&mut idx, target);
    }
    out
}

/// The six named comparators, each a thin call of `compare` / `compare_scalar` with its `CmpOp`.
macro_rules! comparators {
    ($($op:ident, $scalar:ident, $cmp:ident, $doc:literal;)*) => {
        impl QTensor {
            $(
                #[doc = concat!("`torch.", stringify!($op), "(a, b)` on dequantized values, broadcasting.")]
                #[doc = $doc]
                pub fn $op(&self, other: &QTensor) -> Result<Vec<bool>, TensorError> {
                    self.compare(other, CmpOp::$cmp)
                }

                #[doc = concat!("`torch.", stringify!($op), "(a, scalar)` on dequantized values, in f32.")]
                pub fn $scalar(&self, value: f64) -> Vec<bool> {
                    self.compare_scalar(value, CmpOp::$cmp)
                }
            )*
        }
    };
}

comparators! {
    eq, eq_scalar, Eq, "Elementwise `==`.";
    ne, ne_scalar, Ne, "Elementwise `!=` (true where either side is NaN).";
    ge, ge_scalar, Ge, "Elementwise `>=`.";
    le, le_scalar, Le, "Elementwise `<=`.";
    gt, gt_scalar, Gt, "Elementwise `>`.";
    lt, lt_scalar, Lt, "Elementwise `<`.";
}

impl QTensor {
    /// Compares the dequantized values of two tensors elementwise after broadcasting; the result
    /// is row-major over the broadcast shape.
    pub fn compare(&self, other: &QTensor, op: CmpOp) -> Result<Vec<bool>, TensorError> {
        let target = broadcast_shape(self.shape(), other.shape()).ok_or_else(|| {
            TensorError::IncompatibleShapes {
                op: "compare",
                a: self.shape().to_vec(),
                b: other.shape().to_vec(),
            }
        })?;
        let a = broadcast_to(&self.dequantize(), self.shape(), &target);
        let b = broadcast_to(&other.dequantize(), other.shape(), &target);
        Ok(a.iter().zip(&b).map(|(&x, &y)| op.holds(x, y)).collect())
    }

    /// Compares the dequantized values against a float scalar, taken in f32 as PyTorch does.
    pub fn compare_scalar(&self, value: f64, op: CmpOp) -> Vec<bool> {
        let v = value as f32;
        self.dequantize()
            .into_iter()
            .map(|x| op.holds(x, v))
            .collect()
    }

    /// `torch.equal(a, b)`: same dtype, qparams, shape and integers.
    pub fn equal(&self, other: &QTensor) -> bool {
        self.dtype() == other.dtype()
            && self.qparams() == other.qparams()
            && self.shape() == other.shape()
            && self.int_values() == other.int_values()
    }

    /// `x.clone()`: a contiguous copy with its own storage and the same qparams.
    pub fn clone_data(&self) -> QTensor {
        self.with_values(
            self.int_values(),
            self.shape().to_vec(),
            self.qparams().clone(),
        )
    }

    /// `x.copy_(src)` from a quantized tensor: the integers of `src`, broadcast to this shape,
    /// are written into this tensor's elements and `src`'s qparams replace this tensor's.
    /// A per-channel `src` must have exactly this shape, so that its axis still applies.
    ///
    /// Storage is copy-on-write: views taken earlier keep the old integers (PyTorch's would see
    /// the write).
    pub fn copy_(&mut self, src: &QTensor) -> Result<(), TensorError> {
        if self.qscheme() != src.qscheme() || self.dtype() != src.dtype() {
            return Err(TensorError::QParamsMismatch {
                op: "copy_",
                why: format!(
                    "{:?} {:?} into {:?} {:?}",
                    src.qscheme(),
                    src.dtype(),
                    self.qscheme(),
                    self.dtype()
                ),
            });
        }
        let fits = match src.qparams() {
            QParams::PerChannel { .. } => src.shape() == self.shape(),
            QParams::PerTensor { .. } => {
                broadcast_shape(src.shape(), self.shape()).as_deref() == Some(self.shape())
            }
        };
        if !fits {
            return Err(TensorError::IncompatibleShapes {
                op: "copy_",
                a: self.shape().to_vec(),
                b: src.shape().to_vec(),
            });
        }
        let values = broadcast_to(&src.int_values(), src.shape(), self.shape());
        self.write_values(&values);
        self.set_qparams(src.qparams().clone());
        Ok(())
    }

    /// `x.copy_(src)` from row-major floats of `shape`: quantized with this tensor's qparams
    /// (per tensor or per channel). PyTorch requires the same shape and a contiguous destination.
    pub fn copy_from_float(&mut self, src: &[f32], shape: &[usize]) -> Result<(), TensorError> {
        if shape != self.shape() {
            return Err(TensorError::IncompatibleShapes {
                op: "copy_",
                a: self.shape().to_vec(),
                b: shape.to_vec(),
            });
        }
        if !self.is_contiguous() {
            return Err(TensorError::InvalidView(
                "copy_ from float needs a contiguous destination".into(),
            ));
        }
        let q = match self.qparams() {
            QParams::PerTensor { scale, zero_point } => {
                QTensor::quantize_per_tensor(src, shape, *scale, *zero_point, self.dtype())?
            }
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } => QTensor::quantize_per_channel(
                src,
                shape,
                scales,
                zero_points,
                *axis as i64,
                self.dtype(),
            )?,
        };
        self.write_values(&q.int_values());
        Ok(())
    }

    /// Writes row-major `values` into this tensor's elements.
    fn write_values(&mut self, values: &[i32]) {
        let positions: Vec<usize> = self.storage_indices().collect();
        let storage = self.storage_mut();
        for (pos, &v) in positions.into_iter().zip(values) {
            storage.set(pos, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::QDType;
    use std::sync::Arc;

    fn qt(values: &[i32], shape: &[usize], scale: f64, zp: i64) -> QTensor {
        crate::tensor::test_tensor(QDType::QUInt8, values, shape, scale, zp)
    }

    #[test]
    fn comparators_use_dequantized_values() {
        // Different qparams, same real values: 0.5*(4-2) = 1.0 = 0.25*(10-6).
        let a = qt(&[4, 2, 6], &[3], 0.5, 2);
        let b = qt(&[10, 10, 10], &[3], 0.25, 6);
        assert_eq!(a.compare(&b, CmpOp::Eq).unwrap(), vec![true, false, false]);
        assert_eq!(a.compare(&b, CmpOp::Lt).unwrap(), vec![false, true, false]);
        assert_eq!(a.compare(&b, CmpOp::Ge).unwrap(), vec![true, false, true]);
        assert_eq!(a.compare_scalar(1.0, CmpOp::Ne), vec![false, true, true]);
        assert_eq!(a.compare_scalar(1.0, CmpOp::Gt), vec![false, false, true]);
        assert_eq!(a.compare_scalar(1.0, CmpOp::Le), vec![true, true, false]);
        assert_eq!(a.compare_scalar(f64::NAN, CmpOp::Ne), vec![true; 3]);
        // The named forms are the same comparisons.
        assert_eq!(a.le(&b).unwrap(), vec![true, true, false]);
        assert_eq!(a.ne(&b).unwrap(), vec![false, true, true]);
        assert_eq!(a.gt(&b).unwrap(), vec![false, false, true]);
        assert_eq!(a.eq_scalar(0.0), vec![false, true, false]);
        assert_eq!(a.lt_scalar(2.0), vec![true, true, false]);
        assert_eq!(a.ge_scalar(2.0), vec![false, false, true]);
        // Broadcasting [3] against [2, 1].
        let c = qt(&[4, 6], &[2, 1], 0.5, 2);
        assert_eq!(
            a.compare(&c, CmpOp::Eq).unwrap(),
            vec![true, false, false, false, false, true]
        );
        let d = qt(&[1, 2], &[2], 0.5, 2);
        assert!(matches!(
            a.compare(&d, CmpOp::Eq),
            Err(TensorError::IncompatibleShapes { .. })
        ));
    }

    #[test]
    fn equal_needs_same_qparams_and_integers() {
        let a = qt(&[4, 2], &[2], 0.5, 2);
        assert!(a.equal(&qt(&[4, 2], &[2], 0.5, 2)));
        assert!(!a.equal(&qt(&[8, 4], &[2], 0.25, 4)));
        assert!(!a.equal(&qt(&[4, 2], &[1, 2], 0.5, 2)));
        assert!(!a.equal(&qt(&[4, 3], &[2], 0.5, 2)));
        assert!(a.equal(&a.clone_data()));
    }

    #[test]
    fn clone_and_copy() {
        let a = qt(&[1, 2, 3, 4], &[2, 2], 0.5, 2);
        let c = a.clone_data();
        assert!(!Arc::ptr_eq(c.storage(), a.storage()));
        let mut dst = qt(&[0; 4], &[2, 2], 1.0, 0);
        dst.copy_(&qt(&[9, 8], &[2], 0.5, 2)).unwrap();
        assert_eq!(
            (dst.int_values(), dst.q_scale().unwrap()),
            (vec![9, 8, 9, 8], 0.5)
        );
        dst.copy_from_float(&[0.0, 0.5, 1.0, 100.0], &[2, 2])
            .unwrap();
        assert_eq!(dst.int_values(), vec![2, 3, 4, 202]);
        assert!(matches!(
            dst.copy_from_float(&[0.0; 2], &[2]),
            Err(TensorError::IncompatibleShapes { .. })
        ));
        let mut col = dst.clone().select(1, 0).unwrap();
        assert!(matches!(
            col.copy_from_float(&[0.0; 2], &[2]),
            Err(TensorError::InvalidView(_))
        ));
        // Writing through a strided view touches only its elements.
        col.copy_(&qt(&[7, 7], &[2], 0.5, 2)).unwrap();
        assert_eq!(col.int_values(), vec![7, 7]);
        assert_eq!(col.storage().to_i32_vec(), vec![7, 3, 7, 202]);
        let pc = QTensor::quantize_per_channel(
            &[1.0, 2.0],
            &[2],
            &[0.1, 0.2],
            &[0, 0],
            0,
            QDType::QUInt8,
        )
        .unwrap();
        assert!(matches!(
            dst.copy_(&pc),
            Err(TensorError::QParamsMismatch { .. })
        ));
        let mut pc2 = pc.clone_data();
        pc2.copy_from_float(&[0.3, 0.4], &[2]).unwrap();
        assert_eq!(pc2.int_values(), vec![3, 2]);
    }
}
