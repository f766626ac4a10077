//! The typed errors of the quantized-operator layer.

use crate::engine::Engine;
use crate::tensor::{QDType, TensorError};
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
    /// Two operands that must share a dtype do not.
    #[error("{op}: operands must share a dtype, got {left} and {right}")]
    DTypeMismatch {
        op: &'static str,
        left: QDType,
        right: QDType,
    },
    /// An input without elements (PyTorch's kernels would return an empty tensor or fail
    /// deep inside; qlab refuses up front).
    #[error("{op}: input {shape:?} has no elements")]
    EmptyInput { op: &'static str, shape: Vec<usize> },
    /// A pooling window that does not fit the padded input, so no output position exists.
    #[error("{op}: window {kernel} (dilated) does not fit padded input length {padded}")]
    WindowTooLarge {
        op: &'static str,
        kernel: usize,
        padded: usize,
    },
    /// A parameter outside its domain (zero stride, padding beyond half the window, ...).
    #[error("{op}: {detail}")]
    InvalidParam { op: &'static str, detail: String },
    /// A requested output size that is zero or cannot be formed from the input.
    #[error("{op}: invalid output size: {detail}")]
    OutputSize { op: &'static str, detail: String },
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// An observer rejected a weight at convert time.
    #[error(transparent)]
    Observer(crate::observer::ObserverError),
}

/// Tensor-layer failures keep their own variant however deep they arose (a NaN weight gives a
/// NaN scale, which quantize rejects as a `TensorError`).
impl From<crate::observer::ObserverError> for QnnError {
    fn from(e: crate::observer::ObserverError) -> Self {
        match e {
            crate::observer::ObserverError::Tensor(t) => QnnError::Tensor(t),
            other => QnnError::Observer(other),
        }
    }
}
