//! Carrying a model out of qlab as a file another runtime reads. [`qdq_model`] writes the
//! converted int8 model as ONNX in QDQ form (what ONNX Runtime's own quantizer produces and
//! fuses into integer kernels); the importer reads such files back (`QuantizeLinear` /
//! `DequantizeLinear` are graph ops), so an export can be checked by loading it again.

mod check;
mod onnx_ops;
mod proto_build;
mod qdq;

pub use check::check_model;
pub use qdq::{QdqSummary, qdq_model};

use thiserror::Error;

/// Why a model could not be exported; each names the layer or input at fault.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExportError {
    #[error("layer '{layer}' ({op}) cannot be exported: {why}")]
    Unsupported {
        layer: String,
        op: String,
        why: String,
    },
    #[error(
        "input '{input}' has a dynamic dim {dim}: the export reads each value's qparams from one run, which needs every dim but the batch fixed"
    )]
    DynamicDim { input: String, dim: usize },
    #[error("running the model to read its qparams failed: {0}")]
    Probe(String),
    /// The written model breaks an ONNX rule: a bug in the export, caught before writing.
    #[error("the exported model is not valid ONNX (a bug in qlab, please report it): {0}")]
    Invalid(String),
}
