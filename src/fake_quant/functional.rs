//! `fake_quantize_per_tensor_affine` / `fake_quantize_per_channel_affine` and their
//! straight-through gradient (NUMERICS §3.1–3.2, golden README §2.5).
//!
//! Forward is `dequantize(quantize(x))` clamped to the fake-quant's own range. The two PyTorch
//! kernels round identically but turn the rounded float into an integer differently, which only
//! shows on NaN / ±inf / huge inputs: the per-tensor kernel clamps in float (NaN → `quant_min`,
//! +inf → `quant_max`), the per-channel kernel casts to i64 first, and x86's cast maps NaN and
//! every overflow — +inf included — to `i64::MIN`, hence to `quant_min`.

use super::FakeQuantError;
use crate::tensor::TensorError;

/// A fake-quant forward result: the output and the straight-through mask (true where the
/// rounded, unclamped integer lay inside `[quant_min, quant_max]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeQuantOutput {
    pub output: Vec<f32>,
    pub mask: Vec<bool>,
}

impl FakeQuantOutput {
    /// The gradient with respect to the input for `grad_output` (straight-through estimator).
    pub fn backward(&self, grad_output: &[f32]) -> Result<Vec<f32>, FakeQuantError> {
        straight_through(&self.mask, grad_output)
    }
}

/// `grad_output * mask`: masked entries become `grad * 0.0`, keeping the sign (-0.0) as PyTorch's
/// multiply by a bool mask does.
pub fn straight_through(mask: &[bool], grad_output: &[f32]) -> Result<Vec<f32>, FakeQuantError> {
    if mask.len() != grad_output.len() {
        return Err(FakeQuantError::GradLength {
            expected: mask.len(),
            got: grad_output.len(),
        });
    }
    Ok(grad_output
        .iter()
        .zip(mask)
        .map(|(&g, &m)| g * multiplier(m))
        .collect())
}

/// The mask as the f32 factor a training loop multiplies gradients by (1.0 inside, 0.0 outside);
/// multiplying by it is exactly [`straight_through`], -0.0 included.
pub fn grad_mask(mask: &[bool]) -> Vec<f32> {
    mask.iter().map(|&m| multiplier(m)).collect()
}

#[inline]
fn multiplier(inside: bool) -> f32 {
    if inside { 1.0 } else { 0.0 }
}

/// How a kernel converts the rounded float (zero point already added) to an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cast {
    /// Per-tensor: positive overflow saturates high, NaN lands below the range.
    Saturating,
    /// Per-channel: x86 `cvttss2si`, where NaN and any overflow give `i64::MIN`.
    X86,
}

impl Cast {
    fn to_int(self, v: f32) -> i64 {
        // 2^63 as f32; every f32 at or above it overflows an i64.
        const TWO_POW_63: f32 = 9_223_372_036_854_775_808.0;
        match self {
            _ if v.is_nan() => i64::MIN,
            Cast::X86 if v >= TWO_POW_63 => i64::MIN,
            _ => v as i64,
        }
    }
}

/// The checked qparams of one channel (or the whole tensor).
#[derive(Debug, Clone, Copy)]
struct Lane {
    scale: f32,
    inv: f32,
    zero_point: i64,
}

impl Lane {
    fn new(
        scale: f64,
        zero_point: i64,
        channel: usize,
        range: Range,
    ) -> Result<Lane, FakeQuantError> {
        let s = scale as f32;
        let inv = 1.0f32 / s;
        if !(s > 0.0 && s.is_finite() && inv.is_finite()) {
            return Err(FakeQuantError::BadScale { scale, channel });
        }
        if !(range.min..=range.max).contains(&zero_point) {
            return Err(FakeQuantError::ZeroPointOutOfRange {
                zero_point,
                channel,
                quant_min: range.min,
                quant_max: range.max,
            });
        }
        Ok(Lane {
            scale: s,
            inv,
            zero_point,
        })
    }

