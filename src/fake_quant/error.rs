//! The typed errors of the fake-quant layer: every variant names the offending argument.

use crate::observer::ObserverError;
use crate::tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong configuring or running a fake-quant.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FakeQuantError {
    /// quant_min / quant_max that do not form a range a 32-bit kernel can clamp to.
    #[error("invalid fake-quant range quant_min={quant_min}, quant_max={quant_max}: {why}")]
    BadRange {
        quant_min: i64,
        quant_max: i64,
        why: &'static str,
    },
    /// A zero point outside `[quant_min, quant_max]` (PyTorch refuses these too).
    #[error(
        "zero_point {zero_point} (channel {channel}) is outside [quant_min={quant_min}, quant_max={quant_max}]"
    )]
    ZeroPointOutOfRange {
        zero_point: i64,
        channel: usize,
        quant_min: i64,
        quant_max: i64,
    },
    /// A scale that is NaN, infinite, not positive, or whose f32 reciprocal overflows (qlab
    /// rejects what PyTorch silently accepts).
    #[error("scale {scale} (channel {channel}) must be finite and > 0 with a finite reciprocal")]
    BadScale { scale: f64, channel: usize },
    /// A gradient whose length differs from the forward input's.
    #[error("grad_output has {got} elements but the forward input had {expected}")]
    GradLength { expected: usize, got: usize },
    /// `backward` called before any `forward`.
    #[error("backward called before forward")]
    NoForward,
    /// A module configuration PyTorch cannot run (message names the field).
    #[error("invalid fake-quant configuration: {0}")]
    InvalidConfig(String),
    /// Fake-quant spec text that does not parse.
    #[error("cannot parse fake-quant spec '{text}': {why}")]
    Parse { text: String, why: String },
    /// An error from the observer layer.
    #[error(transparent)]
    Observer(#[from] ObserverError),
    /// An error from the tensor layer (shape, axis, channel count, qparams chooser).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
