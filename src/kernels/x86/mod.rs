//! x86-64 kernels, one file per ISA and op; each is a `#[target_feature]` tier of a portable kernel
//! it must reproduce bit for bit: GEMM tiles of [`super::reference`] (dispatched from
//! [`super::gemm`]), depthwise chunks of [`super::conv::depthwise`]'s portable body, the row max
//! of [`super::pool`], the float FMA chains of [`super::fchain`], the requantization rules of
//! [`super::requant`] (dispatched from there), and the byte shuffles of the GEMM's k-major
//! panels and of `kernels::transpose`, and the byte lookup of [`super::lut`].

pub mod avx2_bounded_gemm;
pub mod avx2_gemm;
pub mod avx2_pool;
pub mod avx2_requant;
pub mod avx512_depthwise;
pub mod avx512_lut;
pub mod avx512_pool;
pub mod avx512_requant;
pub mod avx512vnni_gemm;
pub mod avxvnni_gemm;
pub mod fchain;
pub(crate) mod sse2_pack;
