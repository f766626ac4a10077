//! `QTensor`: integer storage shared between views, a strided layout, a dtype and qparams.
//!
//! Storage is reference-counted so that views (reshape, select, slicing, expand, as_strided)
//! share it as PyTorch's do; operations that produce new values allocate a new contiguous tensor.

use super::qparams::{check_scale, check_zero_point};
use super::quantize::{dequantize_val, dequantize_val_per_channel, min_max};
use super::simd::{self, ChannelLayout, QInt};
use super::{QDType, QParams, QScheme, TensorError, choose_quantization_params};
use std::sync::Arc;

/// The integers behind a quantized tensor, typed by storage width.
#[derive(Debug, Clone, PartialEq)]
pub enum QStorage {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
}

impl QStorage {
    /// The dtype this storage holds.
    pub fn dtype(&self) -> QDType {
        match self {
            QStorage::U8(_) => QDType::QUInt8,
            QStorage::I8(_) => QDType::QInt8,
            QStorage::I32(_) => QDType::QInt32,
        }
    }

    /// Number of stored integers.
    pub fn len(&self) -> usize {
        match self {
            QStorage::U8(v) => v.len(),
            QStorage::I8(v) => v.len(),
            QStorage::I32(v) => v.len(),
        }
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The integer at storage position `i`, widened to i32.
    #[inline]
    pub fn get(&self, i: usize) -> i32 {
        match self {
            QStorage::U8(v) => v[i] as i32,
            QStorage::I8(v) => v[i] as i32,
            QStorage::I32(v) => v[i],
        }
    }

    /// Overwrites the integer at storage position `i` with `v`, already inside the dtype's range.
    pub(crate) fn set(&mut self, i: usize, v: i32) {
        match self {
            QStorage::U8(s) => s[i] = v as u8,
            QStorage::I8(s) => s[i] = v as i8,
            QStorage::I32(s) => s[i] = v,
        }
    }

    /// Builds storage of `dtype` from i32 values already inside the dtype's range.
    pub fn from_i32(dtype: QDType, values: impl IntoIterator<Item = i32>) -> QStorage {
        let it = values.into_iter();
        match dtype {
            QDType::QUInt8 => QStorage::U8(it.map(|v| v as u8).collect()),
            QDType::QInt8 => QStorage::I8(it.map(|v| v as i8).collect()),
            QDType::QInt32 => QStorage::I32(it.collect()),
        }
    }

    /// All values widened to i32, in storage order.
    pub fn to_i32_vec(&self) -> Vec<i32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// A quantized tensor: shared integer storage viewed through shape, strides and offset.
#[derive(Debug, Clone)]
pub struct QTensor {
    qparams: QParams,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    storage: Arc<QStorage>,
}

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1].max(1);
    }
    strides
}

/// Number of elements of `shape` (1 for a 0-d shape).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn check_len(shape: &[usize], got: usize) -> Result<(), TensorError> {
    let expected = numel(shape);
    if expected == got {
        Ok(())
    } else {
        Err(TensorError::ShapeMismatch {
            shape: shape.to_vec(),
            expected,
            got,
        })
    }
}

/// A buffer of `n` storage integers written by `kernel`.
fn filled<T: QInt>(n: usize, kernel: impl FnOnce(&mut [T])) -> Vec<T> {
    let mut out = vec![T::default(); n];
    kernel(&mut out);
    out
}

impl QTensor {
    /// Wraps integers (row-major, contiguous) with qparams, checking every argument.
    pub fn from_int_repr(
        storage: QStorage,
        shape: &[usize],
        qparams: QParams,
    ) -> Result<QTensor, TensorError> {
        check_len(shape, storage.len())?;
        qparams.validate(storage.dtype(), shape)?;
        Ok(QTensor::from_parts_unchecked(
            storage,
            shape.to_vec(),
            qparams,
        ))
    }

    pub(crate) fn from_parts_unchecked(
        storage: QStorage,
        shape: Vec<usize>,
        qparams: QParams,
    ) -> QTensor {
        QTensor {
            qparams,
            strides: contiguous_strides(&shape),
            shape,
            offset: 0,
            storage: Arc::new(storage),
        }
    }

