//! qlab's integration tests, as one binary: the crate is linked once, not once per file.
//!
//! Each module is one area (named as the files were when each was its own binary, so
//! `cargo test --test it props_gemm::` runs one area). `support` holds what they share. Tests
//! whose data is not in the repository (the shared zoo beside the checkout, tmux) print
//! `SKIPPED what: why` on stderr, visible without `--nocapture`; the golden harness prints its
//! per-file counts the same way. Cancellation, which sets a process-wide flag, has its own
//! binary (`tests/cancel.rs`) so it cannot stop another test's work.

mod support;

mod bias_correction;
mod cli;
mod diagnose;
mod equalize;
mod errors_qconv;
mod errors_tensor;
mod export_onnx;
mod export_pytorch;
mod float_models;
mod golden;
mod import_errors;
mod import_external;
mod native_int8;
mod onnx_ops;
mod props_depthwise;
mod props_fake_quant;
mod props_gemm;
mod props_observers;
mod props_pool;
mod props_qconv;
mod props_qnn_eltwise;
mod props_simd;
mod qat;
mod qconfig;
mod row_parallel;
mod search;
mod sessions;
mod train;
mod tui;
mod tui_e2e;
mod workflow;
