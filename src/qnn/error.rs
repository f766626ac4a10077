//! The typed errors of the quantized-operator layer.

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
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
