//! Quantized binary and functional ops: `add`, `add_relu`, `mul`, `mul_relu`, `cat`,
//! `add_scalar`, `mul_scalar`, and `QFunctional`, the converted form of `FloatFunctional`.
//!
//! Engine rules (NUMERICS §6.4, confirmed on every golden case):
//! * add on fbgemm / x86: float path — split dequantize (fma body,
//!   `(q - z)·s` tail), f32 sum, optional ReLU, vector quantize.
//! * quint8 add on qnnpack: QNNPACK's fixed point (Q21 multipliers, shift right rounding half
//!   away from zero).
//! * qint8 add on qnnpack: XNNPACK's fixed point (Q20 multipliers, rounds half up). PyTorch
//!   routes it there (`qadd` in BinaryOps.cpp); the single golden qint8 case is matched by this
//!   rule and by the float path alike.
//! * mul (every engine): integer product of zero-point-relative values, requantized by
//!   `RNE(f32(p) · f32(f32(s_a·s_b) · 1/s_y)) + z_y` (golden: 1 of 74 outputs of
//!   `mul_2x37_p0` tells this from the float form). qint8 with output zero point < 127 goes to
//!   XNNPACK in PyTorch (`QMul`), whose multiplier is `f32(s_a·s_b) / s_y`, a division (from
//!   source only: no golden case).
//! * cat: dequantize every input, concatenate, quantize with the output qparams.
//! * add_scalar / mul_scalar choose their own output qparams (PyTorch's `_add_scalar_out` /
//!   `_mul_scalar_out`): see the functions.
//!
//! Add and mul need equal shapes (no broadcasting), like PyTorch's quantized add on qnnpack.

use super::QnnError;
use super::linear::u8_values;
use super::pointwise::{Operand, Requantize, SplitDequant, output, same_dtype};
use crate::engine::{Engine, Numerics};
use crate::isa::Isa;
use crate::tensor::{QDType, QParams, QStorage, QTensor};
use rayon::prelude::*;

/// `nn.quantized.QFunctional`: the output qparams its binary ops requantize to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QFunctional {
    pub scale: f64,
    pub zero_point: i64,
}

impl Default for QFunctional {
    /// PyTorch's defaults before convert sets them: scale 1.0, zero point 0.
    fn default() -> Self {
        QFunctional {
            scale: 1.0,
            zero_point: 0,
        }
    }
}

impl QFunctional {
    pub fn new(scale: f64, zero_point: i64) -> Self {
        QFunctional { scale, zero_point }
    }

    pub fn add(&self, a: &QTensor, b: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
        add(a, b, self.scale, self.zero_point, false, numerics)
    }

    pub fn add_relu(
        &self,
        a: &QTensor,
        b: &QTensor,
        numerics: Numerics,
    ) -> Result<QTensor, QnnError> {
        add(a, b, self.scale, self.zero_point, true, numerics)
    }

    pub fn mul(&self, a: &QTensor, b: &QTensor) -> Result<QTensor, QnnError> {
        mul(a, b, self.scale, self.zero_point, false)
    }

    pub fn mul_relu(&self, a: &QTensor, b: &QTensor) -> Result<QTensor, QnnError> {
        mul(a, b, self.scale, self.zero_point, true)
    }

    pub fn cat(&self, xs: &[&QTensor], dim: i64) -> Result<QTensor, QnnError> {
        cat(xs, dim, self.scale, self.zero_point)
    }

    /// Ignores this module's qparams, as PyTorch does.
    pub fn add_scalar(&self, a: &QTensor, c: f64) -> Result<QTensor, QnnError> {
        add_scalar(a, c)
    }

    /// Ignores this module's qparams, as PyTorch does.
    pub fn mul_scalar(&self, a: &QTensor, c: f64) -> Result<QTensor, QnnError> {
        mul_scalar(a, c)
    }
}

/// Checks a binary op's operands (same dtype, same shape) and its output qparams.
fn binary_operands(
    op: &'static str,
    a: &QTensor,
    b: &QTensor,
    scale: f64,
    zero_point: i64,
) -> Result<(Operand, Operand), QnnError> {
    let (ao, bo) = (Operand::of(op, "a", a)?, Operand::of(op, "b", b)?);
    same_dtype(op, &ao, &bo)?;
    if a.shape() != b.shape() {
        return Err(QnnError::Shape {
            op,
            detail: format!("operand shapes {:?} and {:?} differ", a.shape(), b.shape()),
        });
    }
    QParams::PerTensor { scale, zero_point }.validate(ao.dtype, &[])?;
    Ok((ao, bo))
}

/// `quantized::add` / `quantized::add_relu` with output qparams `(scale, zero_point)`.
pub fn add(
    a: &QTensor,
    b: &QTensor,
    scale: f64,
    zero_point: i64,
    relu: bool,
    numerics: Numerics,
) -> Result<QTensor, QnnError> {
    let op = if relu { "add_relu" } else { "add" };
    let (ao, bo) = binary_operands(op, a, b, scale, zero_point)?;
    let values = if numerics.engine == Engine::Qnnpack {
        // PyTorch's qnnpack engine adds quint8 in QNNPACK and qint8 in XNNPACK.
        let rule = match ao.dtype {
            QDType::QUInt8 => MobileAdd::Qnnpack,
            _ => MobileAdd::Xnnpack,
        };
        let fixed = FixedPointAdd::new(op, rule, &ao, &bo, zero_point as i32, scale, relu)?;
        zip_map(a, b, &fixed, numerics.isa())
    } else {
        let rule = FloatAdd {
            a: SplitDequant::new(&ao, a.numel()),
            b: SplitDequant::new(&bo, b.numel()),
            out: Requantize::new(scale, zero_point as i32, ao.dtype),
            floor: if relu { 0.0 } else { f32::NEG_INFINITY },
        };
        zip_map(a, b, &rule, numerics.isa())
    };
    Ok(QTensor::from_int_repr(
        values,
        a.shape(),
        QParams::PerTensor { scale, zero_point },
    )?)
}

