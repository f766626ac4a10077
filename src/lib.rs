//! qlab: PyTorch eager-mode quantization, reproduced bit for bit, in a terminal workbench.
//!
//! The crate is layered bottom-up (see `DESIGN.md` in the shared docs): `tensor` holds quantized
//! tensors and the exact quantize / dequantize rules; `observer` collects statistics and derives
//! qparams; `fake_quant` and `qconfig` build on both; `kernels`, `engine` and `qnn` compute
//! quantized operators; `graph` and `import` hold float models; `analysis`, `session` and
//! `repl` serve the user. Each layer depends only on the ones below it.

pub mod analysis;
pub mod bench;
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
pub mod repl;
pub mod session;
pub mod tensor;
pub mod workflow;
