//! How running min/max buffers absorb a new batch: keep the extremes (MinMax observers) or move
//! a fraction of the way towards the batch (MovingAverage observers, NUMERICS §2.4).
//!
//! One rule value serves the per-tensor and the per-channel observers, so the moving-average
//! arithmetic is written once: `m + c*(b - m)` in f32, two roundings, exactly as PyTorch writes
//! it (not `(1-c)*m + c*b`, which rounds differently).

use super::qparams::{nan_max, nan_min};

/// The update rule of a min/max observer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Running {
    /// `min(m, b)` / `max(m, b)`, NaN-propagating like `torch.min` / `torch.max`.
    Extremes,
    /// `m + c*(b - m)` with `c = averaging_constant`.
    MovingAverage(f32),
}

impl Running {
    /// The next (min, max) from the current buffers and a batch's (min, max). The caller handles
    /// the first batch, which both rules simply store.
    #[inline]
    pub(crate) fn update(self, (min, max): (f32, f32), (bmin, bmax): (f32, f32)) -> (f32, f32) {
        match self {
            Running::Extremes => (nan_min(min, bmin), nan_max(max, bmax)),
            Running::MovingAverage(c) => (min + c * (bmin - min), max + c * (bmax - max)),
        }
    }
}