/// An element rule of a binary op: one form for `cpu_kernel_vec`'s vector body (the first
/// `body()` elements) and one for its scalar tail.
trait PairRule {
    fn body(&self) -> usize;
    fn vector(&self, x: i32, y: i32) -> i32;
    fn scalar(&self, i: usize, x: i32, y: i32) -> i32;
}

/// fbgemm's float add: split dequantize, f32 sum, ReLU floor, vector quantize.
struct FloatAdd {
    a: SplitDequant,
    b: SplitDequant,
    out: Requantize,
    floor: f32,
}

impl PairRule for FloatAdd {
    fn body(&self) -> usize {
        self.a.body_len()
    }
    #[inline(always)]
    fn vector(&self, x: i32, y: i32) -> i32 {
        let v = self.a.body_at(x) + self.b.body_at(y);
        self.out.apply(v.max(self.floor))
    }
    #[inline(always)]
    fn scalar(&self, i: usize, x: i32, y: i32) -> i32 {
        let v = self.a.at(i, x) + self.b.at(i, y);
        self.out.apply(v.max(self.floor))
    }
}

impl PairRule for FixedPointAdd {
    fn body(&self) -> usize {
        usize::MAX
    }
    #[inline(always)]
    fn vector(&self, x: i32, y: i32) -> i32 {
        self.apply(x, y)
    }
    #[inline(always)]
    fn scalar(&self, _: usize, x: i32, y: i32) -> i32 {
        self.apply(x, y)
    }
}

/// `rule` over two same-shape 8-bit tensors in row-major order, stored in their dtype. quint8
/// operands are read as bytes and the loops are compiled for AVX2 + FMA when `tier` has them, so they vectorise and `mul_add` / rounding are single instructions rather than
/// libm calls (same IEEE operations, same results); other dtypes go through i32.
fn zip_map(a: &QTensor, b: &QTensor, rule: &(impl PairRule + Sync), tier: Isa) -> QStorage {
    if a.dtype() != QDType::QUInt8 {
        let (qa, qb) = (a.int_values(), b.int_values());
        let values = qa.iter().zip(&qb).enumerate().map(|(i, (&x, &y))| {
            if i < rule.body() {
                rule.vector(x, y)
            } else {
                rule.scalar(i, x, y)
            }
        });
        return QStorage::from_i32(a.dtype(), values);
    }
    let (qa, qb) = (u8_values(a), u8_values(b));
    let mut out = vec![0u8; qa.len()];
    #[cfg(target_arch = "x86_64")]
    let simd = tier.is_x86_simd() && tier.is_available();
    #[cfg(target_arch = "x86_64")]
    let wide = simd && tier == Isa::Avx512Vnni;
    #[cfg(not(target_arch = "x86_64"))]
    let _ = tier; // No SIMD byte loop outside x86-64 yet.
    // Chunks in parallel: each element's rule depends only on its index, so the split changes
    // nothing (small tensors stay on the calling thread).
    let chunk = |(c, out): (usize, &mut [u8])| {
        let at = c * ZIP_CHUNK;
        let (qa, qb) = (&qa[at..][..out.len()], &qb[at..][..out.len()]);
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the host has `tier`, which includes AVX-512 F/BW/VL, AVX2 and FMA.
            unsafe { zip_bytes_avx512(qa, qb, rule, at, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the host has `tier`, which includes AVX2 and FMA.
            unsafe { zip_bytes_avx2(qa, qb, rule, at, out) };
            return;
        }
        zip_bytes(qa, qb, rule, at, out);
    };
    if out.len() > ZIP_CHUNK {
        out.par_chunks_mut(ZIP_CHUNK).enumerate().for_each(chunk);
    } else {
        chunk((0, &mut out));
    }
    QStorage::U8(out)
}

/// Elements per parallel chunk of [`zip_map`]'s byte loops.
const ZIP_CHUNK: usize = 1 << 16;

/// The byte loops of [`zip_map`] over elements `at..at + out.len()`: the vector body (below
/// `rule.body()`), then the scalar tail.
#[inline(always)]
fn zip_bytes(qa: &[u8], qb: &[u8], rule: &impl PairRule, at: usize, out: &mut [u8]) {
    let body = rule.body().saturating_sub(at).min(out.len());
    let (head, tail) = out.split_at_mut(body);
    for ((o, &x), &y) in head.iter_mut().zip(qa).zip(qb) {
        *o = rule.vector(x as i32, y as i32) as u8;
    }
    let rest = qa[body..].iter().zip(&qb[body..]);
    for (i, (o, (&x, &y))) in tail.iter_mut().zip(rest).enumerate() {
        *o = rule.scalar(at + body + i, x as i32, y as i32) as u8;
    }
}

/// [`zip_bytes`] compiled for AVX2 + FMA.
///
/// # Safety
/// The host must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn zip_bytes_avx2(qa: &[u8], qb: &[u8], rule: &impl PairRule, at: usize, out: &mut [u8]) {
    zip_bytes(qa, qb, rule, at, out);
}

