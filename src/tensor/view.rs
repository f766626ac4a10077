//! Views of a quantized tensor: new shape, strides and offset over the same storage.
//!
//! The layout rules are PyTorch's (`TensorShape.cpp`); what needs care is the quantizer that a
//! view carries. PyTorch's decisions, reproduced here:
//! * `select`/`slice`/`narrow` build a sub-quantizer (`create_subtensor_quantizer`): on the
//!   channel axis the scales and zero points are sliced the same way, and a per-channel result
//!   with a single channel left becomes per-tensor with that channel's pair. An empty slice of
//!   the channel axis fails in PyTorch (`item()` of an empty tensor); qlab reports `InvalidView`.
//!   PyTorch decrements the axis on every `select`, even past the axis; qlab only does so when
//!   the selected dim precedes the axis, so the axis keeps naming the channel dimension.
//! * `transpose`, `permute`, `expand` and `as_strided` go through `as_strided_qtensorimpl`, which
//!   only accepts per-tensor quantizers ("Setting strides is possible only on uniformly quantized
//!   tensor"); qlab rejects per-channel tensors there with `Unsupported` (`transpose(d, d)` is
//!   an alias in PyTorch and stays allowed).
//! * `squeeze`/`unsqueeze` shift the axis; squeezing the channel axis itself is rejected.
//! * `view`/`reshape`/`flatten` keep the quantizer unchanged, as PyTorch does. PyTorch does not
//!   check that the kept axis still fits; qlab accepts a per-channel reshape only when every
//!   element keeps its channel (same extent before the axis and the axis keeps its size) and
//!   otherwise reports `InvalidView`.
//! * `resize_` is per-tensor only, as in PyTorch; elements beyond the old storage are
//!   uninitialised there, qlab fills them with the zero point (they dequantize to 0).

use super::qparams::resolve_axis;
use super::qtensor::{contiguous_strides, numel};
use super::reduce::require_per_tensor;
use super::{QParams, QStorage, QTensor, TensorError};

/// Resolves one `-1` in `shape` against `total` elements and checks the product.
fn infer_shape(shape: &[i64], total: usize) -> Result<Vec<usize>, TensorError> {
    let bad = || {
        TensorError::InvalidView(format!(
            "shape {shape:?} is invalid for input of size {total}"
        ))
    };
    let mut infer = None;
    let mut known = 1usize;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => infer = Some(i),
            s if s >= 0 => known = known.checked_mul(s as usize).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|&s| s.max(0) as usize).collect();
    match infer {
        Some(i) if known != 0 && total.is_multiple_of(known) => out[i] = total / known,
        None if known == total => {}
        _ => return Err(bad()),
    }
    checked_numel(&out)?;
    Ok(out)
}

/// The element count of a caller-supplied shape; refused when the count, or a contiguous stride
/// (which ignores zero-size dims), would overflow.
fn checked_numel(shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s.max(1)))
        .map(|_| numel(shape))
        .ok_or_else(|| TensorError::InvalidView(format!("shape {shape:?} has too many elements")))
}

