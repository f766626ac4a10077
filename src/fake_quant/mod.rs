//! Fake quantization: quantize-then-dequantize in float, so training sees quantization error
//! while gradients flow (QAT).
//!
//! [`functional`] holds PyTorch's two `fake_quantize_*` kernels with their straight-through
//! masks; [`FakeQuantize`] is the module QAT inserts (observer + enable flags + qparam buffers),
//! covering both the plain and the fused moving-average variant; [`FakeQuantizeSpec`] is its
//! configuration as a value, which QConfig presets and the session language pass around.

mod error;
pub mod functional;
mod fused;
mod module;
mod spec;

pub use error::FakeQuantError;
pub use functional::{
    FakeQuantOutput, fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine, grad_mask,
    straight_through,
};
pub use module::FakeQuantize;
pub use spec::{FakeQuantKind, FakeQuantizeSpec};
