//! Integer compute on plain slices: the scalar reference kernels (the truth every SIMD tier must
//! reproduce), the tiered GEMM and the convolution drivers built on it (implicit channels-last,
//! NCHW, depthwise), max pooling, layout transposes and the requantization rules of each engine.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod conv;
pub mod fchain;
pub mod gemm;
pub mod lut;
pub mod patches;
pub mod pool;
pub mod reference;
pub mod requant;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tile;
mod transpose;
#[cfg(target_arch = "x86_64")]
pub mod x86;

// The conv files' paths from before `conv/`, which the property tests name.
pub use conv::{depthwise, depthwise_hwc, implicit as conv_implicit, nchw as conv_nchw};

/// The reference conv's former path: the conv description types and the reference itself.
pub mod conv_ref {
    pub use super::conv::{
        ConvGeometry, GemmFn, Operands, PairModel, conv_u8_i8_i32, conv_u8_i8_i32_with,
    };
}
