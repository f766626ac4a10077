//! qlab: PyTorch eager-mode quantization, reproduced bit for bit, in a terminal workbench.
//!
//! The crate is layered bottom-up (see `DESIGN.md` in the shared docs): `tensor` holds quantized
//! tensors and the exact quantize / dequantize rules; `observer` collects statistics and derives
//! qparams; `fake_quant` and `qconfig` build on both; `kernels`, `engine` and `qnn` compute
//! quantized operators; `graph` and `import` hold float models; `analysis`, `session`, `repl`
//! and `tui` serve the user. Each layer depends only on the ones below it.
//!
//! # Example: static post-training quantization, as PyTorch's eager mode does it
//!
//! ```
//! use qlab::engine::{Engine, HostProfile, Numerics};
//! use qlab::import::{Dataset, onnx::load_onnx};
//! use qlab::qconfig::presets::get_default_qconfig;
//! use qlab::workflow::{self, QConfigKey, QConfigMap};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let float = load_onnx("sample-models/digits_cnn.onnx".as_ref())?;
//! // Conv+ReLU and friends become one module each (BatchNorm would be folded bit-exactly).
//! let (fused, _groups) = workflow::fuse_auto(&float)?;
//! // fbgemm's default qconfig everywhere, but keep the classifier in float.
//! let mut qconfigs = QConfigMap::global(get_default_qconfig("fbgemm")?);
//! qconfigs.set(QConfigKey::Path("fc".into()), None);
//! let mut prepared = workflow::prepare(&fused, &qconfigs)?;
//! let calib = Dataset::from_npy("calib", "sample-models/data/digits_calib_x.npy".as_ref(), None)?;
//! for range in calib.batch_ranges(32) {
//!     prepared.calibrate_batch(vec![calib.rows(range)])?;
//! }
//! for finding in workflow::check(&prepared, Engine::Fbgemm) {
//!     println!("{finding}");
//! }
//! let model = workflow::convert(&prepared, Numerics::new(Engine::Fbgemm, HostProfile::Vnni))?;
//! let logits = model.run(vec![calib.rows(0..4)], |node, outputs| {
//!     // Every node's output (quantized or float) passes here, for analysis.
//!     let _ = (node, outputs);
//! })?;
//! assert_eq!(logits[0].shape(), [4, 10]);
//! // Dynamic quantization needs no calibration:
//! let mlp = load_onnx("sample-models/digits_mlp.onnx".as_ref())?;
//! let dynamic = workflow::quantize_dynamic(
//!     &mlp,
//!     &workflow::dynamic_qconfig_map(&mlp, false),
//!     Numerics::default(),
//! )?;
//! # let _ = dynamic;
//! # Ok(())
//! # }
//! ```

pub mod analysis;
pub mod bench;
pub mod bench_against;
pub mod bench_model;
pub mod bench_scaling;
pub mod cancel;
pub mod engine;
pub mod export;
pub mod fake_quant;
pub mod fsutil;
pub mod graph;
pub mod import;
pub mod isa;
pub mod kernels;
#[cfg(test)]
mod layering;
pub mod observer;
pub mod qconfig;
pub mod qnn;
pub mod repl;
pub mod report;
pub mod session;
pub mod tensor;
pub mod tui;
pub mod workflow;
