//! The typed errors of the tensor layer: every variant names the offending field and value.

use thiserror::Error;

/// Everything that can go wrong building or operating on a quantized tensor.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TensorError {
    /// A zero point that the storage type cannot hold.
    #[error("zero_point {zero_point} is outside the range of {dtype} ({qmin}..={qmax})")]
    ZeroPointOutOfRange {
        zero_point: i64,
        dtype: &'static str,
        qmin: i64,
        qmax: i64,
    },
    /// A scale that is NaN, infinite, zero or negative (qlab rejects what PyTorch silently accepts).
    #[error("scale {scale} must be finite and > 0")]
    BadScale { scale: f64 },
    /// A per-channel axis beyond the tensor's rank.
    #[error("axis {axis} is out of bounds for a tensor of rank {ndim}")]
    AxisOutOfBounds { axis: i64, ndim: usize },
    /// Per-channel scales and zero points of different lengths, or not matching the axis size.
    #[error(
        "per-channel qparams mismatch: {scales} scales, {zero_points} zero points, axis size {axis_len}"
    )]
    ChannelCountMismatch {
        scales: usize,
        zero_points: usize,
        axis_len: usize,
    },
    /// A shape whose element count differs from the data supplied.
    #[error("shape {shape:?} needs {expected} elements but {got} were given")]
    ShapeMismatch {
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// The operation does not apply to this dtype.
    #[error("{op} is not supported for {what}")]
    Unsupported { op: &'static str, what: String },
    /// An index or range outside a dimension.
    #[error("{what}: index {index} is out of range for dimension {dim} of size {size}")]
    IndexOutOfRange {
        what: &'static str,
        index: i64,
        dim: usize,
        size: usize,
    },
    /// A view that cannot be formed from the tensor's layout or qparams.
    #[error("invalid view: {0}")]
    InvalidView(String),
    /// quant_min / quant_max that cannot form a range.
    #[error("invalid quantization range quant_min={quant_min}, quant_max={quant_max}: {why}")]
    BadRange {
        quant_min: i64,
        quant_max: i64,
        why: &'static str,
    },
    /// min > max handed to a qparams computation.
    #[error("min {min} is greater than max {max}")]
    MinGreaterThanMax { min: f32, max: f32 },
    /// A reduction over no elements, whose result PyTorch leaves undefined or rejects.
    #[error("{op} over an empty tensor or an empty dimension")]
    EmptyReduction { op: &'static str },
    /// A dimension listed twice in a reduction or permutation.
    #[error("{op}: dim {dim} appears more than once")]
    RepeatedDim { op: &'static str, dim: usize },
    /// Shapes that cannot be broadcast together or must be equal and are not.
    #[error("{op}: shapes {a:?} and {b:?} are incompatible")]
    IncompatibleShapes {
        op: &'static str,
        a: Vec<usize>,
        b: Vec<usize>,
    },
    /// Two quantized tensors whose qscheme or dtype must agree and do not.
    #[error("{op}: {why}")]
    QParamsMismatch { op: &'static str, why: String },
}
