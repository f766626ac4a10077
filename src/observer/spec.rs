//! `ObserverSpec`: an observer's configuration as a value (text form, defaults, validation).

use crate::tensor::{DType, QScheme};

/// Which observer (or calibrator) a spec builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObserverKind {
    MinMax,
    MovingAverageMinMax,
    PerChannelMinMax,
    MovingAveragePerChannelMinMax,
    Histogram,
    Placeholder,
    Noop,
    Recording,
    /// qlab extension: clip at a percentile of the histogram.
    Percentile,
    /// qlab extension: minimise KL divergence (TensorRT-style entropy calibration).
    Entropy,
    /// qlab extension: sweep clip ranges and minimise the mean squared quantization error.
    Mse,
}

/// A complete observer configuration. Fields a kind does not use are ignored by it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObserverSpec {
    pub kind: ObserverKind,
    pub dtype: DType,
    pub qscheme: QScheme,
    pub reduce_range: bool,
    /// Custom range; both or neither (PyTorch's `has_customized_qrange`).
    pub quant_min: Option<i64>,
    pub quant_max: Option<i64>,
    pub eps: f32,
    pub averaging_constant: f32,
    pub ch_axis: i64,
    pub bins: usize,
    pub upsample_rate: usize,
    pub is_dynamic: bool,
    /// Percentile calibrator: the kept fraction in percent (e.g. 99.99).
    pub percentile: f64,
}
