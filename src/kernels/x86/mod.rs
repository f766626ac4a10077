//! x86-64 kernels, one file per ISA and op; each is a `#[target_feature]` tier of a reference
//! kernel in [`super::reference`], dispatched from [`super::gemm`].

pub mod avx2_gemm;
pub mod avx2_requant;
pub mod avx512_depthwise;
pub mod avx512_requant;
pub mod avx512vnni_gemm;
pub(crate) mod sse2_pack;
