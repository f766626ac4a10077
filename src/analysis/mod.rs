//! Analysis: how much a quantization choice costs, layer by layer, in numbers a user can act on.
//! Metrics are pooled over everything compared (not averaged per batch), in f64, in a fixed
//! order, so reports are byte-identical across runs.

mod columns;
mod compare;
mod latency;
mod layers;
mod metrics;
mod reference;
mod sensitivity;
mod weights;

pub use columns::ErrorColumn;
pub use compare::{LayerDiff, engine_diff};
pub use latency::{LatencyReport, LayerLatency, Target, latency_steps, layer_latency};
pub use layers::{ErrorMode, LayerError, layer_errors};
pub use metrics::{ClipCount, ErrorStats};
pub use reference::{
    RefOutput, RefQParams, RefRow, compare_reference, first_divergence, match_modules,
    read_layer_dump, read_qparams,
};
pub use sensitivity::{Sensitivity, leave_one_out, ranked_layers, sensitivity};
pub use weights::{WeightError, weight_errors};

use crate::observer::ObserverError;
use thiserror::Error;

/// What can go wrong computing an analysis.
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// The observer spec or its statistics were rejected for a layer, or quantizing with the
    /// resulting qparams failed (e.g. a NaN weight gives a NaN scale).
    #[error("layer '{layer}': {source}")]
    Observer {
        layer: String,
        source: ObserverError,
    },
    /// The float or the quantized model failed on the data.
    #[error("{detail}")]
    Model { detail: String },
    /// A timing tier cannot be forced on this host.
    #[error(transparent)]
    Isa(#[from] crate::isa::IsaError),
    /// A reference dump (layer outputs or qparams) cannot be read.
    #[error("reference {path}: {detail}")]
    Reference { path: String, detail: String },
    /// The caller asked a long measurement to stop.
    #[error("cancelled")]
    Cancelled,
}
