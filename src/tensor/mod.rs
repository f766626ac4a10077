//! Quantized tensors and the primitive numerics every other layer relies on.
//!
//! Scales are stored as f64 and zero points as i64, exactly as PyTorch stores them; kernels derive
//! the f32 scale and the f32 reciprocal at the point of use (NUMERICS §1). Everything here is
//! engine-independent.

mod choose;
mod compare;
mod dtype;
mod error;
mod qparams;
mod qtensor;
pub mod quantize;
mod reduce;
pub mod simd;
mod sort;
mod view;

/// A per-tensor test tensor of `dtype` holding `values` (the fixture the tensor modules'
/// unit tests share).
#[cfg(test)]
pub(crate) fn test_tensor(
    dtype: QDType,
    values: &[i32],
    shape: &[usize],
    scale: f64,
    zero_point: i64,
) -> QTensor {
    let q = QParams::PerTensor { scale, zero_point };
    QTensor::from_int_repr(QStorage::from_i32(dtype, values.iter().copied()), shape, q)
        .expect("a valid test tensor")
}

pub use choose::{ChosenQParams, choose_quantization_params};
pub use compare::{CmpOp, broadcast_shape};
pub use dtype::{DType, QDType, QScheme};
pub use error::TensorError;
pub use qparams::QParams;
pub use qtensor::{QStorage, QTensor};