    /// One element: `(output, inside)`.
    #[inline]
    fn apply(self, x: f32, range: Range, cast: Cast) -> (f32, bool) {
        // The zero point is added in f32 after rounding, as the kernels do.
        let q = cast.to_int(self.zero_point as f32 + (x * self.inv).round_ties_even());
        let inside = (range.min..=range.max).contains(&q);
        let q = q.clamp(range.min, range.max);
        // Exact in f64 for 8-bit ranges, so this equals the kernels' f32 product.
        (
            ((q - self.zero_point) as f64 * self.scale as f64) as f32,
            inside,
        )
    }
}

/// A checked `[quant_min, quant_max]`.
#[derive(Debug, Clone, Copy)]
struct Range {
    min: i64,
    max: i64,
}

impl Range {
    fn new(quant_min: i64, quant_max: i64) -> Result<Range, FakeQuantError> {
        let bad = |why| {
            Err(FakeQuantError::BadRange {
                quant_min,
                quant_max,
                why,
            })
        };
        if quant_min >= quant_max {
            return bad("quant_min must be less than quant_max");
        }
        if quant_min < i32::MIN as i64 || quant_max > i32::MAX as i64 {
            return bad("the range must fit in 32 bits");
        }
        Ok(Range {
            min: quant_min,
            max: quant_max,
        })
    }
}

/// Per-tensor fake quantization (`torch.fake_quantize_per_tensor_affine`, either the float or the
/// tensor-qparams overload: both kernels compute the same values).
pub fn fake_quantize_per_tensor_affine(
    x: &[f32],
    scale: f64,
    zero_point: i64,
    quant_min: i64,
    quant_max: i64,
) -> Result<FakeQuantOutput, FakeQuantError> {
    let range = Range::new(quant_min, quant_max)?;
    let lane = Lane::new(scale, zero_point, 0, range)?;
    let (output, mask) = x
        .iter()
        .map(|&v| lane.apply(v, range, Cast::Saturating))
        .unzip();
    Ok(FakeQuantOutput { output, mask })
}

/// Per-channel fake quantization of a row-major tensor of `shape` along `axis`
/// (`torch.fake_quantize_per_channel_affine`); `scales` and `zero_points` hold one entry per
/// index along `axis`.
pub fn fake_quantize_per_channel_affine(
    x: &[f32],
    shape: &[usize],
    scales: &[f32],
    zero_points: &[i64],
    axis: i64,
    quant_min: i64,
    quant_max: i64,
) -> Result<FakeQuantOutput, FakeQuantError> {
    let range = Range::new(quant_min, quant_max)?;
    check_shape(x, shape)?;
    let ax = usize::try_from(axis)
        .ok()
        .filter(|&a| a < shape.len())
        .ok_or(TensorError::AxisOutOfBounds {
            axis,
            ndim: shape.len(),
        })?;
    let channels = shape[ax];
    if scales.len() != channels || zero_points.len() != channels {
        return Err(TensorError::ChannelCountMismatch {
            scales: scales.len(),
            zero_points: zero_points.len(),
            axis_len: channels,
        }
        .into());
    }
    let lanes = scales
        .iter()
        .zip(zero_points)
        .enumerate()
        .map(|(c, (&s, &z))| Lane::new(s as f64, z, c, range))
        .collect::<Result<Vec<Lane>, _>>()?;
    let inner: usize = shape[ax + 1..].iter().product();
    let mut output = Vec::with_capacity(x.len());
    let mut mask = Vec::with_capacity(x.len());
    if !x.is_empty() {
        for (block, run) in x.chunks(inner).enumerate() {
            let lane = lanes[block % channels];
            for &v in run {
                let (y, inside) = lane.apply(v, range, Cast::X86);
                output.push(y);
                mask.push(inside);
            }
        }
    }
    Ok(FakeQuantOutput { output, mask })
}

/// Checks that `x` holds exactly the elements `shape` describes.
pub(crate) fn check_shape(x: &[f32], shape: &[usize]) -> Result<(), TensorError> {
    let expected = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .unwrap_or(usize::MAX);
    if expected == x.len() {
        Ok(())
    } else {
        Err(TensorError::ShapeMismatch {
            shape: shape.to_vec(),
            expected,
            got: x.len(),
        })
    }
}
