//! Fast elementwise paths: quantize, dequantize and min/max over whole buffers.
//!
//! Design note. The element rules in [`crate::tensor::quantize`] are the specification; every
//! kernel here must reproduce them bit for bit, including PyTorch's quirks (NaN clipped to the top
//! of the range, i32 wrap-around of the zero-point add, f64 products for per-channel dequantize).
//! Three kernel families exist: `scalar` (plain loops over the element rules), `x86_avx2`
//! (8 lanes, tails through a zero-padded block) and `x86_avx512` (16 lanes, masked tails).
//! Every kernel is single-threaded and deterministic: the result does not depend on the tier,
//! the length or the alignment of the buffers (only [`min_max`] splits a large buffer across
//! threads, exactly).
//!
//! The tier is chosen once per call from [`crate::isa::selected`] (AVX-512 VNNI → AVX-512
//! kernels; AVX2 / AVX-VNNI → AVX2 kernels; anything else → scalar). The `*_on` entry points take
//! an explicit [`Isa`] so tests and benchmarks can run every tier the host has; asking for a tier
//! the host lacks is an [`IsaError`], never a silent fallback.
//!
//! Per-channel kernels cover contiguous buffers whose channel is constant over runs of `inner`
//! contiguous elements ([`ChannelLayout`]); each run is one call of a broadcast-parameter kernel
//! (per-channel min/max merges the runs' ranges). Short runs (an axis near the end) therefore pay
//! one call per run.

mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;

use super::QDType;
use super::quantize::inv_scale;
use crate::isa::{self, Isa, IsaError};

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
    impl Sealed for i32 {}
}

/// A storage integer of a quantized tensor: `u8` (quint8), `i8` (qint8) or `i32` (qint32).
pub trait QInt: sealed::Sealed + Copy + Default + Send + Sync + 'static {
    /// The quantized dtype stored in this integer type.
    const DTYPE: QDType;
    /// Smallest value of the dtype.
    const QMIN: i32 = Self::DTYPE.qmin() as i32;
    /// Largest value of the dtype.
    const QMAX: i32 = Self::DTYPE.qmax() as i32;
    /// Widens to i32.
    fn to_i32(self) -> i32;
    /// Narrows an i32 already inside `QMIN..=QMAX`.
    fn from_i32(v: i32) -> Self;
}

impl QInt for u8 {
    const DTYPE: QDType = QDType::QUInt8;
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn from_i32(v: i32) -> Self {
        v as u8
    }
}

impl QInt for i8 {
    const DTYPE: QDType = QDType::QInt8;
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl QInt for i32 {
    const DTYPE: QDType = QDType::QInt32;
    fn to_i32(self) -> i32 {
        self
    }
    fn from_i32(v: i32) -> Self {
        v
    }
}

/// Where the channel of each element sits in a contiguous buffer: the buffer is `outer`
/// repetitions of `channels` runs of `inner` contiguous elements, run `b` belonging to channel
/// `b % channels` (a row-major tensor quantized along one axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLayout {
    /// Number of channels (the length of the quantization axis).
    pub channels: usize,
    /// Elements per run: the product of the dimensions after the axis.
    pub inner: usize,
}

impl ChannelLayout {
    /// Whether a buffer of `len` elements has runs to visit: false when empty; panics unless
    /// `len` is a whole number of channel periods.
    fn has_runs(self, len: usize) -> bool {
        if len == 0 {
            return false;
        }
        let period = self.channels * self.inner;
        assert!(
            period > 0 && len.is_multiple_of(period),
            "length is not a whole number of channel periods"
        );
        true
    }

    /// The layout of a row-major tensor of `shape` quantized along `axis` (< `shape.len()`).
    pub fn of(shape: &[usize], axis: usize) -> ChannelLayout {
        ChannelLayout {
            channels: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        }
    }
}

/// The kernel family that runs a call. Only [`Tier::from_isa`] builds one, and it builds a SIMD
/// tier only after checking the exact CPU features that tier's kernels enable: holding a
/// `Tier::Avx2` or `Tier::Avx512` is the proof the dispatch relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Tier {
    /// The family for `isa`, falling back to scalar when the host cannot run it.
    fn from_isa(isa: Isa) -> Tier {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2");
            let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
            match isa {
                Isa::Avx512Vnni if avx512 => Tier::Avx512,
                Isa::Avx2 | Isa::AvxVnni if avx2 => Tier::Avx2,
                _ => Tier::Scalar,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = isa; // No SIMD family outside x86-64 yet.
            Tier::Scalar
        }
    }

    /// The family of the process-wide tier ([`isa::selected`]).
    fn selected() -> Tier {
        Tier::from_isa(isa::selected())
    }

    /// The family of an explicitly requested tier, or why the host cannot run it.
    fn checked(isa: Isa) -> Result<Tier, IsaError> {
        isa.check().map(Tier::from_isa)
    }
}