/// Strides that let `new` alias a layout of `old`/`strides` without a copy, if any exist
/// (PyTorch's `computeStride`: each run of merged old dims must map onto whole new dims).
fn view_strides(old: &[usize], strides: &[usize], new: &[usize]) -> Option<Vec<usize>> {
    if old.is_empty() || numel(old) == 0 {
        return Some(contiguous_strides(new));
    }
    let mut out = vec![0usize; new.len()];
    let mut view_d = new.len();
    let mut chunk_base = strides[old.len() - 1];
    let (mut tensor_numel, mut view_numel) = (1usize, 1usize);
    for d in (0..old.len()).rev() {
        tensor_numel *= old[d];
        if d == 0 || (old[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base) {
            while view_d > 0 && (view_numel < tensor_numel || new[view_d - 1] == 1) {
                view_d -= 1;
                out[view_d] = view_numel * chunk_base;
                view_numel *= new[view_d];
            }
            if view_numel != tensor_numel {
                return None;
            }
            if d > 0 {
                chunk_base = strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    (view_d == 0).then_some(out)
}

/// Python-style bounds of `slice(start, end)` over a dim of `size`: wrapped, then clamped.
fn clamp_bound(v: Option<i64>, default: usize, size: usize) -> usize {
    match v {
        None => default,
        Some(v) if v < 0 => (v + size as i64).max(0) as usize,
        Some(v) => (v as usize).min(size),
    }
}

impl QTensor {
    /// `x.view(shape)`: the same storage with a new shape (one `-1` is inferred); fails when the
    /// strides cannot express it (use `reshape`).
    pub fn view(&self, shape: &[i64]) -> Result<QTensor, TensorError> {
        let new = infer_shape(shape, self.numel())?;
        let strides = view_strides(self.shape(), self.strides(), &new).ok_or_else(|| {
            TensorError::InvalidView(format!(
                "view size {new:?} is not compatible with the strides {:?}; use reshape",
                self.strides()
            ))
        })?;
        self.check_channel_kept(&new)?;
        Ok(self.view_with(new, strides, self.storage_offset(), self.qparams().clone()))
    }

    /// `x.reshape(shape)`: a view when possible, otherwise a contiguous copy with that shape.
    pub fn reshape(&self, shape: &[i64]) -> Result<QTensor, TensorError> {
        let new = infer_shape(shape, self.numel())?;
        self.check_channel_kept(&new)?;
        match view_strides(self.shape(), self.strides(), &new) {
            Some(strides) => {
                Ok(self.view_with(new, strides, self.storage_offset(), self.qparams().clone()))
            }
            None => Ok(self.with_values(self.int_values(), new, self.qparams().clone())),
        }
    }

    /// `x.flatten(start_dim, end_dim)`: merges the dims `start..=end` (a 0-d tensor becomes `[1]`).
    pub fn flatten(&self, start_dim: i64, end_dim: i64) -> Result<QTensor, TensorError> {
        let (s, e) = (
            resolve_axis(start_dim, self.ndim())?,
            resolve_axis(end_dim, self.ndim())?,
        );
        if s > e {
            return Err(TensorError::InvalidView(format!(
                "flatten: start_dim {start_dim} comes after end_dim {end_dim}"
            )));
        }
        if self.ndim() == 0 {
            return self.reshape(&[1]);
        }
        let dims = self.shape();
        let mut shape: Vec<i64> = dims[..s].iter().map(|&d| d as i64).collect();
        shape.push(numel(&dims[s..=e]) as i64);
        shape.extend(dims[e + 1..].iter().map(|&d| d as i64));
        self.reshape(&shape)
    }

    /// Per-channel views keep their quantizer only if every element keeps its channel.
    fn check_channel_kept(&self, new: &[usize]) -> Result<(), TensorError> {
        let QParams::PerChannel { axis, scales, .. } = self.qparams() else {
            return Ok(());
        };
        let old = self.shape();
        let keeps = new.len() > *axis
            && new[*axis] == scales.len()
            && numel(&new[..*axis]) == numel(&old[..*axis]);
        if keeps {
            Ok(())
        } else {
            Err(TensorError::InvalidView(format!(
                "shape {new:?} moves elements off their channel (per-channel axis {axis} of {old:?})"
            )))
        }
    }

    /// `x.expand(sizes)`: broadcast size-1 dims (and new leading dims) with stride 0; `-1` keeps
    /// a dim. Per-tensor only.
    pub fn expand(&self, sizes: &[i64]) -> Result<QTensor, TensorError> {
        require_per_tensor(self, "expand")?;
        let bad = || TensorError::IncompatibleShapes {
            op: "expand",
            a: self.shape().to_vec(),
            b: sizes.iter().map(|&s| s.max(0) as usize).collect(),
        };
        let lead = sizes.len().checked_sub(self.ndim()).ok_or_else(bad)?;
        let (mut shape, mut strides) = (
            Vec::with_capacity(sizes.len()),
            Vec::with_capacity(sizes.len()),
        );
        for (i, &want) in sizes.iter().enumerate() {
            let old = i
                .checked_sub(lead)
                .map(|j| (self.shape()[j], self.strides()[j]));
            let (size, stride) = match (old, want) {
                (None, w) if w >= 0 => (w as usize, 0),
                (Some(o), -1) => o,
                (Some((s, st)), w) if w >= 0 && s == w as usize => (s, st),
                (Some((1, _)), w) if w >= 0 => (w as usize, 0),
                _ => return Err(bad()),
            };
            shape.push(size);
            strides.push(stride);
        }
        checked_numel(&shape)?;
        Ok(self.view_with(
            shape,
            strides,
            self.storage_offset(),
            self.qparams().clone(),
        ))
    }

    /// `x.select(dim, index)`: removes `dim`, keeping element `index` (negative counts back).
    pub fn select(&self, dim: i64, index: i64) -> Result<QTensor, TensorError> {
        if self.ndim() == 0 {
            return Err(TensorError::InvalidView(
                "select() cannot be applied to a 0-dim tensor".into(),
            ));
        }
        let d = resolve_axis(dim, self.ndim())?;
        let size = self.shape()[d];
        let i = if index < 0 {
            index + size as i64
        } else {
            index
        };
        if !(0..size as i64).contains(&i) {
            return Err(TensorError::IndexOutOfRange {
                what: "select",
                index,
                dim: d,
                size,
            });
        }
        let i = i as usize;
        let qparams = self.sub_qparams(d, i, i + 1, 1, true)?;
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        let offset = self.storage_offset() + i * strides[d];
        shape.remove(d);
        strides.remove(d);
        Ok(self.view_with(shape, strides, offset, qparams))
    }

    /// `x[..., start:end:step, ...]` along `dim`, Python-style: bounds wrap and clamp, `step > 0`.
    pub fn slice(
        &self,
        dim: i64,
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    ) -> Result<QTensor, TensorError> {
        if self.ndim() == 0 {
            return Err(TensorError::InvalidView(
                "slice() cannot be applied to a 0-dim tensor".into(),
            ));
        }
        if step <= 0 {
            return Err(TensorError::InvalidView(format!(
                "slice step must be positive, got {step}"
            )));
        }
        let d = resolve_axis(dim, self.ndim())?;
        let size = self.shape()[d];
        let start = clamp_bound(start, 0, size);
        let end = clamp_bound(end, size, size).max(start);
        let step = step as usize;
        let qparams = self.sub_qparams(d, start, end, step, false)?;
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        let offset = if start < end {
            self.storage_offset() + start * strides[d]
        } else {
            self.storage_offset()
        };
        shape[d] = (end - start).div_ceil(step);
        strides[d] *= step;
        Ok(self.view_with(shape, strides, offset, qparams))
    }

    /// `x.narrow(dim, start, length)`: `length` elements from `start` (negative wraps once).
    pub fn narrow(&self, dim: i64, start: i64, length: usize) -> Result<QTensor, TensorError> {
        let d = resolve_axis(dim, self.ndim())?;
        let size = self.shape().get(d).copied().unwrap_or(1);
        let s = if start < 0 {
            start + size as i64
        } else {
            start
        };
        if s < 0 || s as usize + length > size {
            return Err(TensorError::IndexOutOfRange {
                what: "narrow",
                index: start,
                dim: d,
                size,
            });
        }
        self.slice(dim, Some(s), Some(s + length as i64), 1)
    }

    /// The qparams of a select (`is_select`) or slice over `start..end` by `step` along `d`.
    fn sub_qparams(
        &self,
        d: usize,
        start: usize,
        end: usize,
        step: usize,
        is_select: bool,
    ) -> Result<QParams, TensorError> {
        let QParams::PerChannel {
            scales,
            zero_points,
            axis,
        } = self.qparams()
        else {
            return Ok(self.qparams().clone());
        };
        let (scales, zero_points): (Vec<f64>, Vec<i64>) = if d == *axis {
            (start..end)
                .step_by(step)
                .map(|c| (scales[c], zero_points[c]))
                .unzip()
        } else {
            (scales.clone(), zero_points.clone())
        };
        let axis = if is_select && d < *axis {
            axis - 1
        } else {
            *axis
        };
        match scales.len() {
            0 => Err(TensorError::InvalidView(
                "an empty slice of the per-channel axis has no qparams".into(),
            )),
            1 => Ok(QParams::PerTensor {
                scale: scales[0],
                zero_point: zero_points[0],
            }),
            _ => Ok(QParams::PerChannel {
                scales,
                zero_points,
                axis,
            }),
        }
    }

    /// `x.transpose(dim0, dim1)`: swaps two dims. Per-tensor only, as in PyTorch (swapping a dim
    /// with itself is an alias and works for any tensor).
    pub fn transpose(&self, dim0: i64, dim1: i64) -> Result<QTensor, TensorError> {
        let (a, b) = (
            resolve_axis(dim0, self.ndim())?,
            resolve_axis(dim1, self.ndim())?,
        );
        // PyTorch returns an alias before reaching the per-tensor-only strided path.
        if a == b {
            return Ok(self.clone());
        }
        let mut order: Vec<i64> = (0..self.ndim() as i64).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// `x.permute(dims)`: reorders the dims. Per-tensor only, as in PyTorch.
    pub fn permute(&self, dims: &[i64]) -> Result<QTensor, TensorError> {
        require_per_tensor(self, "permute")?;
        if dims.len() != self.ndim() {
            return Err(TensorError::InvalidView(format!(
                "permute needs {} dims, got {dims:?}",
                self.ndim()
            )));
        }
        let mut seen = vec![false; self.ndim()];
        let (mut shape, mut strides) = (
            Vec::with_capacity(dims.len()),
            Vec::with_capacity(dims.len()),
        );
        for &dim in dims {
            let d = resolve_axis(dim, self.ndim())?;
            if std::mem::replace(&mut seen[d], true) {
                return Err(TensorError::RepeatedDim {
                    op: "permute",
                    dim: d,
                });
            }
            shape.push(self.shape()[d]);
            strides.push(self.strides()[d]);
        }
        Ok(self.view_with(
            shape,
            strides,
            self.storage_offset(),
            self.qparams().clone(),
        ))
    }

    /// `x.squeeze()`: drops every size-1 dim.
    pub fn squeeze(&self) -> Result<QTensor, TensorError> {
        let drop: Vec<bool> = self.shape().iter().map(|&s| s == 1).collect();
        self.drop_dims(&drop)
    }

    /// `x.squeeze(dim)`: drops `dim` if its size is 1, otherwise returns the same view.
    pub fn squeeze_dim(&self, dim: i64) -> Result<QTensor, TensorError> {
        let d = resolve_axis(dim, self.ndim())?;
        let drop: Vec<bool> = (0..self.ndim())
            .map(|i| i == d && self.shape()[i] == 1)
            .collect();
        self.drop_dims(&drop)
    }

    fn drop_dims(&self, drop: &[bool]) -> Result<QTensor, TensorError> {
        let qparams = match self.qparams() {
            QParams::PerChannel { axis, .. } if drop[*axis] => {
                return Err(TensorError::Unsupported {
                    op: "squeeze",
                    what: "the channel axis of a per-channel tensor".into(),
                });
            }
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } => {
                let before = drop[..*axis].iter().filter(|&&x| x).count();
                QParams::PerChannel {
                    scales: scales.clone(),
                    zero_points: zero_points.clone(),
                    axis: axis - before,
                }
            }
            q => q.clone(),
        };
        let keep = |v: &[usize]| {
            v.iter()
                .zip(drop)
                .filter(|(_, d)| !**d)
                .map(|(&x, _)| x)
                .collect::<Vec<_>>()
        };
        Ok(self.view_with(
            keep(self.shape()),
            keep(self.strides()),
            self.storage_offset(),
            qparams,
        ))
    }

    /// `x.unsqueeze(dim)`: inserts a size-1 dim at `dim` (in `-ndim-1..=ndim`).
    pub fn unsqueeze(&self, dim: i64) -> Result<QTensor, TensorError> {
        let d = resolve_axis(dim, self.ndim() + 1)?;
        let qparams = match self.qparams() {
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } if d <= *axis => QParams::PerChannel {
                scales: scales.clone(),
                zero_points: zero_points.clone(),
                axis: axis + 1,
            },
            q => q.clone(),
        };
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        let stride = if d < shape.len() {
            shape[d] * strides[d]
        } else {
            1
        };
        shape.insert(d, 1);
        strides.insert(d, stride);
        Ok(self.view_with(shape, strides, self.storage_offset(), qparams))
    }

    /// `x.as_strided(size, stride, offset)`: any layout inside the storage. Per-tensor only;
    /// a layout reaching past the storage is an error.
    pub fn as_strided(
        &self,
        size: &[usize],
        stride: &[usize],
        offset: usize,
    ) -> Result<QTensor, TensorError> {
        require_per_tensor(self, "as_strided")?;
        if size.len() != stride.len() {
            return Err(TensorError::InvalidView(format!(
                "as_strided: {} sizes but {} strides",
                size.len(),
                stride.len()
            )));
        }
        if checked_numel(size)? > 0 {
            let last = size.iter().zip(stride).try_fold(offset, |acc, (&s, &st)| {
                (s - 1).checked_mul(st).and_then(|x| acc.checked_add(x))
            });
            if last.is_none_or(|l| l >= self.storage().len()) {
                return Err(TensorError::InvalidView(format!(
                    "as_strided: size {size:?}, stride {stride:?}, offset {offset} reach past a storage of {}",
                    self.storage().len()
                )));
            }
        }
        Ok(self.view_with(
            size.to_vec(),
            stride.to_vec(),
            offset,
            self.qparams().clone(),
        ))
    }

    /// `x.resize_(shape)`: contiguous layout from the same offset; storage grows when needed
    /// (new integers are the zero point) and never shrinks. Per-tensor only, as in PyTorch.
    ///
    /// Growing allocates new storage: views taken earlier keep the old one, whereas PyTorch's
    /// views would observe the reallocated storage.
    pub fn resize_(&mut self, shape: &[usize]) -> Result<(), TensorError> {
        require_per_tensor(self, "resize_")?;
        let offset = self.storage_offset();
        let needed = checked_numel(shape)?
            .checked_add(offset)
            .ok_or_else(|| TensorError::InvalidView(format!("resize_ to {shape:?} overflows")))?;
        let strides = contiguous_strides(shape);
        let have = self.storage().len();
        *self = if needed <= have {
            self.view_with(shape.to_vec(), strides, offset, self.qparams().clone())
        } else {
            let zp = self.q_zero_point()? as i32;
            let values = self
                .storage()
                .to_i32_vec()
                .into_iter()
                .chain(std::iter::repeat_n(zp, needed - have));
            QTensor::from_layout(
                QStorage::from_i32(self.dtype(), values),
                shape.to_vec(),
                strides,
                offset,
                self.qparams().clone(),
            )
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::QDType;
    use std::sync::Arc;

    fn per_tensor(n: usize, shape: &[usize]) -> QTensor {
        let q = QParams::PerTensor {
            scale: 0.5,
            zero_point: 7,
        };
        QTensor::from_int_repr(
            QStorage::from_i32(QDType::QUInt8, (0..n as i32).map(|v| v + 10)),
            shape,
            q,
        )
        .unwrap()
    }

    fn per_channel() -> QTensor {
        // [2, 3, 2] with channels on axis 1.
        let q = QParams::PerChannel {
            scales: vec![0.1, 0.2, 0.3],
            zero_points: vec![1, 2, 3],
            axis: 1,
        };
        QTensor::from_int_repr(QStorage::from_i32(QDType::QInt8, 0..12), &[2, 3, 2], q).unwrap()
    }

    proptest::proptest! {
        /// A view of a permuted and sliced tensor, when it exists, reads exactly the elements a
        /// copy would: this checks the stride computation against the iteration order.
        #[test]
        fn views_read_what_copies_read(
            dims in proptest::collection::vec(1usize..4, 1..5),
            rotate in 0usize..4,
            merge_from in 0usize..4,
            step in 1i64..3,
        ) {
            let n: usize = dims.iter().product();
            let nd = dims.len();
            let order: Vec<i64> = (0..nd).map(|i| ((i + rotate) % nd) as i64).collect();
            let p = per_tensor(n, &dims).permute(&order).unwrap().slice(0, None, None, step).unwrap();
            let flat = p.int_values();
            let m = merge_from % nd;
            let mut target: Vec<i64> = vec![1];
            target.extend(p.shape()[..m].iter().map(|&d| d as i64));
            target.push(numel(&p.shape()[m..]) as i64);
            if let Ok(v) = p.view(&target) {
                proptest::prop_assert!(Arc::ptr_eq(v.storage(), p.storage()));
                proptest::prop_assert_eq!(v.int_values(), flat.clone());
            }
            proptest::prop_assert_eq!(p.reshape(&target).unwrap().int_values(), flat);
        }
    }

    #[test]
    fn view_and_reshape_share_or_copy() {
        let t = per_tensor(6, &[2, 3]);
        let v = t.view(&[3, -1]).unwrap();
        assert!(Arc::ptr_eq(v.storage(), t.storage()));
        assert_eq!((v.shape(), v.strides()), (&[3, 2][..], &[2, 1][..]));
        let tr = t.transpose(0, 1).unwrap();
        assert_eq!((tr.shape(), tr.strides()), (&[3, 2][..], &[1, 3][..]));
        assert_eq!(tr.int_values(), vec![10, 13, 11, 14, 12, 15]);
        assert!(matches!(tr.view(&[6]), Err(TensorError::InvalidView(_))));
        let r = tr.reshape(&[-1]).unwrap();
        assert!(!Arc::ptr_eq(r.storage(), t.storage()));
        assert_eq!(r.int_values(), vec![10, 13, 11, 14, 12, 15]);
        assert!(matches!(t.view(&[4, -1]), Err(TensorError::InvalidView(_))));
        assert!(matches!(
            t.view(&[-1, -1]),
            Err(TensorError::InvalidView(_))
        ));
        assert_eq!(t.flatten(0, -1).unwrap().shape(), &[6]);
        // Splitting a transposed dim into size-1 pieces is still a view.
        assert!(Arc::ptr_eq(
            tr.view(&[3, 1, 2]).unwrap().storage(),
            t.storage()
        ));
    }

    #[test]
    fn select_slice_narrow_follow_python() {
        let t = per_tensor(12, &[3, 4]);
        let row = t.select(0, -1).unwrap();
        assert_eq!(
            (row.int_values(), row.storage_offset()),
            (vec![18, 19, 20, 21], 8)
        );
        let s = t.slice(1, Some(-3), Some(100), 2).unwrap();
        assert_eq!((s.shape(), s.strides()), (&[3, 2][..], &[4, 2][..]));
        assert_eq!(s.int_values(), vec![11, 13, 15, 17, 19, 21]);
        assert_eq!(t.slice(1, Some(3), Some(1), 1).unwrap().shape(), &[3, 0]);
        assert_eq!(t.narrow(0, -2, 2).unwrap().int_values()[0], 14);
        assert!(matches!(
            t.select(0, 3),
            Err(TensorError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            t.narrow(1, 2, 3),
            Err(TensorError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            t.slice(0, None, None, 0),
            Err(TensorError::InvalidView(_))
        ));
        assert!(matches!(
            t.select(2, 0),
            Err(TensorError::AxisOutOfBounds { .. })
        ));
    }

    #[test]
    fn per_channel_views_track_the_axis() {
        let t = per_channel();
        // Select on the axis: a per-tensor result with that channel's qparams.
        let c = t.select(1, 2).unwrap();
        assert_eq!(
            c.qparams(),
            &QParams::PerTensor {
                scale: 0.3,
                zero_point: 3
            }
        );
        assert_eq!(c.int_values(), vec![4, 5, 10, 11]);
        // Select before the axis shifts it down; after it leaves it alone.
        assert_eq!(t.select(0, 1).unwrap().q_per_channel_axis().unwrap(), 0);
        assert_eq!(t.select(2, 0).unwrap().q_per_channel_axis().unwrap(), 1);
        // Slicing the axis slices the qparams; one channel left becomes per-tensor.
        let s = t.slice(1, Some(0), None, 2).unwrap();
        assert_eq!(s.q_per_channel_scales().unwrap(), &[0.1, 0.3]);
        assert_eq!(s.q_per_channel_zero_points().unwrap(), &[1, 3]);
        assert_eq!(
            t.narrow(1, 1, 1).unwrap().qparams(),
            &QParams::PerTensor {
                scale: 0.2,
                zero_point: 2
            }
        );
        assert!(matches!(
            t.slice(1, Some(2), Some(2), 1),
            Err(TensorError::InvalidView(_))
        ));
        // Squeeze/unsqueeze move the axis; the axis itself cannot be squeezed.
        let u = t.unsqueeze(0).unwrap();
        assert_eq!(
            (u.shape(), u.q_per_channel_axis().unwrap()),
            (&[1, 2, 3, 2][..], 2)
        );
        assert_eq!(u.squeeze().unwrap().q_per_channel_axis().unwrap(), 1);
        assert_eq!(t.unsqueeze(-1).unwrap().q_per_channel_axis().unwrap(), 1);
        let one = t
            .narrow(1, 0, 2)
            .unwrap()
            .select(2, 0)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        assert_eq!(one.q_per_channel_axis().unwrap(), 2);
        // Strided views are per-tensor only.
        assert!(matches!(
            t.transpose(0, 1),
            Err(TensorError::Unsupported { .. })
        ));
        assert!(matches!(
            t.expand(&[2, 2, 3, 2]),
            Err(TensorError::Unsupported { .. })
        ));
        assert!(matches!(
            t.as_strided(&[2], &[1], 0),
            Err(TensorError::Unsupported { .. })
        ));
        // Reshapes keep the channel of every element or are refused.
        assert_eq!(
            t.reshape(&[2, 3, 1, 2])
                .unwrap()
                .q_per_channel_axis()
                .unwrap(),
            1
        );
        assert!(matches!(
            t.reshape(&[6, 2]),
            Err(TensorError::InvalidView(_))
        ));
        assert!(matches!(t.flatten(0, 1), Err(TensorError::InvalidView(_))));
        assert!(t.flatten(1, 2).is_err());
    }

    #[test]
    fn squeeze_of_a_size_one_channel_axis_is_refused() {
        let q = QParams::PerChannel {
            scales: vec![0.1],
            zero_points: vec![0],
            axis: 0,
        };
        let t =
            QTensor::from_int_repr(QStorage::from_i32(QDType::QInt8, 0..3), &[1, 3], q).unwrap();
        assert!(matches!(t.squeeze(), Err(TensorError::Unsupported { .. })));
        assert_eq!(t.squeeze_dim(1).unwrap().shape(), &[1, 3]);
    }

    #[test]
    fn dim_arguments_are_checked() {
        let t = per_tensor(6, &[2, 3]);
        assert!(matches!(t.flatten(1, 0), Err(TensorError::InvalidView(_))));
        assert!(matches!(t.permute(&[0]), Err(TensorError::InvalidView(_))));
        assert!(matches!(
            t.permute(&[1, -1]),
            Err(TensorError::RepeatedDim { dim: 1, .. })
        ));
        assert!(matches!(
            t.unsqueeze(3),
            Err(TensorError::AxisOutOfBounds { .. })
        ));
        assert_eq!(t.unsqueeze(-1).unwrap().shape(), &[2, 3, 1]);
        assert!(matches!(
            t.narrow(0, -3, 1),
            Err(TensorError::IndexOutOfRange { .. })
        ));
        let scalar = t.select(0, 0).unwrap().select(0, 2).unwrap();
        assert_eq!((scalar.shape(), scalar.int_values()), (&[][..], vec![12]));
        assert!(matches!(
            scalar.select(0, 0),
            Err(TensorError::InvalidView(_))
        ));
        assert_eq!(scalar.flatten(0, -1).unwrap().shape(), &[1]);
        assert_eq!(scalar.transpose(0, -1).unwrap().shape(), &[] as &[usize]);
    }

    #[test]
    fn expand_and_as_strided() {
        let t = per_tensor(3, &[3, 1]);
        let e = t.expand(&[2, -1, 4]).unwrap();
        assert_eq!((e.shape(), e.strides()), (&[2, 3, 4][..], &[0, 1, 0][..]));
        assert_eq!(&e.int_values()[..8], &[10, 10, 10, 10, 11, 11, 11, 11]);
        assert!(matches!(
            t.expand(&[2, 2]),
            Err(TensorError::IncompatibleShapes { .. })
        ));
        assert!(matches!(
            t.expand(&[1]),
            Err(TensorError::IncompatibleShapes { .. })
        ));
        let a = t.as_strided(&[2, 2], &[1, 1], 0).unwrap();
        assert_eq!(a.int_values(), vec![10, 11, 11, 12]);
        assert!(matches!(
            t.as_strided(&[2, 2], &[1, 1], 1),
            Err(TensorError::InvalidView(_))
        ));
        assert!(matches!(
            t.as_strided(&[2], &[usize::MAX], 0),
            Err(TensorError::InvalidView(_))
        ));
        assert_eq!(t.as_strided(&[0, 5], &[100, 100], 0).unwrap().numel(), 0);
        assert!(t.as_strided(&[2], &[1, 1], 0).is_err());
        assert!(matches!(
            t.as_strided(&[usize::MAX, 2], &[0, 0], 0),
            Err(TensorError::InvalidView(_))
        ));
        assert!(matches!(
            t.expand(&[i64::MAX, 3, 4]),
            Err(TensorError::InvalidView(_))
        ));
    }

    #[test]
    fn resize_grows_with_zero_point_and_keeps_qparams() {
        let mut t = per_tensor(4, &[2, 2]);
        let before = t.clone();
        t.resize_(&[3]).unwrap();
        assert!(Arc::ptr_eq(t.storage(), before.storage()));
        assert_eq!(t.int_values(), vec![10, 11, 12]);
        t.resize_(&[2, 3]).unwrap();
        assert_eq!(t.int_values(), vec![10, 11, 12, 13, 7, 7]);
        assert_eq!((t.q_scale().unwrap(), t.q_zero_point().unwrap()), (0.5, 7));
        assert_eq!(before.int_values(), vec![10, 11, 12, 13]);
        assert!(matches!(
            t.resize_(&[usize::MAX, 2]),
            Err(TensorError::InvalidView(_))
        ));
        let mut pc = per_channel();
        assert!(matches!(
            pc.resize_(&[12]),
            Err(TensorError::Unsupported { .. })
        ));
    }
}
