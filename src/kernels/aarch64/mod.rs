//! aarch64 kernels, one file per ISA and op; each is a `#[target_feature]` tier of a reference
//! kernel in [`super::reference`], dispatched from [`super::gemm`], or of [`super::pool`]'s row max.

pub mod dotprod_gemm;
pub mod neon_gemm;
pub mod neon_pool;