/// [`zip_bytes`] compiled for AVX-512 (16 lanes; the same IEEE operations per element).
///
/// # Safety
/// The host must support AVX-512 F, BW and VL, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn zip_bytes_avx512(qa: &[u8], qb: &[u8], rule: &impl PairRule, at: usize, out: &mut [u8]) {
    zip_bytes(qa, qb, rule, at, out);
}

/// The two fixed-point adds behind PyTorch's qnnpack engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MobileAdd {
    /// QNNPACK (quint8): Q21 multipliers, shift right rounding half away from zero.
    Qnnpack,
    /// XNNPACK (qint8): Q20 multipliers, a rounding bias of half, then an arithmetic shift
    /// (rounds half up).
    Xnnpack,
}

/// `acc = bias + qa·ma + qb·mb` in wrapping i32, shifted right and offset by the zero point.
/// Multipliers are `RNE(s_in/s_y · 2^shift)` (f32 ratios), with `shift` chosen so the larger one
/// fills the rule's multiplier bits.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FixedPointAdd {
    rule: MobileAdd,
    a_mult: i32,
    b_mult: i32,
    bias: i32,
    shift: u32,
    zero_point: i32,
    lo: i32,
    hi: i32,
}

impl FixedPointAdd {
    fn new(
        op: &'static str,
        rule: MobileAdd,
        a: &Operand,
        b: &Operand,
        zero_point: i32,
        scale: f64,
        relu: bool,
    ) -> Result<Self, QnnError> {
        let sy = scale as f32;
        let (ra, rb) = ((a.scale as f32) / sy, (b.scale as f32) / sy);
        // Both libraries accept ratios in [2^-14, 2^8); the larger one must also reach 2^-10, or
        // the shift would leave the 32-bit range (an assert in their debug builds).
        let range = 2f32.powi(-14)..2f32.powi(8);
        if !range.contains(&ra) || !range.contains(&rb) || ra.max(rb) < 2f32.powi(-10) {
            return Err(QnnError::InvalidParam {
                op,
                detail: format!(
                    "qnnpack needs input/output scale ratios in [2^-14, 2^8), the larger one at \
                     least 2^-10, got {ra} and {rb}"
                ),
            });
        }
        let bits = match rule {
            MobileAdd::Qnnpack => 21,
            MobileAdd::Xnnpack => 20,
        };
        let exponent = ((ra.max(rb).to_bits() >> 23) as i32) - 127;
        let shift = (bits - exponent) as u32;
        // Scaling by 2^shift is exact in f32; only the conversion rounds (lrintf: ties to even).
        let scale_up = |r: f32| (r * 2f32.powi(shift as i32)).round_ties_even() as i32;
        let (a_mult, b_mult) = (scale_up(ra), scale_up(rb));
        let zero_product = a_mult
            .wrapping_mul(a.zero_point)
            .wrapping_add(b_mult.wrapping_mul(b.zero_point));
        let rounding = match rule {
            MobileAdd::Qnnpack => 0,
            MobileAdd::Xnnpack => 1 << (shift - 1),
        };
        Ok(FixedPointAdd {
            rule,
            a_mult,
            b_mult,
            bias: rounding - zero_product,
            shift,
            zero_point,
            lo: if relu { zero_point } else { a.qmin() },
            hi: a.qmax(),
        })
    }

    #[inline(always)]
    fn apply(&self, qa: i32, qb: i32) -> i32 {
        let acc = self
            .bias
            .wrapping_add(qa * self.a_mult)
            .wrapping_add(qb * self.b_mult);
        let q = match self.rule {
            MobileAdd::Xnnpack => acc >> self.shift,
            MobileAdd::Qnnpack => {
                let mask = ((1u32 << self.shift) - 1) as i32;
                // The remainder of a negative sum is biased by -1 so that halves round away from 0.
                let rem = (acc & mask) - i32::from(acc < 0);
                (acc >> self.shift) + i32::from(rem > (mask >> 1))
            }
        };
        (q + self.zero_point).clamp(self.lo, self.hi)
    }
}

/// `quantized::mul` / `quantized::mul_relu` with output qparams `(scale, zero_point)`.
pub fn mul(
    a: &QTensor,
    b: &QTensor,
    scale: f64,
    zero_point: i64,
    relu: bool,
) -> Result<QTensor, QnnError> {
    let op = if relu { "mul_relu" } else { "mul" };
    // The product commutes, so the operand holding one value per run of the other (a
    // squeeze-excitation gate `[N, C, 1, 1]` against `[N, C, H, W]`) goes second and is read
    // in place; any other broadcast is expanded first.
    let (a, b, run) = match (per_run(a.shape(), b.shape()), per_run(b.shape(), a.shape())) {
        (Some(run), _) => (a.clone(), b.clone(), run),
        (None, Some(run)) => (b.clone(), a.clone(), run),
        (None, None) => {
            let (a, b) = broadcast(op, a, b)?;
            (a, b, 1)
        }
    };
    let (ao, bo) = (Operand::of(op, "a", &a)?, Operand::of(op, "b", &b)?);
    same_dtype(op, &ao, &bo)?;
    QParams::PerTensor { scale, zero_point }.validate(ao.dtype, &[])?;
    let product = (ao.scale as f32) * (bo.scale as f32);
    let multiplier = if ao.dtype == QDType::QInt8 && zero_point < 127 {
        // PyTorch's QMul sends these to XNNPACK (on every engine), which divides once.
        let m = product / scale as f32;
        if !(2f32.powi(-16)..2f32.powi(8)).contains(&m) {
            return Err(QnnError::InvalidParam {
                op,
                detail: format!(
                    "XNNPACK needs a product-to-output scale ratio in [2^-16, 2^8), got {m}"
                ),
            });
        }
        m
    } else {
        product * (1.0f32 / scale as f32)
    };
    let z = zero_point as i32;
    let rule = MulRule {
        za: ao.zero_point,
        zb: bo.zero_point,
        multiplier,
        zero_point: z,
        lo: if relu { z } else { ao.qmin() },
        hi: ao.qmax(),
    };
    let mut values = vec![0; a.numel()];
    mul_runs(&mut values, &a.int_values(), &b.int_values(), run, rule);
    output(ao.dtype, values, a.shape(), scale, zero_point)
}

