//! PerChannelMinMaxObserver and MovingAveragePerChannelMinMaxObserver (NUMERICS §2.5): one
//! running min/max pair per index along `ch_axis`.
//!
//! PyTorch swaps `ch_axis` to the front and reduces each row. Min and max do not depend on the
//! order of elements (NaN poisons either way), so the reduction walks the row-major buffer as
//! `[outer, C, inner]` blocks instead of materialising the permuted copy.

use super::moving_average::Running;
use super::qparams::{nan_max, nan_min, qparams_from_min_max};
use super::{ObservedQParams, Observer, ObserverError, ObserverKind, ObserverSpec, Stats};
use crate::tensor::quantize::min_max;

/// A per-channel min/max observer (plain or moving-average, by its spec's kind).
#[derive(Debug, Clone)]
pub struct PerChannelMinMaxObserver {
    spec: ObserverSpec,
    rule: Running,
    mins: Vec<f32>,
    maxs: Vec<f32>,
    /// The resolved channel axis of the last input (the spec's axis before any input).
    axis: usize,
}

/// The moving-average variant is the same type built from a `moving_average_per_channel_minmax` spec.
pub type MovingAveragePerChannelMinMaxObserver = PerChannelMinMaxObserver;

/// Resolves a possibly negative `ch_axis` against the input rank.
pub fn resolve_ch_axis(ch_axis: i64, ndim: usize) -> Result<usize, ObserverError> {
    let a = if ch_axis < 0 {
        ch_axis + ndim as i64
    } else {
        ch_axis
    };
    if ndim > 0 && (0..ndim as i64).contains(&a) {
        Ok(a as usize)
    } else {
        Err(ObserverError::BadInput(format!(
            "ch_axis {ch_axis} is out of bounds for an input of rank {ndim}"
        )))
    }
}

/// Per-channel (min, max) of a row-major tensor along `axis`, NaN-propagating.
pub fn channel_min_max(x: &[f32], shape: &[usize], axis: usize) -> (Vec<f32>, Vec<f32>) {
    let c = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut mins = vec![f32::INFINITY; c];
    let mut maxs = vec![f32::NEG_INFINITY; c];
    if inner == 0 || c == 0 {
        return (mins, maxs);
    }
    for (i, run) in x.chunks_exact(inner).enumerate() {
        let ch = i % c;
        let (lo, hi) = if inner == 1 {
            (run[0], run[0])
        } else {
            min_max(run)
        };
        mins[ch] = nan_min(mins[ch], lo);
        maxs[ch] = nan_max(maxs[ch], hi);
    }
    (mins, maxs)
}

impl PerChannelMinMaxObserver {
    /// Builds from a spec of a per-channel kind (validated here).
    pub fn new(spec: &ObserverSpec) -> Result<PerChannelMinMaxObserver, ObserverError> {
        spec.validate()?;
        let rule = match spec.kind {
            ObserverKind::PerChannelMinMax => Running::Extremes,
            ObserverKind::MovingAveragePerChannelMinMax => {
                Running::MovingAverage(spec.averaging_constant)
            }
            other => {
                return Err(ObserverError::InvalidConfig(format!(
                    "{other} is not a per-channel kind"
                )));
            }
        };
        let axis = spec.ch_axis.max(0) as usize;
        Ok(PerChannelMinMaxObserver {
            spec: spec.clone(),
            rule,
            mins: Vec::new(),
            maxs: Vec::new(),
            axis,
        })
    }

    /// The running per-channel buffers (empty before any data).
    pub fn min_max(&self) -> (&[f32], &[f32]) {
        (&self.mins, &self.maxs)
    }
}

impl Observer for PerChannelMinMaxObserver {
    fn forward(&mut self, x: &[f32], shape: &[usize]) -> Result<(), ObserverError> {
        if x.is_empty() {
            return Ok(());
        }
        let n: usize = shape.iter().product();
        if n != x.len() {
            return Err(ObserverError::BadInput(format!(
                "shape {shape:?} needs {n} elements but {} were given",
                x.len()
            )));
        }
        let axis = resolve_ch_axis(self.spec.ch_axis, shape.len())?;
        let (bmins, bmaxs) = channel_min_max(x, shape, axis);
        if self.mins.is_empty() {
            (self.mins, self.maxs) = (bmins, bmaxs);
        } else if self.mins.len() != bmins.len() {
            return Err(ObserverError::BadInput(format!(
                "input has {} channels along axis {axis} but the observer has seen {}",
                bmins.len(),
                self.mins.len()
            )));
        } else {
            for c in 0..bmins.len() {
                (self.mins[c], self.maxs[c]) = self
                    .rule
                    .update((self.mins[c], self.maxs[c]), (bmins[c], bmaxs[c]));
            }
        }
        self.axis = axis;
        Ok(())
    }

    fn calculate_qparams(&self) -> Result<ObservedQParams, ObserverError> {
        qparams_from_min_max(&self.mins, &self.maxs, Some(self.axis), &self.spec)
    }

    fn spec(&self) -> &ObserverSpec {
        &self.spec
    }

    fn stats(&self) -> Stats {
        Stats::PerChannel {
            mins: self.mins.clone(),
            maxs: self.maxs.clone(),
            axis: self.axis,
        }
    }
}
