//! Reductions on quantized tensors: `max`/`min` (whole tensor or along a dim) and `mean`.
//!
//! PyTorch reduces quantized tensors on their integers wherever the output keeps the input's
//! qparams: `max`/`min` run on `int_repr()` and rewrap the result with the same scale and zero
//! point (per-tensor only, because they go through `q_scale()`). `mean` has two paths in
//! `ReduceOps.cpp`: when the reduced dims are the innermost ones of a contiguous tensor it sums
//! the integers, divides in f32 and rounds ties-to-even (`qmean_inner_dim_kernel`); otherwise it
//! dequantizes, takes the float mean and requantizes with the input's qparams. Both are kept here
//! because they can differ by one step on ties. The QNNPACK engine sends 4-d quint8 means over
//! dims (2, 3) to its global-average-pool kernel instead; the recorded golden data agree with the
//! integer path for all three engines, so qlab uses the integer path regardless of engine.

use super::qparams::resolve_axis;
use super::qtensor::{advance, numel};
use super::{QParams, QTensor, TensorError};

/// A tensor seen as `outer × len × inner` around one dim, over its row-major integers.
pub(crate) struct Lanes {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
}

impl Lanes {
    pub(crate) fn new(shape: &[usize], dim: usize) -> Lanes {
        if shape.is_empty() {
            // A 0-d tensor is one lane of one element, as PyTorch treats dim 0 / -1 on it.
            return Lanes {
                outer: 1,
                len: 1,
                inner: 1,
            };
        }
        Lanes {
            outer: numel(&shape[..dim]),
            len: shape[dim],
            inner: numel(&shape[dim + 1..]),
        }
    }

    /// Row-major position of element `k` of lane `(o, i)`.
    #[inline]
    pub(crate) fn at(&self, o: usize, i: usize, k: usize) -> usize {
        (o * self.len + k) * self.inner + i
    }

    /// All lanes in the row-major order of the output they produce.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.outer).flat_map(move |o| (0..self.inner).map(move |i| (o, i)))
    }
}

