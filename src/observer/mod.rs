//! Observers watch float tensors flowing through a model and turn what they saw into qparams.
//!
//! Every observer keeps its statistics ([`Stats`]) rather than only its answer, so qparams can
//! be re-derived for another scheme, dtype or range without seeing the data again ("collect
//! once, re-derive"). Observers are built from an [`ObserverSpec`], a plain value that prints to
//! and parses from the session-language text (`histogram(bins=2048, reduce_range=true)`).

mod entropy;
mod error;
mod histc;
mod histogram;
mod minmax;
mod moving_average;
mod mse;
mod norm_search;
mod per_channel;
mod percentile;
mod placeholder;
mod qparams;
mod recording;
mod spec;
pub(crate) mod torch_sum;

pub use error::ObserverError;
pub use histc::{Binned, histc_on};
pub use histogram::HistogramObserver;
pub use minmax::{MinMaxObserver, MovingAverageMinMaxObserver};
pub use per_channel::{
    MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver, channel_min_max,
    resolve_ch_axis,
};
pub use placeholder::{NoopObserver, PlaceholderObserver};
pub use qparams::{qparams_from_min_max, qparams_from_stats};
pub use recording::{Recorded, RecordingObserver};
pub use spec::{
    ALL_KINDS, MAX_BINS, MAX_UPSAMPLE, ObserverKind, ObserverSpec, QRange, option_names,
};

use crate::tensor::{QDType, QParams, QScheme, QTensor};
use std::any::Any;
use std::fmt;

/// What an observer has collected so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Stats {
    /// Nothing is kept (placeholder / noop observers).
    None,
    /// Running per-tensor min and max (+inf / -inf before any data).
    MinMax { min: f32, max: f32 },
    /// Running per-channel min and max along `axis` (empty before any data).
    PerChannel {
        mins: Vec<f32>,
        maxs: Vec<f32>,
        axis: usize,
    },
    /// A histogram of `counts.len()` equal bins over `[min, max]` (counts are f32, as in PyTorch).
    Histogram {
        min: f32,
        max: f32,
        counts: Vec<f32>,
    },
}

/// qparams as an observer's `calculate_qparams` returns them: f32 scales and i64 zero points,
/// one entry per-tensor or one per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedQParams {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    /// The channel axis for per-channel schemes.
    pub axis: Option<usize>,
    pub dtype: QDType,
    pub qscheme: QScheme,
    pub quant_min: i64,
    pub quant_max: i64,
}

impl ObservedQParams {
    /// The qparams a tensor quantized with these would carry (scales widened to f64; symmetric
    /// schemes stored in their affine form, as PyTorch's convert does).
    pub fn to_qparams(&self) -> QParams {
        match self.axis {
            Some(axis) => QParams::PerChannel {
                scales: self.scales.iter().map(|&s| s as f64).collect(),
                zero_points: self.zero_points.clone(),
                axis,
            },
            None => QParams::PerTensor {
                scale: self.scales[0] as f64,
                zero_point: self.zero_points[0],
            },
        }
    }
}

/// Cloning through a `Box<dyn Observer>` (a calibration can run on a copy and be committed or
/// dropped as a whole).
pub trait ObserverClone {
    fn clone_box(&self) -> Box<dyn Observer>;

    /// Downcasting hook for front ends that show observer-specific detail.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Observer + Clone + 'static> ObserverClone for T {
    fn clone_box(&self) -> Box<dyn Observer> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Clone for Box<dyn Observer> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// An observer: records statistics of the tensors it is shown and derives qparams from them.
pub trait Observer: fmt::Debug + Send + ObserverClone {
    /// Records one row-major tensor `x` of `shape`. The tensor itself is never changed.
    fn forward(&mut self, x: &[f32], shape: &[usize]) -> Result<(), ObserverError>;

    /// qparams from everything seen so far (PyTorch's `calculate_qparams`). By default none:
    /// the observers that only pass through or record (PyTorch raises for them too).
    fn calculate_qparams(&self) -> Result<ObservedQParams, ObserverError> {
        Err(ObserverError::NoQParams(placeholder::class_name(
            self.spec().kind,
        )))
    }

    /// The spec this observer was built from.
    fn spec(&self) -> &ObserverSpec;

    /// The statistics collected so far (by default none).
    fn stats(&self) -> Stats {
        Stats::None
    }
}

/// Builds the observer a (validated) spec describes.
pub(crate) fn build(spec: &ObserverSpec) -> Result<Box<dyn Observer>, ObserverError> {
    Ok(match spec.kind {
        ObserverKind::MinMax | ObserverKind::MovingAverageMinMax => {
            Box::new(MinMaxObserver::new(spec)?)
        }
        ObserverKind::PerChannelMinMax | ObserverKind::MovingAveragePerChannelMinMax => {
            Box::new(PerChannelMinMaxObserver::new(spec)?)
        }
        ObserverKind::Histogram
        | ObserverKind::Percentile
        | ObserverKind::Entropy
        | ObserverKind::Mse => Box::new(HistogramObserver::new(spec)?),
        ObserverKind::Placeholder | ObserverKind::Noop => Box::new(PlaceholderObserver::new(spec)?),
        ObserverKind::Recording => Box::new(RecordingObserver::new(spec)?),
    })
}

/// What convert does to a weight: observe `x` once with `spec`, derive qparams, and quantize `x`
/// with them. Returns the quantized tensor and the qparams (scales as the observer made them).
pub fn observe_and_quantize(
    spec: &ObserverSpec,
    x: &[f32],
    shape: &[usize],
) -> Result<(QTensor, ObservedQParams), ObserverError> {
    let mut observer = spec.build()?;
    observer.forward(x, shape)?;
    let qp = qparams_from_stats(&observer.stats(), observer.spec())?;
    let q = QTensor::quantize(x, shape, &qp.to_qparams(), qp.dtype)?;
    Ok((q, qp))
}