/// How many consecutive elements of a tensor of shape `big` share one element of `small`,
/// when `small` (left-padded with 1s) equals `big` on leading dims and is 1 on the rest.
fn per_run(big: &[usize], small: &[usize]) -> Option<usize> {
    let pad = big.len().checked_sub(small.len())?;
    let small_at = |d: usize| if d < pad { 1 } else { small[d - pad] };
    let ones = (0..big.len())
        .rev()
        .take_while(|&d| small_at(d) == 1)
        .count();
    let lead = big.len() - ones;
    (0..lead)
        .all(|d| small_at(d) == big[d])
        .then(|| big[lead..].iter().product())
}

/// `quantized::mul`'s element rule: `clamp(z + RNE(f32((a - za)·(b - zb)) · multiplier))`.
#[derive(Debug, Clone, Copy)]
struct MulRule {
    za: i32,
    zb: i32,
    multiplier: f32,
    zero_point: i32,
    lo: i32,
    hi: i32,
}

crate::isa::avx2_fma_twin! {
    /// `out[i] = rule(a[i], b[i / run])`. Compiled for AVX2 as well, where the rounding is one
    /// instruction rather than a libm call; no product is fused, so both give the same integers.
    fn mul_runs(out: &mut [i32], a: &[i32], b: &[i32], run: usize, rule: MulRule)
    when std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") => {
        let MulRule { za, zb, multiplier, zero_point, lo, hi } = rule;
        let one = |x: i32, y: i32| {
            requantize_from_int((x - za) * (y - zb), multiplier, zero_point).clamp(lo, hi)
        };
        if run <= 1 {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = one(x, y);
            }
            return;
        }
        for ((out, a), &y) in out.chunks_mut(run).zip(a.chunks(run)).zip(b) {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = one(x, y);
            }
        }
    }
}

/// Both operands expanded to their broadcast shape, as PyTorch's `quantized::mul` iterates
/// them (squeeze-excitation multiplies `[N, C, 1, 1]` gates into `[N, C, H, W]` features).
fn broadcast(op: &'static str, a: &QTensor, b: &QTensor) -> Result<(QTensor, QTensor), QnnError> {
    if a.shape() == b.shape() {
        return Ok((a.clone(), b.clone()));
    }
    let shape =
        crate::tensor::broadcast_shape(a.shape(), b.shape()).ok_or_else(|| QnnError::Shape {
            op,
            detail: format!(
                "operand shapes {:?} and {:?} do not broadcast",
                a.shape(),
                b.shape()
            ),
        })?;
    let sizes: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Ok((a.expand(&sizes)?, b.expand(&sizes)?))
}

/// `requantize_from_int`: `z + RNE(f32(v) · multiplier)`, before the caller's clamp.
#[inline]
fn requantize_from_int(v: i32, multiplier: f32, zero_point: i32) -> i32 {
    // Bounded first (the caller's clamp to 8 bits gives the same result for anything beyond
    // ±2^30, and the sum cannot overflow), so the conversion needs no saturation checks and
    // vectorises.
    const BOUND: f32 = (1 << 30) as f32;
    // Not `clamp`: `max`/`min` also turn a NaN into a bound, which keeps the conversion sound.
    #[allow(clippy::manual_clamp)]
    let r = ((v as f32) * multiplier)
        .round_ties_even()
        .max(-BOUND)
        .min(BOUND);
    // SAFETY: `r` is finite (max/min replace NaN by a bound) and within i32.
    unsafe { r.to_int_unchecked::<i32>() + zero_point }
}