    /// `torch.quantize_per_tensor(x, scale, zero_point, dtype)` on row-major `x` of `shape`.
    pub fn quantize_per_tensor(
        x: &[f32],
        shape: &[usize],
        scale: f64,
        zero_point: i64,
        dtype: QDType,
    ) -> Result<QTensor, TensorError> {
        check_len(shape, x.len())?;
        check_scale(scale)?;
        check_zero_point(zero_point, dtype)?;
        let z = zero_point as i32;
        let storage = match dtype {
            QDType::QUInt8 => QStorage::U8(filled(x.len(), |o| {
                simd::quantize_per_tensor(x, o, scale, z)
            })),
            QDType::QInt8 => QStorage::I8(filled(x.len(), |o| {
                simd::quantize_per_tensor(x, o, scale, z)
            })),
            QDType::QInt32 => QStorage::I32(filled(x.len(), |o| {
                simd::quantize_per_tensor(x, o, scale, z)
            })),
        };
        Ok(QTensor::from_parts_unchecked(
            storage,
            shape.to_vec(),
            QParams::PerTensor { scale, zero_point },
        ))
    }

    /// `torch.quantize_per_channel(x, scales, zero_points, axis, dtype)`; `axis` may be negative.
    pub fn quantize_per_channel(
        x: &[f32],
        shape: &[usize],
        scales: &[f64],
        zero_points: &[i64],
        axis: i64,
        dtype: QDType,
    ) -> Result<QTensor, TensorError> {
        check_len(shape, x.len())?;
        let axis = super::qparams::resolve_axis(axis, shape.len())?;
        let qparams = QParams::PerChannel {
            scales: scales.to_vec(),
            zero_points: zero_points.to_vec(),
            axis,
        };
        qparams.validate(dtype, shape)?;
        let layout = ChannelLayout::of(shape, axis);
        let n = x.len();
        let storage = match dtype {
            QDType::QUInt8 => QStorage::U8(filled(n, |o| {
                simd::quantize_per_channel(x, o, layout, scales, zero_points)
            })),
            QDType::QInt8 => QStorage::I8(filled(n, |o| {
                simd::quantize_per_channel(x, o, layout, scales, zero_points)
            })),
            QDType::QInt32 => QStorage::I32(filled(n, |o| {
                simd::quantize_per_channel(x, o, layout, scales, zero_points)
            })),
        };
        Ok(QTensor::from_parts_unchecked(
            storage,
            shape.to_vec(),
            qparams,
        ))
    }

