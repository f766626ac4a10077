//! The typed errors of the quantized-operator layer.

use crate::engine::Engine;
use crate::tensor::TensorError;
use thiserror::Error;

/// Everything a quantized operator can reject.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QnnError {
    /// An operand of the wrong quantized dtype or scheme.
    #[error("{op}: {operand} must be {expected}, got {got}")]
    Operand {
        op: &'static str,
        operand: &'static str,
        expected: &'static str,
        got: String,
    },
    /// Shapes that do not fit together.
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    /// An operation PyTorch does not offer on this engine (it raises there too).
    #[error("{op} is not supported by the {engine} engine")]
    EngineUnsupported { op: &'static str, engine: Engine },
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