/// Calls the kernel `$name` of the family `$tier`.
macro_rules! on_tier {
    ($tier:expr, $name:ident($($arg:expr),* $(,)?)) => {
        match $tier {
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => {
                // SAFETY: `Tier::Avx512` is only built once AVX2 and AVX-512 F/BW/VL were detected.
                unsafe { x86_avx512::$name($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => {
                // SAFETY: `Tier::Avx2` is only built once AVX2 was detected.
                unsafe { x86_avx2::$name($($arg),*) }
            }
            Tier::Scalar => scalar::$name($($arg),*),
        }
    };
}

/// Order-preserving integer image of an f32: signed comparison of keys is the IEEE total order
/// (-NaN < -inf < … < -0.0 < +0.0 < … < +inf < +NaN), so min/max do not depend on the order
/// elements are visited in (`f32::min` leaves signed zeros unspecified), and a NaN is present
/// exactly when an extreme key lies beyond an infinity's. The map is its own inverse.
#[inline(always)]
fn order_key(bits: i32) -> i32 {
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// A running min/max in the key domain.
#[derive(Debug, Clone, Copy)]
struct KeyRange {
    lo: i32,
    hi: i32,
}

impl KeyRange {
    /// Nothing seen yet: `lo > hi`, which no element can produce.
    const EMPTY: KeyRange = KeyRange {
        lo: i32::MAX,
        hi: i32::MIN,
    };

    #[inline(always)]
    fn push(&mut self, v: f32) {
        let k = order_key(v.to_bits() as i32);
        self.lo = self.lo.min(k);
        self.hi = self.hi.max(k);
    }

    fn merge(&mut self, other: KeyRange) {
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
    }

    /// (NaN, NaN) if any NaN was seen, (0, 0) if nothing was, else (min, max).
    fn finish(self) -> (f32, f32) {
        let key = |v: f32| order_key(v.to_bits() as i32);
        if self.lo > self.hi {
            (0.0, 0.0)
        } else if self.lo < key(f32::NEG_INFINITY) || self.hi > key(f32::INFINITY) {
            (f32::NAN, f32::NAN)
        } else {
            let value = |k: i32| f32::from_bits(order_key(k) as u32);
            (value(self.lo), value(self.hi))
        }
    }
}

fn check_lengths(input: usize, output: usize) {
    assert_eq!(input, output, "input and output lengths differ");
}

fn quantize_per_tensor_tier<T: QInt>(
    tier: Tier,
    x: &[f32],
    out: &mut [T],
    scale: f64,
    zero_point: i32,
) {
    check_lengths(x.len(), out.len());
    let inv = inv_scale(scale);
    // Element by element, so chunks in parallel give the same values (small tensors stay on
    // the calling thread).
    let run =
        |(x, out): (&[f32], &mut [T])| on_tier!(tier, quantize_per_tensor(x, out, inv, zero_point));
    if x.len() > QUANTIZE_CHUNK {
        use rayon::prelude::*;
        let chunks = x
            .par_chunks(QUANTIZE_CHUNK)
            .zip(out.par_chunks_mut(QUANTIZE_CHUNK));
        chunks.for_each(run);
    } else {
        run((x, out));
    }
}

/// Elements per parallel chunk of [`quantize_per_tensor`].
const QUANTIZE_CHUNK: usize = 1 << 16;

/// `quantize_per_tensor` into `out` on the selected tier, element by element:
/// [`crate::tensor::quantize::quantize_val_8bit`] for `u8`/`i8`,
/// [`crate::tensor::quantize::quantize_val_i32`] for `i32`.
/// Panics when the lengths differ.
pub fn quantize_per_tensor<T: QInt>(x: &[f32], out: &mut [T], scale: f64, zero_point: i32) {
    quantize_per_tensor_tier(Tier::selected(), x, out, scale, zero_point);
}

/// [`quantize_per_tensor`] on an explicit tier.
pub fn quantize_per_tensor_on<T: QInt>(
    isa: Isa,
    x: &[f32],
    out: &mut [T],
    scale: f64,
    zero_point: i32,
) -> Result<(), IsaError> {
    quantize_per_tensor_tier(Tier::checked(isa)?, x, out, scale, zero_point);
    Ok(())
}

/// [`quantize_per_tensor`] to quint8.
pub fn quantize_per_tensor_u8(x: &[f32], out: &mut [u8], scale: f64, zero_point: i32) {
    quantize_per_tensor(x, out, scale, zero_point);
}

/// [`quantize_per_tensor`] to qint8.
pub fn quantize_per_tensor_i8(x: &[f32], out: &mut [i8], scale: f64, zero_point: i32) {
    quantize_per_tensor(x, out, scale, zero_point);
}

/// [`quantize_per_tensor`] to qint32.
pub fn quantize_per_tensor_i32(x: &[f32], out: &mut [i32], scale: f64, zero_point: i32) {
    quantize_per_tensor(x, out, scale, zero_point);
}

fn dequantize_per_tensor_tier<T: QInt>(
    tier: Tier,
    q: &[T],
    out: &mut [f32],
    scale: f64,
    zero_point: i32,
) {
    check_lengths(q.len(), out.len());
    on_tier!(
        tier,
        dequantize_per_tensor(q, out, scale as f32, zero_point)
    );
}

/// Per-tensor `dequantize` into `out` on the selected tier:
/// [`crate::tensor::quantize::dequantize_val`] with the f32-rounded scale. Panics when the
/// lengths differ.
pub fn dequantize_per_tensor<T: QInt>(q: &[T], out: &mut [f32], scale: f64, zero_point: i32) {
    dequantize_per_tensor_tier(Tier::selected(), q, out, scale, zero_point);
}

/// [`dequantize_per_tensor`] on an explicit tier.
pub fn dequantize_per_tensor_on<T: QInt>(
    isa: Isa,
    q: &[T],
    out: &mut [f32],
    scale: f64,
    zero_point: i32,
) -> Result<(), IsaError> {
    dequantize_per_tensor_tier(Tier::checked(isa)?, q, out, scale, zero_point);
    Ok(())
}

/// [`dequantize_per_tensor`] from quint8.
pub fn dequantize_per_tensor_u8(q: &[u8], out: &mut [f32], scale: f64, zero_point: i32) {
    dequantize_per_tensor(q, out, scale, zero_point);
}

/// [`dequantize_per_tensor`] from qint8.
pub fn dequantize_per_tensor_i8(q: &[i8], out: &mut [f32], scale: f64, zero_point: i32) {
    dequantize_per_tensor(q, out, scale, zero_point);
}

/// [`dequantize_per_tensor`] from qint32.
pub fn dequantize_per_tensor_i32(q: &[i32], out: &mut [f32], scale: f64, zero_point: i32) {
    dequantize_per_tensor(q, out, scale, zero_point);
}

/// Splits `input`/`output` into the runs of `layout` and calls `run(scale, zero_point,
/// input_run, output_run)` on each with its channel's qparams. Panics when the lengths disagree
/// with each other or with the layout.
fn for_each_channel_run<A, B>(
    input: &[A],
    output: &mut [B],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
    mut run: impl FnMut(f64, i64, &[A], &mut [B]),
) {
    check_lengths(input.len(), output.len());
    assert!(
        scales.len() == layout.channels && zero_points.len() == layout.channels,
        "need one scale and one zero point per channel"
    );
    if !layout.has_runs(input.len()) {
        return;
    }
    let runs = input
        .chunks(layout.inner)
        .zip(output.chunks_mut(layout.inner));
    for (b, (i, o)) in runs.enumerate() {
        let c = b % layout.channels;
        run(scales[c], zero_points[c], i, o);
    }
}

fn quantize_per_channel_tier<T: QInt>(
    tier: Tier,
    x: &[f32],
    out: &mut [T],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
) {
    for_each_channel_run(x, out, layout, scales, zero_points, |s, z, x, out| {
        on_tier!(tier, quantize_per_channel(x, out, inv_scale(s), z as i32));
    });
}

/// `quantize_per_channel` of a contiguous buffer on the selected tier:
/// [`crate::tensor::quantize::quantize_val_per_channel`] with channel `c`'s scale and zero point.
/// Panics when the lengths disagree with `layout`.
pub fn quantize_per_channel<T: QInt>(
    x: &[f32],
    out: &mut [T],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
) {
    quantize_per_channel_tier(Tier::selected(), x, out, layout, scales, zero_points);
}

/// [`quantize_per_channel`] on an explicit tier.
pub fn quantize_per_channel_on<T: QInt>(
    isa: Isa,
    x: &[f32],
    out: &mut [T],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
) -> Result<(), IsaError> {
    quantize_per_channel_tier(Tier::checked(isa)?, x, out, layout, scales, zero_points);
    Ok(())
}

fn dequantize_per_channel_tier<T: QInt>(
    tier: Tier,
    q: &[T],
    out: &mut [f32],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
) {
    for_each_channel_run(q, out, layout, scales, zero_points, |s, z, q, out| {
        on_tier!(tier, dequantize_per_channel(q, out, s, z));
    });
}

/// Per-channel `dequantize` of a contiguous buffer on the selected tier:
/// [`crate::tensor::quantize::dequantize_val_per_channel`] (f64 product). Panics when the lengths
/// disagree with `layout`.
pub fn dequantize_per_channel<T: QInt>(
    q: &[T],
    out: &mut [f32],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
) {
    dequantize_per_channel_tier(Tier::selected(), q, out, layout, scales, zero_points);
}

/// [`dequantize_per_channel`] on an explicit tier.
pub fn dequantize_per_channel_on<T: QInt>(
    isa: Isa,
    q: &[T],
    out: &mut [f32],
    layout: ChannelLayout,
    scales: &[f64],
    zero_points: &[i64],
) -> Result<(), IsaError> {
    dequantize_per_channel_tier(Tier::checked(isa)?, q, out, layout, scales, zero_points);
    Ok(())
}

/// Elements per parallel piece of [`min_max`].
const MIN_MAX_CHUNK: usize = 1 << 17;

/// Min and max of `x` on the selected tier: (NaN, NaN) when any element is NaN, (0, 0) when
/// empty, otherwise the extremes under the IEEE total order (so -0.0 < +0.0).
pub fn min_max(x: &[f32]) -> (f32, f32) {
    min_max_tier(Tier::selected(), x)
}

/// [`min_max`] on an explicit tier.
pub fn min_max_on(isa: Isa, x: &[f32]) -> Result<(f32, f32), IsaError> {
    Ok(min_max_tier(Tier::checked(isa)?, x))
}

/// Large buffers (a batch's activation) are reduced in parallel pieces: min and max of the
/// integer keys are exact, so the split never shows in the result.
fn min_max_tier(tier: Tier, x: &[f32]) -> (f32, f32) {
    use rayon::prelude::*;
    x.par_chunks(MIN_MAX_CHUNK)
        .map(|c| on_tier!(tier, key_range(c)))
        .reduce(
            || KeyRange::EMPTY,
            |mut a, b| {
                a.merge(b);
                a
            },
        )
        .finish()
}

fn min_max_per_channel_tier(tier: Tier, x: &[f32], layout: ChannelLayout) -> Vec<(f32, f32)> {
    let mut ranges = vec![KeyRange::EMPTY; layout.channels];
    if layout.has_runs(x.len()) {
        for (b, run) in x.chunks(layout.inner).enumerate() {
            ranges[b % layout.channels].merge(on_tier!(tier, key_range(run)));
        }
    }
    ranges.into_iter().map(KeyRange::finish).collect()
}

/// [`min_max`] of each channel of a contiguous buffer (what a per-channel observer records), on
/// the selected tier. Panics unless the length is a whole number of channel periods.
pub fn min_max_per_channel(x: &[f32], layout: ChannelLayout) -> Vec<(f32, f32)> {
    min_max_per_channel_tier(Tier::selected(), x, layout)
}

/// [`min_max_per_channel`] on an explicit tier.
pub fn min_max_per_channel_on(
    isa: Isa,
    x: &[f32],
    layout: ChannelLayout,
) -> Result<Vec<(f32, f32)>, IsaError> {
    Ok(min_max_per_channel_tier(Tier::checked(isa)?, x, layout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::quantize::{inv_scale, quantize_val_8bit};

    /// Tensors past one chunk are quantized in parallel chunks: every element still equals the
    /// element rule, on every tier the host has.
    #[test]
    fn chunked_quantize_equals_the_element_rule() {
        let n = 3 * QUANTIZE_CHUNK + 5;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37) % 1001) as f32 * 0.013 - 6.5)
            .collect();
        let (scale, zp) = (0.05, 128);
        let want: Vec<u8> = x
            .iter()
            .map(|&v| quantize_val_8bit(v, inv_scale(scale), zp, 0, 255) as u8)
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for isa in crate::isa::ALL.into_iter().filter(|t| t.is_available()) {
            let mut got = vec![0u8; n];
            pool.install(|| quantize_per_tensor_on(isa, &x, &mut got, scale, zp))
                .unwrap();
            assert!(got == want, "{isa}");
        }
    }
}
