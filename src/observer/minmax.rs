//! MinMaxObserver and MovingAverageMinMaxObserver (NUMERICS §2.3, §2.4): one running min/max
//! pair per tensor.
//!
//! Both keep the same buffers and differ only in the [`Running`] rule, so they are one type.
//! The batch extremes come from `tensor::quantize::min_max`, the shared NaN-propagating
//! reduction that the SIMD layer accelerates.

use super::moving_average::Running;
use super::qparams::qparams_from_min_max;
use super::{ObservedQParams, Observer, ObserverError, ObserverKind, ObserverSpec, Stats};
use crate::tensor::quantize::min_max;

/// A per-tensor min/max observer (plain or moving-average, by its spec's kind).
#[derive(Debug, Clone)]
pub struct MinMaxObserver {
    spec: ObserverSpec,
    rule: Running,
    min: f32,
    max: f32,
}

/// The moving-average variant is the same type built from a `moving_average_minmax` spec.
pub type MovingAverageMinMaxObserver = MinMaxObserver;

impl MinMaxObserver {
    /// Builds from a spec of kind `minmax` or `moving_average_minmax` (validated here).
    pub fn new(spec: &ObserverSpec) -> Result<MinMaxObserver, ObserverError> {
        spec.validate()?;
        let rule = match spec.kind {
            ObserverKind::MinMax => Running::Extremes,
            ObserverKind::MovingAverageMinMax => Running::MovingAverage(spec.averaging_constant),
            other => {
                return Err(ObserverError::InvalidConfig(format!(
                    "{other} is not a per-tensor min/max kind"
                )));
            }
        };
        Ok(MinMaxObserver {
            spec: spec.clone(),
            rule,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        })
    }

    /// The running (min, max); (+inf, -inf) before any data.
    pub fn min_max(&self) -> (f32, f32) {
        (self.min, self.max)
    }
}

impl Observer for MinMaxObserver {
    fn forward(&mut self, x: &[f32], _shape: &[usize]) -> Result<(), ObserverError> {
        if x.is_empty() {
            return Ok(());
        }
        let batch = min_max(x);
        let first = self.min == f32::INFINITY && self.max == f32::NEG_INFINITY;
        (self.min, self.max) = match self.rule {
            // Plain min/max needs no first-batch case: min(+inf, b) is b.
            Running::MovingAverage(_) if first => batch,
            rule => rule.update((self.min, self.max), batch),
        };
        Ok(())
    }

    fn calculate_qparams(&self) -> Result<ObservedQParams, ObserverError> {
        qparams_from_min_max(&[self.min], &[self.max], None, &self.spec)
    }

    fn spec(&self) -> &ObserverSpec {
        &self.spec
    }

    fn stats(&self) -> Stats {
        Stats::MinMax {
            min: self.min,
            max: self.max,
        }
    }
}