    /// Quantizes `x` with whichever qparams it is given (per tensor or per channel).
    pub fn quantize(
        x: &[f32],
        shape: &[usize],
        qparams: &QParams,
        dtype: QDType,
    ) -> Result<QTensor, TensorError> {
        match qparams {
            QParams::PerTensor { scale, zero_point } => {
                QTensor::quantize_per_tensor(x, shape, *scale, *zero_point, dtype)
            }
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } => QTensor::quantize_per_channel(x, shape, scales, zero_points, *axis as i64, dtype),
        }
    }

    /// `torch.quantize_per_tensor_dynamic(x, dtype, reduce_range)`: qparams chosen from the
    /// tensor's own min/max by the C++ rule (§2.8), then quantized per tensor.
    pub fn quantize_per_tensor_dynamic(
        x: &[f32],
        shape: &[usize],
        dtype: QDType,
        reduce_range: bool,
    ) -> Result<QTensor, TensorError> {
        let (min, max) = min_max(x);
        let chosen = choose_quantization_params(
            min,
            max,
            dtype.qmin() as i32,
            dtype.qmax() as i32,
            false,
            reduce_range,
        )?;
        QTensor::quantize_per_tensor(x, shape, chosen.scale, chosen.zero_point as i64, dtype)
    }

    /// Storage dtype.
    pub fn dtype(&self) -> QDType {
        self.storage.dtype()
    }

    /// Logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Strides in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Offset of the first element in storage.
    pub fn storage_offset(&self) -> usize {
        self.offset
    }

    /// The shared storage (views of one tensor share it).
    pub fn storage(&self) -> &Arc<QStorage> {
        &self.storage
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Rank.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The qparams.
    pub fn qparams(&self) -> &QParams {
        &self.qparams
    }

    /// `qscheme()`: affine per-tensor or per-channel (symmetric tensors are stored affine).
    pub fn qscheme(&self) -> QScheme {
        self.qparams.qscheme()
    }

    /// `q_scale()`; an error for per-channel tensors.
    pub fn q_scale(&self) -> Result<f64, TensorError> {
        match &self.qparams {
            QParams::PerTensor { scale, .. } => Ok(*scale),
            QParams::PerChannel { .. } => Err(self.not_per_tensor("q_scale")),
        }
    }

    /// `q_zero_point()`; an error for per-channel tensors.
    pub fn q_zero_point(&self) -> Result<i64, TensorError> {
        match &self.qparams {
            QParams::PerTensor { zero_point, .. } => Ok(*zero_point),
            QParams::PerChannel { .. } => Err(self.not_per_tensor("q_zero_point")),
        }
    }

    /// `q_per_channel_scales()`; an error for per-tensor tensors.
    pub fn q_per_channel_scales(&self) -> Result<&[f64], TensorError> {
        match &self.qparams {
            QParams::PerChannel { scales, .. } => Ok(scales),
            QParams::PerTensor { .. } => Err(self.not_per_channel("q_per_channel_scales")),
        }
    }

    /// `q_per_channel_zero_points()`; an error for per-tensor tensors.
    pub fn q_per_channel_zero_points(&self) -> Result<&[i64], TensorError> {
        match &self.qparams {
            QParams::PerChannel { zero_points, .. } => Ok(zero_points),
            QParams::PerTensor { .. } => Err(self.not_per_channel("q_per_channel_zero_points")),
        }
    }

    /// `q_per_channel_axis()`; an error for per-tensor tensors.
    pub fn q_per_channel_axis(&self) -> Result<usize, TensorError> {
        match &self.qparams {
            QParams::PerChannel { axis, .. } => Ok(*axis),
            QParams::PerTensor { .. } => Err(self.not_per_channel("q_per_channel_axis")),
        }
    }

    fn not_per_tensor(&self, op: &'static str) -> TensorError {
        TensorError::Unsupported {
            op,
            what: "a per-channel quantized tensor".into(),
        }
    }

    fn not_per_channel(&self, op: &'static str) -> TensorError {
        TensorError::Unsupported {
            op,
            what: "a per-tensor quantized tensor".into(),
        }
    }

    /// True when the elements are laid out row-major without gaps from the offset on.
    pub fn is_contiguous(&self) -> bool {
        self.strides == contiguous_strides(&self.shape)
    }

    /// Storage positions of every element in logical row-major order.
    pub fn storage_indices(&self) -> StorageIndices<'_> {
        StorageIndices::new(&self.shape, &self.strides, self.offset)
    }

    /// The integers in logical row-major order, widened to i32.
    pub fn int_values(&self) -> Vec<i32> {
        if self.is_contiguous() {
            // One run of storage: a plain widening loop instead of the per-element index walk
            // (convert widens every weight this way).
            let run = self.offset..self.offset + self.numel();
            return match &*self.storage {
                QStorage::U8(v) => v[run].iter().map(|&q| q as i32).collect(),
                QStorage::I8(v) => v[run].iter().map(|&q| q as i32).collect(),
                QStorage::I32(v) => v[run].to_vec(),
            };
        }
        self.storage_indices()
            .map(|i| self.storage.get(i))
            .collect()
    }

    /// `int_repr()`: the stored integers, contiguous, in their own storage type.
    pub fn int_repr(&self) -> QStorage {
        if self.is_contiguous() && self.offset == 0 && self.storage.len() == self.numel() {
            return (*self.storage).clone();
        }
        QStorage::from_i32(
            self.dtype(),
            self.storage_indices().map(|i| self.storage.get(i)),
        )
    }

    /// `dequantize()`: row-major f32 values (per-tensor in f32, per-channel through f64).
    pub fn dequantize(&self) -> Vec<f32> {
        if self.numel() == 0 {
            return Vec::new();
        }
        if self.is_contiguous() {
            let range = self.offset..self.offset + self.numel();
            return match &*self.storage {
                QStorage::U8(v) => self.dequantize_contiguous(&v[range]),
                QStorage::I8(v) => self.dequantize_contiguous(&v[range]),
                QStorage::I32(v) => self.dequantize_contiguous(&v[range]),
            };
        }
        match &self.qparams {
            QParams::PerTensor { scale, zero_point } => {
                let (s, z) = (*scale as f32, *zero_point as i32);
                self.storage_indices()
                    .map(|i| dequantize_val(self.storage.get(i), z, s))
                    .collect()
            }
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } => {
                let mut out = Vec::with_capacity(self.numel());
                let mut idx = vec![0usize; self.ndim()];
                for pos in self.storage_indices() {
                    let c = idx[*axis];
                    out.push(dequantize_val_per_channel(
                        self.storage.get(pos),
                        zero_points[c],
                        scales[c],
                    ));
                    advance(&mut idx, &self.shape);
                }
                out
            }
        }
    }

    /// `dequantize()` of the contiguous run `q` of this tensor's storage, on the fast kernels.
    fn dequantize_contiguous<T: QInt>(&self, q: &[T]) -> Vec<f32> {
        let mut out = vec![0.0; q.len()];
        match &self.qparams {
            QParams::PerTensor { scale, zero_point } => {
                simd::dequantize_per_tensor(q, &mut out, *scale, *zero_point as i32)
            }
            QParams::PerChannel {
                scales,
                zero_points,
                axis,
            } => {
                let layout = ChannelLayout::of(&self.shape, *axis);
                simd::dequantize_per_channel(q, &mut out, layout, scales, zero_points)
            }
        }
        out
    }

    /// A contiguous copy (or this tensor, when already contiguous from offset 0).
    pub fn contiguous(&self) -> QTensor {
        if self.is_contiguous() && self.offset == 0 && self.storage.len() == self.numel() {
            return self.clone();
        }
        QTensor::from_parts_unchecked(self.int_repr(), self.shape.clone(), self.qparams.clone())
    }

    /// Builds a view of this tensor's storage with another layout and qparams.
    pub(crate) fn view_with(
        &self,
        shape: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
        qparams: QParams,
    ) -> QTensor {
        let storage = Arc::clone(&self.storage);
        QTensor::from_shared(storage, (shape, strides, offset), qparams)
    }

    /// A tensor over new storage with the given layout (resize grows storage this way).
    pub(crate) fn from_layout(
        storage: QStorage,
        shape: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
        qparams: QParams,
    ) -> QTensor {
        QTensor::from_shared(Arc::new(storage), (shape, strides, offset), qparams)
    }

    /// The one place a strided tensor is assembled from its parts (`layout` is shape,
    /// strides, offset), so views and resized tensors cannot drift apart.
    fn from_shared(
        storage: Arc<QStorage>,
        (shape, strides, offset): (Vec<usize>, Vec<usize>, usize),
        qparams: QParams,
    ) -> QTensor {
        QTensor {
            qparams,
            shape,
            strides,
            offset,
            storage,
        }
    }

    /// Storage for writing: copy-on-write, so views made earlier keep the old integers.
    pub(crate) fn storage_mut(&mut self) -> &mut QStorage {
        Arc::make_mut(&mut self.storage)
    }

    /// Replaces the qparams (copy_ from a quantized source adopts the source's, as PyTorch does).
    pub(crate) fn set_qparams(&mut self, qparams: QParams) {
        self.qparams = qparams;
    }

    /// A new contiguous tensor with the same qparams and the given integers and shape.
    pub(crate) fn with_values(
        &self,
        values: impl IntoIterator<Item = i32>,
        shape: Vec<usize>,
        qparams: QParams,
    ) -> QTensor {
        QTensor::from_parts_unchecked(QStorage::from_i32(self.dtype(), values), shape, qparams)
    }
}

/// Advances a row-major multi-index by one; returns false after the last element.
#[inline]
pub fn advance(idx: &mut [usize], shape: &[usize]) -> bool {
    for d in (0..shape.len()).rev() {
        idx[d] += 1;
        if idx[d] < shape[d] {
            return true;
        }
        idx[d] = 0;
    }
    false
}

/// Iterator over the storage positions of a strided layout, in logical row-major order.
pub struct StorageIndices<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    idx: Vec<usize>,
    pos: usize,
    remaining: usize,
}

impl<'a> StorageIndices<'a> {
    fn new(shape: &'a [usize], strides: &'a [usize], offset: usize) -> Self {
        StorageIndices {
            shape,
            strides,
            idx: vec![0; shape.len()],
            pos: offset,
            remaining: numel(shape),
        }
    }
}

impl Iterator for StorageIndices<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let out = self.pos;
        for d in (0..self.shape.len()).rev() {
            self.idx[d] += 1;
            self.pos += self.strides[d];
            if self.idx[d] < self.shape[d] {
                break;
            }
            self.pos -= self.strides[d] * self.shape[d];
            self.idx[d] = 0;
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}
