//! Integer convolution: the scalar reference (the truth every fast conv must reproduce, saturated
//! pairs included) and the fast drivers built on the tiered GEMM — exact NCHW ([`nchw`]), implicit
//! channels-last ([`implicit`]) and depthwise ([`depthwise`]).
//!
//! What a conv *is* ([`ConvGeometry`], [`Operands`], [`PairModel`]) lives in its own file, apart
//! from the reference that defines its semantics, so the fast drivers depend on the reference for
//! nothing but the answer their tests compare against; the buffer helpers they share are likewise
//! on their own.

mod buffers;
pub mod depthwise;
pub mod depthwise_hwc;
mod geometry;
pub mod implicit;
pub mod nchw;
pub mod reference;

pub use geometry::{ConvGeometry, Operands, PairModel};
pub use reference::{GemmFn, conv_u8_i8_i32, conv_u8_i8_i32_with};
