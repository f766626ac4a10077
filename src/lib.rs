//! qlab: PyTorch eager-mode quantization, reproduced bit for bit, in a terminal workbench.
//!
//! The crate is layered bottom-up (see `DESIGN.md` in the shared docs): `tensor` holds quantized
//! tensors and the exact quantize / dequantize rules; `observer` collects statistics and derives
//! qparams; `fake_quant` and `qconfig` build on both. Higher layers (graph, engines, workflows,
//! front ends) arrive in later issues and may only depend downward.

pub mod engine;
pub mod fake_quant;
pub mod fsutil;
pub mod graph;
pub mod import;
pub mod isa;
pub mod kernels;
pub mod observer;
pub mod qconfig;
pub mod qnn;
pub mod session;
pub mod tensor;
pub mod workflow;
