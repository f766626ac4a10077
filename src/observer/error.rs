//! The typed errors of the observer layer.

use crate::tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong configuring or running an observer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ObserverError {
    /// A configuration PyTorch refuses at construction (message names the field).
    #[error("invalid observer configuration: {0}")]
    InvalidConfig(String),
    /// A custom integer range PyTorch refuses (not ordered, not containing zero, too wide).
    #[error("invalid quant_min={quant_min}, quant_max={quant_max}: {why}")]
    InvalidRange {
        quant_min: i64,
        quant_max: i64,
        why: &'static str,
    },
    /// `calculate_qparams` on an observer whose running min exceeds its max.
    #[error("min_val {min} is greater than max_val {max}")]
    MinGreaterThanMax { min: f32, max: f32 },
    /// An observer kind that has no qparams (placeholder, noop, recording).
    #[error("calculate_qparams should not be called for {0}")]
    NoQParams(&'static str),
    /// Input that does not fit the observer (rank too small for ch_axis, channel count changed).
    #[error("input does not fit the observer: {0}")]
    BadInput(String),
    /// Observer-spec text that does not parse.
    #[error("cannot parse observer spec '{text}': {why}")]
    Parse { text: String, why: String },
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
