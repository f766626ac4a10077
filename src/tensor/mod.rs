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

pub use choose::{ChosenQParams, choose_quantization_params};
pub use compare::{CmpOp, broadcast_shape};
pub use dtype::{DType, QDType, QScheme};
pub use error::TensorError;
pub use qparams::QParams;
pub use qtensor::{QStorage, QTensor};