/// `quantized::cat(xs, dim, scale, zero_point)`: every input is dequantized and requantized.
pub fn cat(xs: &[&QTensor], dim: i64, scale: f64, zero_point: i64) -> Result<QTensor, QnnError> {
    const OP: &str = "cat";
    let Some(first) = xs.first() else {
        return Err(QnnError::InvalidParam {
            op: OP,
            detail: "needs at least one tensor".into(),
        });
    };
    let lead = Operand::of(OP, "tensors[0]", first)?;
    let rank = first.ndim();
    let d = resolve_dim(OP, dim, rank)?;
    let mut out_shape = first.shape().to_vec();
    out_shape[d] = 0;
    for x in xs {
        same_dtype(OP, &lead, &Operand::of(OP, "tensors[i]", x)?)?;
        let fits =
            x.ndim() == rank && (0..rank).all(|k| k == d || x.shape()[k] == first.shape()[k]);
        if !fits {
            return Err(QnnError::Shape {
                op: OP,
                detail: format!(
                    "{:?} and {:?} differ outside dim {d}",
                    first.shape(),
                    x.shape()
                ),
            });
        }
        out_shape[d] += x.shape()[d];
    }
    // Row-major: the output is, for each outer index, the inputs' inner blocks one after another.
    let outer: usize = out_shape[..d].iter().product();
    // 8-bit per-tensor inputs: dequantize-then-quantize is a function of the stored value alone
    // (both steps are element by element), so a table over every value gives the same integers.
    let tables = xs
        .iter()
        .map(|x| requant_table(x, scale, zero_point))
        .collect::<Result<Option<Vec<_>>, _>>()?;
    if let Some(tables) = tables {
        // Stored bytes (qint8 as two's complement), each table re-indexed by them.
        let tables: Vec<[u8; 256]> = tables
            .iter()
            .map(|t| super::pointwise::by_stored_byte(t, lead.dtype))
            .collect();
        let parts: Vec<_> = xs.iter().map(|x| u8_values(x)).collect();
        let blocks: Vec<usize> = xs.iter().map(|x| x.shape()[d..].iter().product()).collect();
        let mut joined = vec![0u8; blocks.iter().sum::<usize>() * outer];
        let mut at = 0;
        for o in 0..outer {
            for ((part, table), &block) in parts.iter().zip(&tables).zip(&blocks) {
                let dst = &mut joined[at..at + block];
                crate::kernels::lut::map_bytes(&part[o * block..][..block], table, dst);
                at += block;
            }
        }
        let storage = match lead.dtype {
            QDType::QUInt8 => QStorage::U8(joined),
            _ => QStorage::I8(joined.into_iter().map(|b| b as i8).collect()),
        };
        return Ok(QTensor::from_int_repr(
            storage,
            &out_shape,
            QParams::PerTensor { scale, zero_point },
        )?);
    }
    let floats: Vec<Vec<f32>> = xs.iter().map(|x| x.dequantize()).collect();
    let mut joined = Vec::with_capacity(floats.iter().map(Vec::len).sum());
    for o in 0..outer {
        for (x, f) in xs.iter().zip(&floats) {
            let block = x.shape()[d..].iter().product::<usize>();
            joined.extend_from_slice(&f[o * block..(o + 1) * block]);
        }
    }
    Ok(QTensor::quantize_per_tensor(
        &joined, &out_shape, scale, zero_point, lead.dtype,
    )?)
}

/// What `quantize(dequantize(q), scale, zero_point)` gives for every stored value `q` of `x`'s
/// 8-bit dtype, indexed from the dtype's minimum; `None` for per-channel or 32-bit inputs.
fn requant_table(x: &QTensor, scale: f64, zero_point: i64) -> Result<Option<Vec<i32>>, QnnError> {
    let values: Vec<i32> = match x.dtype() {
        QDType::QUInt8 => (0..=255).collect(),
        QDType::QInt8 => (-128..=127).collect(),
        QDType::QInt32 => return Ok(None),
    };
    if !matches!(x.qparams(), QParams::PerTensor { .. }) {
        return Ok(None);
    }
    let n = values.len();
    let every = QTensor::from_int_repr(
        QStorage::from_i32(x.dtype(), values),
        &[n],
        x.qparams().clone(),
    )?;
    let q = QTensor::quantize_per_tensor(&every.dequantize(), &[n], scale, zero_point, x.dtype())?;
    Ok(Some(q.int_values()))
}

fn resolve_dim(op: &'static str, dim: i64, rank: usize) -> Result<usize, QnnError> {
    let r = rank as i64;
    let d = if dim < 0 { dim + r } else { dim };
    if (0..r).contains(&d) {
        Ok(d as usize)
    } else {
        Err(QnnError::InvalidParam {
            op,
            detail: format!("dim {dim} is out of range for rank {rank}"),
        })
    }
}

/// `quantized::add_scalar(a, c)`. With `c_q = RNE(c / s)` (f64), the output keeps the scale and
/// takes zero point `z - c_q` while that fits the dtype, leaving the integers unchanged; otherwise
/// the zero point is pinned to the violated end of the range, the scale widened to
/// `(qmax - (z - c_q)) / (qmax - qmin) · s` (or `(z - c_q - qmin) / (qmax - qmin) · s`), and every
/// value requantized from `q - z + c_q` with multiplier `f32(s) · 1/f32(s')`.
pub fn add_scalar(a: &QTensor, c: f64) -> Result<QTensor, QnnError> {
    let ao = Operand::of("add_scalar", "a", a)?;
    let (s, z) = (ao.scale, ao.zero_point as i64);
    let (qmin, qmax) = (ao.qmin() as i64, ao.qmax() as i64);
    let c_s = (c / s).round_ties_even();
    // Beyond 2^30 the shifted integers would leave i32 (PyTorch's int64 cast is undefined there).
    if c_s.is_nan() || c_s.abs() >= 2f64.powi(30) {
        return Err(QnnError::InvalidParam {
            op: "add_scalar",
            detail: format!("scalar {c} is not finite or too large for scale {s}"),
        });
    }
    let c_q = c_s as i64;
    let shifted = z - c_q;
    let span = (qmax - qmin) as f64;
    let (scale, zero_point) = if shifted < qmin {
        ((qmax - shifted) as f64 / span * s, qmin)
    } else if shifted > qmax {
        ((shifted - qmin) as f64 / span * s, qmax)
    } else {
        return output(ao.dtype, a.int_values(), a.shape(), s, shifted);
    };
    let multiplier = (s as f32) * (1.0f32 / scale as f32);
    let values = a
        .int_values()
        .into_iter()
        .map(|q| {
            requantize_from_int(
                q - ao.zero_point + c_q as i32,
                multiplier,
                zero_point as i32,
            )
            .clamp(ao.qmin(), ao.qmax())
        })
        .collect();
    output(ao.dtype, values, a.shape(), scale, zero_point)
}

