//! Integer compute on plain slices: the scalar reference kernels (the truth every SIMD tier must
//! reproduce), the tiered GEMM and the convolution drivers built on it (implicit channels-last,
//! NCHW, depthwise), layout transposes and the requantization rules of each engine.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod conv_implicit;
pub mod conv_nchw;
pub mod conv_ref;
pub mod depthwise;
pub mod gemm;
pub mod reference;
pub mod requant;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tile;
mod transpose;
#[cfg(target_arch = "x86_64")]
pub mod x86;
