//! The `FakeQuantize` module (NUMERICS §3.3): an observer, two enable flags and the scale /
//! zero-point buffers, with a straight-through backward for QAT training loops.
//!
//! One type covers PyTorch's `FakeQuantize` and `FusedMovingAvgObsFakeQuantize`; they differ
//! only in where qparams come from ([`Stage`]) and in when they are refreshed: the plain module
//! refreshes whenever the observer runs, the fused op whenever fake-quantization runs.

use super::functional::{
    check_shape, fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine,
    straight_through,
};
use super::fused::FusedStats;
use super::{FakeQuantError, FakeQuantKind, FakeQuantizeSpec};
use crate::observer::{
    ObservedQParams, Observer, QRange, Stats, qparams_from_stats, resolve_ch_axis,
};
use crate::tensor::TensorError;

/// Where the statistics live.
#[derive(Debug, Clone)]
enum Stage {
    /// A Python observer whose `calculate_qparams` sets the buffers.
    Observer(Box<dyn Observer>),
    /// The fused op's own moving-average buffers and C++ chooser.
    Fused(FusedStats),
}

/// A fake-quant module. Build it from a [`FakeQuantizeSpec`].
#[derive(Debug, Clone)]
pub struct FakeQuantize {
    spec: FakeQuantizeSpec,
    stage: Stage,
    /// The effective clamp range: the observer's, after `reduce_range` (2.x semantics).
    range: QRange,
    observer_enabled: bool,
    fake_quant_enabled: bool,
    scale: Vec<f32>,
    zero_point: Vec<i64>,
    /// The straight-through mask of the last forward (all true when fake-quant was off).
    mask: Option<Vec<bool>>,
}

impl FakeQuantize {
    /// Validates `spec` and builds the module with PyTorch's initial buffers (scale 1, zp 0,
    /// both flags on).
    pub fn new(spec: &FakeQuantizeSpec) -> Result<FakeQuantize, FakeQuantError> {
        spec.validate()?;
        let stage = match spec.kind {
            FakeQuantKind::Plain => Stage::Observer(spec.observer.build()?),
            FakeQuantKind::Fused => Stage::Fused(FusedStats::new(&spec.observer)),
        };
        Ok(FakeQuantize {
            spec: spec.clone(),
            stage,
            range: spec.observer.quant_range()?,
            observer_enabled: true,
            fake_quant_enabled: true,
            scale: vec![1.0],
            zero_point: vec![0],
            mask: None,
        })
    }

    /// The spec this module was built from.
    pub fn spec(&self) -> &FakeQuantizeSpec {
        &self.spec
    }

    /// PyTorch's `enable_observer` / `disable_observer`.
    pub fn set_observer_enabled(&mut self, on: bool) {
        self.observer_enabled = on;
    }

    /// PyTorch's `enable_fake_quant` / `disable_fake_quant`.
    pub fn set_fake_quant_enabled(&mut self, on: bool) {
        self.fake_quant_enabled = on;
    }

    pub fn observer_enabled(&self) -> bool {
        self.observer_enabled
    }

    pub fn fake_quant_enabled(&self) -> bool {
        self.fake_quant_enabled
    }

    /// The scale buffer (f32, one entry per tensor or per channel).
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// The zero-point buffer.
    pub fn zero_point(&self) -> &[i64] {
        &self.zero_point
    }

    /// The effective clamp range `(quant_min, quant_max)`.
    pub fn quant_range(&self) -> (i64, i64) {
        (self.range.quant_min, self.range.quant_max)
    }

    /// The observer statistics (for the fused module, its running min/max buffers).
    pub fn stats(&self) -> Stats {
        match &self.stage {
            Stage::Observer(obs) => obs.stats(),
            Stage::Fused(f) => f.stats(),
        }
    }

    /// The inner observer of a plain module (for observer-specific detail such as a histogram).
    pub fn observer(&self) -> Option<&dyn Observer> {
        match &self.stage {
            Stage::Observer(obs) => Some(obs.as_ref()),
            Stage::Fused(_) => None,
        }
    }

    /// PyTorch's `calculate_qparams()`, which convert uses: the observer's Python formula on
    /// the current statistics, for the fused module too (not its C++-chosen buffers).
    pub fn calculate_qparams(&self) -> Result<ObservedQParams, FakeQuantError> {
        Ok(match &self.stage {
            Stage::Observer(obs) => obs.calculate_qparams()?,
            Stage::Fused(f) => qparams_from_stats(&f.stats(), &self.spec.observer)?,
        })
    }

    /// One forward of the row-major tensor `x` of `shape`: observe, refresh qparams, then
    /// fake-quantize with the new qparams. Saves the mask for [`FakeQuantize::backward`].
    pub fn forward(&mut self, x: &[f32], shape: &[usize]) -> Result<Vec<f32>, FakeQuantError> {
        check_shape(x, shape)?;
        self.mask = None;
        match &mut self.stage {
            Stage::Observer(obs) => {
                if self.observer_enabled {
                    obs.forward(x, shape)?;
                    let q = obs.calculate_qparams()?;
                    (self.scale, self.zero_point) = (q.scales, q.zero_points);
                }
            }
            Stage::Fused(f) => {
                let axis = f.fit(shape)?;
                if self.observer_enabled {
                    f.observe(x, shape, axis)?;
                }
                if self.fake_quant_enabled {
                    let symmetric = self.spec.observer.qscheme.is_symmetric();
                    (self.scale, self.zero_point) = f.qparams(self.range, symmetric)?;
                }
            }
        }
        if !self.fake_quant_enabled {
            self.mask = Some(vec![true; x.len()]);
            return Ok(x.to_vec());
        }
        let (qmin, qmax) = self.quant_range();
        let out = if self.spec.observer.qscheme.is_per_channel() {
            let axis = resolve_ch_axis(self.spec.observer.ch_axis, shape.len())?;
            fake_quantize_per_channel_affine(
                x,
                shape,
                &self.scale,
                &self.zero_point,
                axis as i64,
                qmin,
                qmax,
            )?
        } else {
            let ([scale], [zero_point]) = (self.scale.as_slice(), self.zero_point.as_slice())
            else {
                return Err(TensorError::ChannelCountMismatch {
                    scales: self.scale.len(),
                    zero_points: self.zero_point.len(),
                    axis_len: 1,
                }
                .into());
            };
            fake_quantize_per_tensor_affine(x, *scale as f64, *zero_point, qmin, qmax)?
        };
        self.mask = Some(out.mask);
        Ok(out.output)
    }

    /// The straight-through mask of the last forward (true where the gradient passes; all true
    /// when fake-quant was off), or `None` before a successful forward.
    pub fn mask(&self) -> Option<&[bool]> {
        self.mask.as_deref()
    }

    /// The input gradient for `grad_output` through the last forward (straight-through: the
    /// gradient passes where the value was inside the range, and everywhere when fake-quant was
    /// off; no gradient reaches scale or zero point).
    pub fn backward(&self, grad_output: &[f32]) -> Result<Vec<f32>, FakeQuantError> {
        let mask = self.mask.as_ref().ok_or(FakeQuantError::NoForward)?;
        straight_through(mask, grad_output)
    }
}
