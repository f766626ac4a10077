//! The `calculate_qparams` core (NUMERICS §2.2) as pure functions of min/max statistics.
//!
//! Every observer funnels through [`qparams_from_min_max`], and [`qparams_from_stats`] lets the
//! workbench re-derive qparams for another dtype, scheme, range or calibrator from statistics
//! it already holds. The float steps are PyTorch's tensor ops one at a time in f32, including
//! its NaN propagation (`torch.min`/`torch.max` poison) and the int32 arithmetic of the affine
//! zero point (x86 float→int conversion gives `i32::MIN` for NaN and out-of-range values, and the
//! subtraction from `quant_min` wraps).

use super::spec::QRange;
use super::{ObservedQParams, ObserverError, ObserverKind, ObserverSpec, Stats};
use crate::tensor::QScheme;

/// `torch.min` of two values: NaN wins.
#[inline]
pub(crate) fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

/// `torch.max` of two values: NaN wins.
#[inline]
pub(crate) fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// `tensor.to(torch.int)` on x86: truncation, with NaN and out-of-range values becoming `i32::MIN`.
#[inline]
fn to_i32_x86(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// Scale and zero point of one channel (or the whole tensor) for an already checked range.
fn one(min: f32, max: f32, qscheme: QScheme, range: QRange, quint8: bool, eps: f32) -> (f32, i64) {
    let (qmin, qmax) = (range.quant_min, range.quant_max);
    let min_neg = nan_min(min, 0.0);
    let max_pos = nan_max(max, 0.0);
    if qscheme.is_symmetric() {
        let amax = nan_max(-min_neg, max_pos);
        let half_span = ((qmax - qmin) as f64 / 2.0) as f32;
        let scale = nan_max(amax / half_span, eps);
        let zp = match (quint8, range.customized) {
            (false, _) => 0,
            (true, false) => 128,
            (true, true) => (qmin + qmax).div_euclid(2),
        };
        (scale, zp)
    } else {
        let scale = nan_max((max_pos - min_neg) / (qmax - qmin) as f32, eps);
        let rounded = to_i32_x86((min_neg / scale).round_ties_even());
        let zp = (qmin as i32).wrapping_sub(rounded) as i64;
        (scale, zp.clamp(qmin, qmax))
    }
}

/// qparams from running min/max buffers: one entry each for per-tensor (`axis = None`), one
/// per channel otherwise. Uninitialised buffers (empty, or +inf/-inf) give scale 1, zero point 0.
pub fn qparams_from_min_max(
    mins: &[f32],
    maxs: &[f32],
    axis: Option<usize>,
    spec: &ObserverSpec,
) -> Result<ObservedQParams, ObserverError> {
    let range = spec.quant_range()?;
    let dtype = spec.qdtype()?;
    let out = |scales, zero_points| ObservedQParams {
        scales,
        zero_points,
        axis,
        dtype,
        qscheme: spec.qscheme,
        quant_min: range.quant_min,
        quant_max: range.quant_max,
    };
    if mins.len() != maxs.len() {
        return Err(ObserverError::BadInput(format!(
            "{} min values but {} max values",
            mins.len(),
            maxs.len()
        )));
    }
    let never_run = mins.is_empty()
        || (mins.len() == 1 && mins[0] == f32::INFINITY && maxs[0] == f32::NEG_INFINITY);
    if never_run {
        return Ok(out(vec![1.0], vec![0]));
    }
    if let Some((&min, &max)) = mins.iter().zip(maxs).find(|(a, b)| a > b) {
        return Err(ObserverError::MinGreaterThanMax { min, max });
    }
    let quint8 = dtype == crate::tensor::QDType::QUInt8;
    let (scales, zps) = mins
        .iter()
        .zip(maxs)
        .map(|(&lo, &hi)| one(lo, hi, spec.qscheme, range, quint8, spec.eps))
        .unzip();
    Ok(out(scales, zps))
}

/// Re-derives qparams from stored statistics for `spec` (which may differ from the spec that
/// collected them): another dtype, scheme or range, per-tensor qparams from per-channel
/// statistics (the overall min/max), or, for histogram statistics, another calibrator.
pub fn qparams_from_stats(
    stats: &Stats,
    spec: &ObserverSpec,
) -> Result<ObservedQParams, ObserverError> {
    spec.validate()?;
    if !spec.kind.computes_qparams() {
        return Err(ObserverError::NoQParams(spec.kind.name()));
    }
    let per_channel = spec.qscheme.is_per_channel();
    match stats {
        Stats::None => Err(ObserverError::NoQParams(
            "statistics of a passthrough observer",
        )),
        Stats::PerChannel { mins, maxs, axis } if per_channel => {
            qparams_from_min_max(mins, maxs, Some(*axis), spec)
        }
        Stats::PerChannel { mins, maxs, .. } => {
            let (lo, hi) = if mins.is_empty() {
                (f32::INFINITY, f32::NEG_INFINITY)
            } else {
                (
                    mins.iter().copied().fold(f32::INFINITY, nan_min),
                    maxs.iter().copied().fold(f32::NEG_INFINITY, nan_max),
                )
            };
            qparams_from_min_max(&[lo], &[hi], None, spec)
        }
        _ if per_channel => Err(ObserverError::InvalidConfig(format!(
            "qscheme {} needs per-channel statistics",
            spec.qscheme
        ))),
        Stats::MinMax { min, max } => qparams_from_min_max(&[*min], &[*max], None, spec),
        Stats::Histogram { min, max, counts } => match spec.kind {
            ObserverKind::Histogram
            | ObserverKind::Percentile
            | ObserverKind::Entropy
            | ObserverKind::Mse => super::histogram::calibrate(*min, *max, counts, spec),
            _ => qparams_from_min_max(&[*min], &[*max], None, spec),
        },
    }
}
