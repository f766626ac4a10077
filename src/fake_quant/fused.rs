//! The statistics and qparams of `FusedMovingAvgObsFakeQuantize` (NUMERICS §3.3).
//!
//! The fused C++ op updates the observer's min/max buffers itself. Two differences from the
//! Python moving-average observer: qparams come from the C++ `ChooseQuantizationParams` (f64,
//! nudged zero point, symmetric as `preserve_sparsity`), which the golden `default_fused_*`
//! cases pin down; and, as the C++ source is written, each buffer entry that is still infinite
//! takes the batch value (per entry, not only on the very first batch), which no golden case
//! exercises. The moving average itself is f32 arithmetic, as the golden steps confirm.

use super::FakeQuantError;
use crate::observer::{
    ObserverError, ObserverSpec, QRange, Stats, channel_min_max, resolve_ch_axis,
};
use crate::tensor::quantize::min_max;
use crate::tensor::{TensorError, choose_quantization_params};

/// Running min/max buffers updated as the fused op does.
#[derive(Debug, Clone)]
pub(crate) struct FusedStats {
    averaging_constant: f32,
    per_channel: bool,
    ch_axis: i64,
    /// Per-tensor: one entry from the start; per-channel: empty until the first input.
    mins: Vec<f32>,
    maxs: Vec<f32>,
}

impl FusedStats {
    pub(crate) fn new(spec: &ObserverSpec) -> FusedStats {
        let per_channel = spec.qscheme.is_per_channel();
        let (mins, maxs) = if per_channel {
            (vec![], vec![])
        } else {
            (vec![f32::INFINITY], vec![f32::NEG_INFINITY])
        };
        FusedStats {
            averaging_constant: spec.averaging_constant,
            per_channel,
            ch_axis: spec.ch_axis,
            mins,
            maxs,
        }
    }

    /// Sizes the per-channel buffers on the first input (the op does this even with the
    /// observer disabled) and checks later inputs keep the channel count.
    pub(crate) fn fit(&mut self, shape: &[usize]) -> Result<Option<usize>, FakeQuantError> {
        if !self.per_channel {
            return Ok(None);
        }
        let axis = resolve_ch_axis(self.ch_axis, shape.len())?;
        let channels = shape[axis];
        if self.mins.is_empty() {
            self.mins = vec![f32::INFINITY; channels];
            self.maxs = vec![f32::NEG_INFINITY; channels];
        } else if self.mins.len() != channels {
            return Err(ObserverError::BadInput(format!(
                "the fused fake-quant saw {} channels before, {channels} now",
                self.mins.len()
            ))
            .into());
        }
        Ok(Some(axis))
    }

    /// Folds one input into the buffers (after [`FusedStats::fit`]).
    pub(crate) fn observe(
        &mut self,
        x: &[f32],
        shape: &[usize],
        axis: Option<usize>,
    ) -> Result<(), FakeQuantError> {
        if x.is_empty() {
            return Err(TensorError::Unsupported {
                op: "the fused fake-quant observer (aminmax)",
                what: "an empty tensor".into(),
            }
            .into());
        }
        let (bmins, bmaxs) = match axis {
            Some(a) => channel_min_max(x, shape, a),
            None => {
                let (lo, hi) = min_max(x);
                (vec![lo], vec![hi])
            }
        };
        let c = self.averaging_constant;
        let step = |run: &mut f32, batch: f32| {
            *run = if run.is_infinite() {
                batch
            } else {
                *run + c * (batch - *run)
            };
        };
        self.mins
            .iter_mut()
            .zip(bmins)
            .for_each(|(r, b)| step(r, b));
        self.maxs
            .iter_mut()
            .zip(bmaxs)
            .for_each(|(r, b)| step(r, b));
        Ok(())
    }

    /// Scales and zero points from the buffers via the C++ chooser.
    pub(crate) fn qparams(
        &self,
        range: QRange,
        symmetric: bool,
    ) -> Result<(Vec<f32>, Vec<i64>), FakeQuantError> {
        // `QRange` came from a validated 8-bit (or 32-bit) observer spec, so it fits i32.
        let (qmin, qmax) = (range.quant_min as i32, range.quant_max as i32);
        self.mins
            .iter()
            .zip(&self.maxs)
            .map(|(&lo, &hi)| {
                let q = choose_quantization_params(lo, hi, qmin, qmax, symmetric, false)?;
                Ok((q.scale as f32, q.zero_point as i64))
            })
            .collect()
    }

    /// The buffers as observer statistics.
    pub(crate) fn stats(&self) -> Stats {
        if self.per_channel {
            Stats::PerChannel {
                mins: self.mins.clone(),
                maxs: self.maxs.clone(),
                // Validated to be 0 for the fused per-channel variant.
                axis: self.ch_axis as usize,
            }
        } else {
            Stats::MinMax {
                min: self.mins[0],
                max: self.maxs[0],
            }
        }
    }
}
