//! aarch64 kernels, one file per ISA and op; each is a `#[target_feature]` tier of a reference
//! kernel in [`super::reference`], dispatched from [`super::gemm`].

pub mod dotprod_gemm;
pub mod neon_gemm;
