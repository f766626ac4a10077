//! The C++ `ChooseQuantizationParams` (NUMERICS §2.8): used by dynamic ops to pick activation
//! qparams at run time, by `torch._choose_qparams_per_tensor`, and by the fused QAT fake-quant.
//!
//! Unlike the Python observers it works in f64, nudges the zero point to minimise the error at
//! whichever end is closer, and floors tiny scales at 6.1e-5.

use super::TensorError;

/// Scales below this are raised to it (a float constant in PyTorch, compared as a double).
const SMALL_SCALE_THRESHOLD: f32 = 6.1e-5;

/// The result: the f64 scale (not rounded to f32: the golden data show PyTorch keeps the double,
/// contrary to NUMERICS §2.8 step 6) and an i32 zero point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChosenQParams {
    pub scale: f64,
    pub zero_point: i32,
}

/// Chooses qparams for the float range `[min, max]` mapped onto `qmin..=qmax`.
///
/// `reduce_range` halves both bounds first (integer division, as the C++ does); with
/// `preserve_sparsity` a range that straddles zero is made symmetric around the midpoint.
pub fn choose_quantization_params(
    mut min: f32,
    mut max: f32,
    mut qmin: i32,
    mut qmax: i32,
    preserve_sparsity: bool,
    reduce_range: bool,
) -> Result<ChosenQParams, TensorError> {
    if min > max {
        return Err(TensorError::MinGreaterThanMax { min, max });
    }
    if reduce_range {
        qmin /= 2;
        qmax /= 2;
    }
    if qmin >= qmax {
        return Err(TensorError::BadRange {
            quant_min: qmin as i64,
            quant_max: qmax as i64,
            why: "quant_min must be less than quant_max",
        });
    }
    let straddles = min < 0.0 && max > 0.0;
    if straddles && preserve_sparsity {
        let sym_qmin = -((qmax - qmin) / 2 + 1);
        let sym_qmax = (qmax - qmin) / 2;
        let max_scale = (min as f64 / sym_qmin as f64)
            .abs()
            .max((max as f64 / sym_qmax as f64).abs());
        min = (max_scale * sym_qmin as f64) as f32;
        max = (max_scale * sym_qmax as f64) as f32;
    }
    min = min.min(0.0);
    max = max.max(0.0);
    let span = (qmax - qmin) as f64;
    let mut scale = (max as f64 - min as f64) / span;
    if scale as f32 == 0.0 || (1.0f32 / scale as f32).is_infinite() {
        scale = 0.1;
    }
    if scale < SMALL_SCALE_THRESHOLD as f64 {
        let org_scale = scale as f32;
        scale = SMALL_SCALE_THRESHOLD as f64;
        if min == 0.0 {
            max = SMALL_SCALE_THRESHOLD * (qmax - qmin) as f32;
        } else if max == 0.0 {
            min = -SMALL_SCALE_THRESHOLD * (qmax - qmin) as f32;
        } else {
            let amplifier = SMALL_SCALE_THRESHOLD / org_scale;
            min *= amplifier;
            max *= amplifier;
        }
    }
    let zp_from_min = qmin as f64 - min as f64 / scale;
    let zp_from_max = qmax as f64 - max as f64 / scale;
    let err_min = (qmin as f64).abs() - (min as f64 / scale).abs();
    let err_max = (qmax as f64).abs() - (max as f64 / scale).abs();
    let mut initial = if err_min < err_max {
        zp_from_min
    } else {
        zp_from_max
    };
    if straddles && preserve_sparsity {
        initial = (qmin + qmax) as f64 / 2.0;
    }
    let zero_point = if initial < qmin as f64 {
        qmin
    } else if initial > qmax as f64 {
        qmax
    } else {
        initial.round_ties_even() as i32
    };
    Ok(ChosenQParams { scale, zero_point })
}