/// `quantized::mul_scalar(a, c)`: only the qparams change. `c > 0`: scale `c·s`, integers kept;
/// `c == 0`: all zeros with scale 1, zero point 0; `c < 0`: scale `|c|·s`, zero point
/// `qmax - (z - qmin)`, integers mirrored to `qmax + qmin - q`.
pub fn mul_scalar(a: &QTensor, c: f64) -> Result<QTensor, QnnError> {
    let ao = Operand::of("mul_scalar", "a", a)?;
    let (s, z) = (ao.scale, ao.zero_point);
    let q = a.int_values();
    let (values, scale, zero_point) = if c > 0.0 {
        (q, c * s, z)
    } else if c == 0.0 {
        (vec![0; q.len()], 1.0, 0)
    } else if c < 0.0 {
        let (lo, hi) = (ao.qmin(), ao.qmax());
        (
            q.into_iter().map(|v| hi + lo - v).collect(),
            c.abs() * s,
            hi - (z - lo),
        )
    } else {
        return Err(QnnError::InvalidParam {
            op: "mul_scalar",
            detail: "the scalar is NaN".into(),
        });
    };
    output(ao.dtype, values, a.shape(), scale, zero_point as i64)
}

/// `torch.ops.quantized.linear` (`linear_relu` with `relu`): a one-shot [`QLinear`](super::QLinear). Prefer
/// the module when the same weight runs more than once: it packs the weight once.
pub fn linear(
    x: &QTensor,
    weight: &QTensor,
    bias: Option<&[f32]>,
    out_scale: f64,
    out_zero_point: i64,
    relu: bool,
    numerics: Numerics,
) -> Result<QTensor, QnnError> {
    let m = super::QLinear::new(
        weight,
        bias.map(<[f32]>::to_vec),
        out_scale,
        out_zero_point,
        relu,
    )?;
    Ok(m.forward(x, numerics)?.0)
}