/// The shape after reducing `dims` (flags per dim), dropped or kept as size 1.
fn reduced_shape(shape: &[usize], reduced: &[bool], keepdim: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(reduced)
        .filter_map(|(&s, &r)| match (r, keepdim) {
            (false, _) => Some(s),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// Fails unless the tensor is per-tensor quantized, naming the op as PyTorch's check would.
pub(crate) fn require_per_tensor(t: &QTensor, op: &'static str) -> Result<(), TensorError> {
    match t.qparams() {
        QParams::PerTensor { .. } => Ok(()),
        QParams::PerChannel { .. } => Err(TensorError::Unsupported {
            op,
            what: "a per-channel quantized tensor".into(),
        }),
    }
}

#[derive(Clone, Copy)]
enum Extreme {
    Max,
    Min,
}

impl Extreme {
    /// True when `v` should replace the current best; strict, so the first of equal values wins.
    fn better(self, v: i32, best: i32) -> bool {
        match self {
            Extreme::Max => v > best,
            Extreme::Min => v < best,
        }
    }

    fn name(self, with_dim: bool) -> &'static str {
        match (self, with_dim) {
            (Extreme::Max, false) => "max",
            (Extreme::Min, false) => "min",
            (Extreme::Max, true) => "max(dim)",
            (Extreme::Min, true) => "min(dim)",
        }
    }
}

impl QTensor {
    /// `torch.max(x)`: the largest integer as a 0-d tensor with the same qparams.
    pub fn max(&self) -> Result<QTensor, TensorError> {
        self.extreme_all(Extreme::Max)
    }

    /// `torch.min(x)`: the smallest integer as a 0-d tensor with the same qparams.
    pub fn min(&self) -> Result<QTensor, TensorError> {
        self.extreme_all(Extreme::Min)
    }

    /// `torch.max(x, dim, keepdim)`: values and the index of the first maximum along `dim`.
    pub fn max_dim(&self, dim: i64, keepdim: bool) -> Result<(QTensor, Vec<i64>), TensorError> {
        self.extreme_dim(Extreme::Max, dim, keepdim)
    }

    /// `torch.min(x, dim, keepdim)`: values and the index of the first minimum along `dim`.
    pub fn min_dim(&self, dim: i64, keepdim: bool) -> Result<(QTensor, Vec<i64>), TensorError> {
        self.extreme_dim(Extreme::Min, dim, keepdim)
    }

    fn extreme_all(&self, which: Extreme) -> Result<QTensor, TensorError> {
        let op = which.name(false);
        require_per_tensor(self, op)?;
        let values = self.int_values();
        let best = values
            .iter()
            .copied()
            .reduce(|best, v| if which.better(v, best) { v } else { best });
        let best = best.ok_or(TensorError::EmptyReduction { op })?;
        Ok(self.with_values([best], Vec::new(), self.qparams().clone()))
    }

    fn extreme_dim(
        &self,
        which: Extreme,
        dim: i64,
        keepdim: bool,
    ) -> Result<(QTensor, Vec<i64>), TensorError> {
        let op = which.name(true);
        require_per_tensor(self, op)?;
        let d = resolve_axis(dim, self.ndim())?;
        let lanes = Lanes::new(self.shape(), d);
        if lanes.len == 0 {
            return Err(TensorError::EmptyReduction { op });
        }
        let values = self.int_values();
        let (mut out, mut idx) = (Vec::new(), Vec::new());
        for (o, i) in lanes.iter() {
            let mut best_k = 0;
            for k in 1..lanes.len {
                if which.better(values[lanes.at(o, i, k)], values[lanes.at(o, i, best_k)]) {
                    best_k = k;
                }
            }
            out.push(values[lanes.at(o, i, best_k)]);
            idx.push(best_k as i64);
        }
        let mut flags = vec![false; self.ndim()];
        if let Some(f) = flags.get_mut(d) {
            *f = true;
        }
        let shape = reduced_shape(self.shape(), &flags, keepdim);
        Ok((self.with_values(out, shape, self.qparams().clone()), idx))
    }

    /// `torch.mean(x)`: the mean over every element, with the input's qparams.
    pub fn mean(&self) -> Result<QTensor, TensorError> {
        self.mean_dims(&[], false)
    }

    /// `torch.mean(x, dims, keepdim)`; an empty `dims` reduces every dim, as PyTorch does.
    pub fn mean_dims(&self, dims: &[i64], keepdim: bool) -> Result<QTensor, TensorError> {
        require_per_tensor(self, "mean")?;
        let ndim = self.ndim();
        let mut reduced = vec![dims.is_empty(); ndim];
        for &dim in dims {
            let d = resolve_axis(dim, ndim)?;
            if ndim > 0 && std::mem::replace(&mut reduced[d], true) {
                return Err(TensorError::RepeatedDim { op: "mean", dim: d });
            }
        }
        let count: usize = self
            .shape()
            .iter()
            .zip(&reduced)
            .filter(|(_, r)| **r)
            .map(|(s, _)| s)
            .product();
        if count == 0 || self.numel() == 0 {
            return Err(TensorError::EmptyReduction { op: "mean" });
        }
        let shape = reduced_shape(self.shape(), &reduced, keepdim);
        // The fast path applies when the reduced dims are a suffix of a contiguous tensor.
        let first_reduced = reduced.iter().position(|&r| r).unwrap_or(ndim);
        if self.is_contiguous() && reduced[first_reduced..].iter().all(|&r| r) {
            Ok(self.mean_inner(count, shape))
        } else {
            self.mean_through_float(&reduced, count, shape)
        }
    }

    /// `qmean_inner_dim_kernel`: integer sum of each group, f32 divide, ties-to-even.
    fn mean_inner(&self, count: usize, shape: Vec<usize>) -> QTensor {
        let values = self.int_values();
        let means = values.chunks(count).map(|group| {
            let sum: i64 = group.iter().map(|&v| v as i64).sum();
            // `as` saturates; the mean of in-range integers stays in range up to f32 rounding.
            ((sum as f32) / (count as f32)).round_ties_even() as i32
        });
        self.with_values(means, shape, self.qparams().clone())
    }

    /// The reference path: dequantize, sum in f32, divide by the count in f32 (PyTorch's CPU
    /// mean is `sum(...).div_(count)`), requantize with the input's qparams.
    ///
    /// The sum runs in row-major order of the reduced elements. PyTorch's float sum uses the
    /// same order for short reductions over outer dims, but switches to a multi-level cascade
    /// (and vectorised partial sums over inner dims) for longer ones, which can differ in the
    /// last bit and so, on a rounding tie, by one quantization step.
    fn mean_through_float(
        &self,
        reduced: &[bool],
        count: usize,
        shape: Vec<usize>,
    ) -> Result<QTensor, TensorError> {
        let kept: Vec<usize> = self
            .shape()
            .iter()
            .zip(reduced)
            .map(|(&s, &r)| if r { 1 } else { s })
            .collect();
        let kept_strides = super::qtensor::contiguous_strides(&kept);
        let mut sums = vec![0.0f32; numel(&kept)];
        let mut idx = vec![0usize; self.ndim()];
        for x in self.dequantize() {
            let pos: usize = idx
                .iter()
                .zip(reduced)
                .zip(&kept_strides)
                .map(|((&i, &r), &s)| if r { 0 } else { i * s })
                .sum();
            sums[pos] += x;
            advance(&mut idx, self.shape());
        }
        let means: Vec<f32> = sums.into_iter().map(|s| s / count as f32).collect();
        QTensor::quantize_per_tensor(
            &means,
            &shape,
            self.q_scale()?,
            self.q_zero_point()?,
            self.dtype(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::QDType;

    fn qt(values: &[i32], shape: &[usize], zp: i64) -> QTensor {
        crate::tensor::test_tensor(QDType::QUInt8, values, shape, 0.5, zp)
    }

    #[test]
    fn max_min_ties_pick_first_index() {
        let t = qt(&[3, 7, 7, 1, 1, 5], &[2, 3], 0);
        let (v, i) = t.max_dim(1, false).unwrap();
        assert_eq!((v.int_values(), i), (vec![7, 5], vec![1, 2]));
        let (v, i) = t.min_dim(-1, true).unwrap();
        assert_eq!(
            (v.int_values(), v.shape().to_vec(), i),
            (vec![3, 1], vec![2, 1], vec![0, 0])
        );
        assert_eq!(t.max().unwrap().int_values(), vec![7]);
        assert!(t.min().unwrap().shape().is_empty());
    }

    #[test]
    fn reductions_reject_bad_input() {
        let t = qt(&[1, 2], &[2], 0);
        assert!(matches!(
            t.max_dim(1, false),
            Err(TensorError::AxisOutOfBounds { .. })
        ));
        assert!(matches!(
            qt(&[], &[0], 0).max(),
            Err(TensorError::EmptyReduction { .. })
        ));
        assert!(matches!(
            t.mean_dims(&[0, -1], false),
            Err(TensorError::RepeatedDim { .. })
        ));
        let pc = QTensor::quantize_per_channel(
            &[1.0, 2.0],
            &[2],
            &[0.1, 0.2],
            &[0, 0],
            0,
            QDType::QInt8,
        )
        .unwrap();
        assert!(matches!(pc.max(), Err(TensorError::Unsupported { .. })));
        assert!(matches!(pc.mean(), Err(TensorError::Unsupported { .. })));
    }

    #[test]
    fn mean_rounds_ties_to_even_on_integers() {
        // Inner path: (1+2)/2 = 1.5 -> 2, (3+4)/2 = 3.5 -> 4, (2+3)/2 = 2.5 -> 2.
        let t = qt(&[1, 2, 3, 4, 2, 3], &[3, 2], 0);
        assert_eq!(
            t.mean_dims(&[1], false).unwrap().int_values(),
            vec![2, 4, 2]
        );
        // Float path over dim 0 of the same data: dequantized means requantized with zp 0.
        assert_eq!(t.mean_dims(&[0], true).unwrap().int_values(), vec![2, 3]);
        assert_eq!(t.mean().unwrap().int_values(), vec![2]);
    }
}