/// `torch.ops.quantized.conv{1,2,3}d` (`conv*_relu` with `relu`): a one-shot [`QConv`](super::QConv);
/// the weight's rank picks the spatial dimensionality.
#[allow(clippy::too_many_arguments)]
pub fn conv(
    x: &QTensor,
    weight: &QTensor,
    bias: Option<&[f32]>,
    params: super::ConvParams,
    out_scale: f64,
    out_zero_point: i64,
    relu: bool,
    numerics: Numerics,
) -> Result<QTensor, QnnError> {
    let m = super::QConv::new(
        weight,
        bias.map(<[f32]>::to_vec),
        params,
        out_scale,
        out_zero_point,
        relu,
    )?;
    Ok(m.forward(x, numerics)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::HostProfile;
    use crate::qnn::pointwise::VECTOR_CHUNK;
    use crate::tensor::QStorage;

    fn q(dtype: QDType, values: &[i32], shape: &[usize], scale: f64, zero_point: i64) -> QTensor {
        QTensor::from_int_repr(
            QStorage::from_i32(dtype, values.iter().copied()),
            shape,
            QParams::PerTensor { scale, zero_point },
        )
        .unwrap()
    }

    fn engine(e: Engine) -> Numerics {
        Numerics::new(e, HostProfile::Vnni)
    }

    #[test]
    fn qnnpack_add_fixed_point_by_hand() {
        // s_a = s_b = 0.5, s_y = 1: ratio 0.5 has exponent -1, so shift 22 and multipliers 2^21.
        let a = q(QDType::QUInt8, &[3, 0, 1], &[3], 0.5, 0);
        let b = q(QDType::QUInt8, &[0, 0, 0], &[3], 0.5, 3);
        let y = add(&a, &b, 1.0, 10, false, engine(Engine::Qnnpack)).unwrap();
        // Real sums: 0, -1.5 (both rules give -2), -1.
        assert_eq!(y.int_values(), vec![10, 8, 9]);
        let f = add(&a, &b, 1.0, 10, false, engine(Engine::Fbgemm)).unwrap();
        assert_eq!(f.int_values(), vec![10, 8, 9]);
        // 2.5: qnnpack rounds half away from zero, the float path half to even.
        let a = q(QDType::QUInt8, &[5], &[1], 0.5, 0);
        let b = q(QDType::QUInt8, &[3], &[1], 0.5, 3);
        assert_eq!(
            add(&a, &b, 1.0, 10, false, engine(Engine::Qnnpack))
                .unwrap()
                .int_values(),
            vec![13]
        );
        assert_eq!(
            add(&a, &b, 1.0, 10, false, engine(Engine::Fbgemm))
                .unwrap()
                .int_values(),
            vec![12]
        );
    }

    /// Large byte tensors are mapped in parallel chunks: every element (the vector body's and
    /// the scalar tail's, whose boundary falls inside a later chunk) equals the single loop's.
    #[test]
    fn chunked_byte_add_equals_one_loop() {
        let n = 3 * ZIP_CHUNK + 37;
        let bytes = |seed: u32| -> Vec<i32> {
            (0..n as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as i32)
                .collect()
        };
        let a = q(QDType::QUInt8, &bytes(1), &[n], 0.05, 128);
        let b = q(QDType::QUInt8, &bytes(7), &[n], 0.02, 100);
        let (ao, bo) = binary_operands("add", &a, &b, 0.1, 50).unwrap();
        let float = FloatAdd {
            a: SplitDequant::new(&ao, n),
            b: SplitDequant::new(&bo, n),
            out: Requantize::new(0.1, 50, ao.dtype),
            floor: f32::NEG_INFINITY,
        };
        let fixed = FixedPointAdd::new("add", MobileAdd::Qnnpack, &ao, &bo, 50, 0.1, true).unwrap();
        let (qa, qb) = (u8_values(&a), u8_values(&b));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // Every tier the host has: the AVX2 and AVX-512 builds of the loops included.
        let tiers = crate::isa::ALL.into_iter().filter(|t| t.is_available());
        for tier in tiers {
            let mut want = vec![0u8; n];
            zip_bytes(&qa, &qb, &float, 0, &mut want);
            assert!(float.body() > 2 * ZIP_CHUNK && float.body() < n);
            assert_eq!(
                pool.install(|| zip_map(&a, &b, &float, tier)),
                QStorage::U8(want)
            );
            let mut want = vec![0u8; n];
            zip_bytes(&qa, &qb, &fixed, 0, &mut want);
            assert_eq!(
                pool.install(|| zip_map(&a, &b, &fixed, tier)),
                QStorage::U8(want)
            );
        }
    }

    #[test]
    fn fbgemm_add_splits_vector_body_and_scalar_tail() {
        // (1 @ 0.05, z 128) + (210 @ 0.02, z 100) → out (0.1, 50): the fma dequantize of the
        // 64-element vector body gives 8, the `(q - z)·s` dequantize of the scalar tail gives 9.
        let n = VECTOR_CHUNK + 1;
        let mut qa = vec![128; n];
        let mut qb = vec![100; n];
        for i in [0, VECTOR_CHUNK] {
            (qa[i], qb[i]) = (1, 210);
        }
        let a = q(QDType::QUInt8, &qa, &[n], 0.05, 128);
        let b = q(QDType::QUInt8, &qb, &[n], 0.02, 100);
        for e in [Engine::Fbgemm, Engine::X86] {
            let y = add(&a, &b, 0.1, 50, false, engine(e)).unwrap().int_values();
            assert_eq!((y[0], y[1], y[VECTOR_CHUNK]), (8, 50, 9));
        }
        // A chunk shorter than one vector is all tail.
        let y = add(
            &q(QDType::QUInt8, &[1], &[1], 0.05, 128),
            &q(QDType::QUInt8, &[210], &[1], 0.02, 100),
            0.1,
            50,
            false,
            engine(Engine::Fbgemm),
        );
        assert_eq!(y.unwrap().int_values(), vec![9]);
    }

    #[test]
    fn qnnpack_engine_adds_qint8_like_xnnpack() {
        // 2.5 and -1.5: XNNPACK rounds half up (3, -1), the float path half to even (2, -2).
        let a = q(QDType::QInt8, &[5, -3], &[2], 0.5, 0);
        let b = q(QDType::QInt8, &[0, 0], &[2], 0.5, 0);
        let y = add(&a, &b, 1.0, 0, false, engine(Engine::Qnnpack)).unwrap();
        assert_eq!(y.int_values(), vec![3, -1]);
        let y = add(&a, &b, 1.0, 0, false, engine(Engine::Fbgemm)).unwrap();
        assert_eq!(y.int_values(), vec![2, -2]);
        // Scale ratios of 2^8 and above are rejected, as QNNPACK / XNNPACK do; a small ratio is
        // fine next to a large one.
        let r = add(&a, &b, 1e-4, 0, false, engine(Engine::Qnnpack));
        assert!(matches!(r, Err(QnnError::InvalidParam { .. })));
        let tiny = q(QDType::QInt8, &[5, -3], &[2], 2f64.powi(-12), 0);
        assert!(add(&a, &tiny, 1.0, 0, false, engine(Engine::Qnnpack)).is_ok());
        let r = add(&tiny, &tiny, 1.0, 0, false, engine(Engine::Qnnpack));
        assert!(matches!(r, Err(QnnError::InvalidParam { .. })));
    }

    #[test]
    fn qint8_mul_goes_through_xnnpack_limits() {
        // 15·15·0.01 = 2.25 → 2.25/0.3 = 7.5 → 8 (ties to even); 1 → 0.033… → 0.
        let a = q(QDType::QInt8, &[1, 15], &[2], 0.1, 0);
        assert_eq!(mul(&a, &a, 0.3, 0, false).unwrap().int_values(), vec![0, 8]);
        // XNNPACK refuses product-to-output ratios of 2^8 and above; the fbgemm path (output
        // zero point 127, or quint8) has no such limit.
        let r = mul(&a, &a, 1e-5, 0, false);
        assert!(matches!(r, Err(QnnError::InvalidParam { .. })));
        assert!(mul(&a, &a, 1e-5, 127, false).is_ok());
    }

    #[test]
    fn add_relu_floors_at_the_zero_point() {
        let a = q(QDType::QUInt8, &[0, 200], &[2], 0.1, 100);
        let b = q(QDType::QUInt8, &[100, 100], &[2], 0.1, 100);
        for e in Engine::ALL {
            assert_eq!(
                add(&a, &b, 0.1, 50, true, engine(e)).unwrap().int_values(),
                vec![50, 150]
            );
        }
    }

    #[test]
    fn add_scalar_qparams_follow_pytorch() {
        let a = q(QDType::QUInt8, &[3, 10, 255], &[3], 0.1, 0);
        // c_q = 7 pushes the zero point below 0: scale 262/255·0.1, zero point 0, requantized.
        let y = add_scalar(&a, 0.7).unwrap();
        assert_eq!(y.q_zero_point().unwrap(), 0);
        assert_eq!(y.q_scale().unwrap(), 262.0 / 255.0 * 0.1);
        // 10 + 7 = 17 → 17·0.1/(0.10274…) = 16.5458… → 17 (f32 multiplier).
        assert_eq!(y.int_values()[1], 17);
        // Within range only the zero point moves.
        let y = add_scalar(&a, -1.3).unwrap();
        assert_eq!(
            (y.q_zero_point().unwrap(), y.int_values()),
            (13, vec![3, 10, 255])
        );
    }

    #[test]
    fn mul_scalar_negative_mirrors() {
        let a = q(QDType::QInt8, &[-128, 0, 127], &[3], 0.5, 10);
        let y = mul_scalar(&a, -2.0).unwrap();
        assert_eq!(
            (y.q_scale().unwrap(), y.q_zero_point().unwrap()),
            (1.0, -11)
        );
        assert_eq!(y.int_values(), vec![127, -1, -128]);
        assert!(matches!(
            mul_scalar(&a, f64::NAN),
            Err(QnnError::InvalidParam { .. })
        ));
        for c in [f64::NAN, f64::INFINITY, 1e12] {
            assert!(matches!(
                add_scalar(&a, c),
                Err(QnnError::InvalidParam { .. })
            ));
        }
    }

    #[test]
    fn binary_errors_are_typed() {
        let a = q(QDType::QUInt8, &[1, 2], &[2], 0.1, 0);
        let b = q(QDType::QInt8, &[1, 2], &[2], 0.1, 0);
        let c = q(QDType::QUInt8, &[1, 2], &[1, 2], 0.1, 0);
        let e = q(QDType::QUInt8, &[], &[0], 0.1, 0);
        let n = engine(Engine::Fbgemm);
        assert!(matches!(
            add(&a, &b, 0.1, 0, false, n),
            Err(QnnError::DTypeMismatch { .. })
        ));
        // PyTorch's quantized mul broadcasts ([2] with [1, 2] is [1, 2], as squeeze-excitation
        // needs); shapes that do not broadcast are the typed error.
        let d = q(QDType::QUInt8, &[1, 2, 3], &[3], 0.1, 0);
        assert!(matches!(
            mul(&a, &d, 0.1, 0, false),
            Err(QnnError::Shape { .. })
        ));
        let wide = mul(&a, &c, 0.1, 0, false).expect("broadcasts");
        assert_eq!(wide.shape(), &[1, 2]);
        assert_eq!(
            wide.int_values(),
            mul(&c, &c, 0.1, 0, false).unwrap().int_values()
        );
        assert!(matches!(
            add(&e, &e, 0.1, 0, false, n),
            Err(QnnError::EmptyInput { .. })
        ));
        assert!(matches!(
            cat(&[&a, &b], 0, 0.1, 0),
            Err(QnnError::DTypeMismatch { .. })
        ));
        assert!(matches!(
            cat(&[&a, &c], 0, 0.1, 0),
            Err(QnnError::Shape { .. })
        ));
        assert!(matches!(
            cat(&[&a], 1, 0.1, 0),
            Err(QnnError::InvalidParam { .. })
        ));
        assert!(matches!(
            cat(&[], 0, 0.1, 0),
            Err(QnnError::InvalidParam { .. })
        ));
        let i32t = QTensor::quantize_per_tensor(&[1.0], &[1], 1.0, 0, QDType::QInt32).unwrap();
        assert!(matches!(
            add(&i32t, &i32t, 0.1, 0, false, n),
            Err(QnnError::Operand { .. })
        ));
    }

    /// The table path gives what dequantizing, joining and quantizing gives, for inputs whose
    /// qparams differ from the output's (rounding ties, clamping at both ends), u8 and i8.
    #[test]
    fn cat_tables_equal_dequantize_then_quantize() {
        for (dtype, lo) in [(QDType::QUInt8, 0), (QDType::QInt8, -128)] {
            let values: Vec<i32> = (0..256).map(|i| lo + (i * 37) % 256).collect();
            let a = q(dtype, &values, &[2, 128], 0.013, 3);
            let b = q(dtype, &values[..128], &[2, 64], 0.2, lo as i64 + 9);
            for (scale, zp) in [(0.013, 3), (0.05, 10), (0.0065, 0), (0.3, lo as i64 + 7)] {
                let got = cat(&[&a, &b], 1, scale, zp).unwrap();
                let (fa, fb) = (a.dequantize(), b.dequantize());
                let joined: Vec<f32> = (0..2)
                    .flat_map(|r| [&fa[r * 128..][..128], &fb[r * 64..][..64]].concat())
                    .collect();
                let want = QTensor::quantize_per_tensor(&joined, &[2, 192], scale, zp, dtype);
                assert_eq!(
                    got.int_values(),
                    want.unwrap().int_values(),
                    "{dtype:?} {scale}"
                );
            }
        }
    }

    #[test]
    fn cat_interleaves_blocks_along_dim() {
        let a = q(QDType::QUInt8, &[1, 2, 3, 4], &[2, 2], 1.0, 0);
        let b = q(QDType::QUInt8, &[5, 6], &[2, 1], 1.0, 0);
        let y = cat(&[&a, &b], -1, 1.0, 0).unwrap();
        assert_eq!(
            (y.shape().to_vec(), y.int_values()),
            (vec![2, 3], vec![1, 2, 5, 3, 4, 6])
        );
    }
}
