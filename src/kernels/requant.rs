//! Requantization of i32 accumulators to quint8 outputs, one rule per engine (NUMERICS §6.2 and
//! §6.3). Both are precomputed per output channel so the inner loop is a few f32 operations.
//! The epilogues take the tier to run on as a value; a tier the host lacks runs the portable
//! loop (same bytes).

use crate::isa::Isa;

/// fbgemm / x86: the float bias is folded in as `bias / (s_x·s_w)` and the sum is scaled once.
#[derive(Debug, Clone, PartialEq)]
pub struct FbgemmRequant {
    /// `f32(f32(s_x·s_w) / s_y)` per channel.
    pub(crate) multiplier: Vec<f32>,
    /// `bias / (s_x·s_w)` per channel (division for per-channel weights, reciprocal multiply
    /// formed in f64 for per-tensor weights), or none without bias.
    pub(crate) bias_term: Option<Vec<f32>>,
    pub(crate) zero_point: i32,
    pub(crate) lo: i32,
    /// Whether no channel's `(acc + bias)·multiplier` can be NaN for any i32 `acc` (finite
    /// multipliers, finite biases far from overflow), so SIMD bodies may skip the NaN lanes.
    pub(crate) nan_free: bool,
}

/// The largest bias term with which `acc + bias` stays finite for every i32 `acc`, with room.
const NAN_FREE_BIAS: f32 = 1e30;

impl FbgemmRequant {
    /// `weight_scales` has one entry (per-tensor) or one per output channel.
    pub fn new(
        x_scale: f64,
        weight_scales: &[f64],
        bias: Option<&[f32]>,
        out_scale: f64,
        out_zero_point: i32,
        relu: bool,
        channels: usize,
    ) -> Self {
        let per_tensor = weight_scales.len() == 1;
        let sy = out_scale as f32;
        let atw: Vec<f32> = (0..channels)
            .map(|c| (x_scale as f32) * (weight_scales[if per_tensor { 0 } else { c }] as f32))
            .collect();
        let multiplier: Vec<f32> = atw.iter().map(|&a| a / sy).collect();
        let bias_term: Option<Vec<f32>> = bias.map(|b| {
            (0..channels)
                .map(|c| {
                    if per_tensor {
                        b[c] * ((1.0f64 / atw[c] as f64) as f32)
                    } else {
                        b[c] / atw[c]
                    }
                })
                .collect()
        });
        let nan_free = multiplier.iter().all(|m: &f32| m.is_finite())
            && bias_term.as_ref().is_none_or(|b: &Vec<f32>| {
                b.iter().all(|v| v.is_finite() && v.abs() <= NAN_FREE_BIAS)
            });
        FbgemmRequant {
            nan_free,
            multiplier,
            bias_term,
            zero_point: out_zero_point,
            lo: if relu { out_zero_point } else { 0 },
        }
    }

    /// The quint8 output for accumulator `acc` of channel `c`.
    #[inline]
    pub fn apply(&self, acc: i32, c: usize) -> u8 {
        let mut t = acc as f32;
        if let Some(b) = &self.bias_term {
            t += b[c];
        }
        let v = (t * self.multiplier[c]).round_ties_even();
        let z = self.zero_point;
        // `clamp(RNE(v) + z, lo, 255)` with the clamp taken in float before adding z: the bounds
        // are integers, so it is the same for every finite v, and NaN goes to 0 as the integer
        // cast did. In range, the float → int conversion needs no saturation, so it vectorises.
        let v = clamp_or_zero(v, (self.lo - z) as f32, (255 - z) as f32);
        // SAFETY: `v` is finite and within the i32 range (see `clamp_or_zero`).
        (unsafe { v.to_int_unchecked::<i32>() } + z) as u8
    }
}

/// qnnpack: the bias is quantized to int32 with scale `s_w·s_x` and added to the accumulator;
/// the sum is scaled by `f32(s_w·s_x) · f32(1/s_y)`.
#[derive(Debug, Clone, PartialEq)]
pub struct QnnpackRequant {
    pub(crate) bias_q: Vec<i32>,
    pub(crate) scale: Vec<f32>,
    pub(crate) zero_point: i32,
    pub(crate) lo: i32,
    /// Whether every scale is finite: `f32(acc)·scale` is then never NaN.
    pub(crate) nan_free: bool,
}

impl QnnpackRequant {
    pub fn new(
        x_scale: f64,
        weight_scales: &[f64],
        bias: Option<&[f32]>,
        out_scale: f64,
        out_zero_point: i32,
        relu: bool,
        channels: usize,
    ) -> Self {
        let ws = |c: usize| weight_scales[if weight_scales.len() == 1 { 0 } else { c }];
        let inv_sy = 1.0f32 / out_scale as f32;
        let scale: Vec<f32> = (0..channels)
            .map(|c| ((ws(c) as f32) * (x_scale as f32)) * inv_sy)
            .collect();
        let bias_q = (0..channels)
            .map(|c| {
                let Some(b) = bias else { return 0 };
                // quantize(bias, qint32, scale = f32(s_w·s_x) computed from the f64 scales, zp 0).
                let bias_scale = (ws(c) * x_scale) as f32;
                crate::tensor::quantize::quantize_val_i32(b[c], 1.0f32 / bias_scale, 0)
            })
            .collect();
        QnnpackRequant {
            nan_free: scale.iter().all(|s| s.is_finite()),
            bias_q,
            scale,
            zero_point: out_zero_point,
            lo: if relu { out_zero_point } else { 0 },
        }
    }

    /// The quint8 output for accumulator `acc` (without bias) of channel `c`.
    #[inline]
    pub fn apply(&self, acc: i32, c: usize) -> u8 {
        let total = acc.wrapping_add(self.bias_q[c]);
        let v = (total as f32) * self.scale[c];
        // The saturating cast followed by the i16 clamp is a float clamp to the i16 range (NaN
        // to 0), after which the conversion is exact and vectorises.
        let v = clamp_or_zero(v.round_ties_even(), i16::MIN as f32, i16::MAX as f32);
        // SAFETY: `v` is finite and within the i16 range.
        let r = unsafe { v.to_int_unchecked::<i32>() };
        let r = (r + self.zero_point).clamp(i16::MIN as i32, i16::MAX as i32);
        r.clamp(self.lo, 255) as u8
    }
}

/// `v` clamped to `[lo, hi]`, or 0 when it is NaN; `lo` and `hi` must be finite and within the
/// i32 range, so the result converts to i32 without saturation.
#[inline(always)]
fn clamp_or_zero(v: f32, lo: f32, hi: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(lo, hi) }
}

/// One channel's constants of either rule (`bias` is 0.0 for an fbgemm rule without bias).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ChannelRule {
    Fbgemm {
        bias: f32,
        multiplier: f32,
        zero_point: i32,
        lo: i32,
        nan_free: bool,
    },
    Qnnpack {
        bias: i32,
        scale: f32,
        zero_point: i32,
        lo: i32,
        nan_free: bool,
    },
}

/// A GEMM tile's accumulators and where their bytes go: row `r`'s `cols` values
/// `acc[r·acc_stride..]` are requantized into the bytes at `out + r·out_stride`, which must be
/// writable, by the requantizing thread alone. Value `(r, j)` is channel `first_channel + r`
/// when `by_row` (a conv computed channels × positions), else `first_channel + j` (a Linear
/// layer, or a conv computed positions × channels).
pub(crate) struct TileBlock<'a> {
    pub acc: &'a [i32],
    pub acc_stride: usize,
    pub rows: usize,
    pub cols: usize,
    pub first_channel: usize,
    pub by_row: bool,
    pub out: *mut u8,
    pub out_stride: usize,
}

/// Either engine's rule, chosen once per layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Requant {
    Fbgemm(FbgemmRequant),
    Qnnpack(QnnpackRequant),
}

impl Requant {
    #[inline]
    pub fn apply(&self, acc: i32, c: usize) -> u8 {
        match self {
            Requant::Fbgemm(r) => r.apply(acc, c),
            Requant::Qnnpack(r) => r.apply(acc, c),
        }
    }

    /// Requantizes accumulators laid out as `[…, channels, run]`: element `i` belongs to channel
    /// `(i / run) % channels` (linear: `run = 1`, channels = columns; conv: `run` = the spatial
    /// plane of NC… outputs). Only whole `[channels, run]` blocks are written.
    ///
    /// Conv planes go through [`Requant::apply_channel`] (the tier's lanes); linear rows run the
    /// element rule (the SIMD tiers requantize Linear in the GEMM's epilogue; only the
    /// reference route comes here).
    pub fn apply_runs(&self, tier: Isa, acc: &[i32], run: usize, channels: usize, out: &mut [u8]) {
        if run == 0 || channels == 0 {
            return;
        }
        let block = run * channels;
        let whole = acc.len().min(out.len()) / block * block;
        let (acc, out) = (&acc[..whole], &mut out[..whole]);
        if run > 1 {
            for (i, (a, o)) in acc
                .chunks_exact(run)
                .zip(out.chunks_exact_mut(run))
                .enumerate()
            {
                self.apply_channel(tier, a, i % channels, o);
            }
            return;
        }
        for (a, o) in acc
            .chunks_exact(channels)
            .zip(out.chunks_exact_mut(channels))
        {
            self.apply_columns_portable(a, 0, o);
        }
    }

    /// Requantizes `acc`, every element of which belongs to channel `c` (one channel's plane
    /// of a conv output, computed and requantized while it is still in cache).
    pub fn apply_channel(&self, tier: Isa, acc: &[i32], c: usize, out: &mut [u8]) {
        self.apply_rows(tier, acc, out.len(), out.len(), c, out);
    }

    /// [`Requant::apply_channel`] on a plane held in rows of `stride` accumulators of which the
    /// first `cols` are outputs: output row `r` (`cols` bytes of `out`) is requantized from
    /// `acc[r·stride..][..cols]`.
    pub fn apply_rows(
        &self,
        tier: Isa,
        acc: &[i32],
        stride: usize,
        cols: usize,
        c: usize,
        out: &mut [u8],
    ) {
        if cols == 0 {
            return;
        }
        assert!(cols <= stride && acc.len() >= (out.len() / cols).saturating_sub(1) * stride);
        #[cfg(target_arch = "x86_64")]
        if tier == Isa::Avx512Vnni && tier.is_available() {
            let rule = self.channel_rule(c);
            // SAFETY: the host has `tier`, which includes AVX-512 F/BW/VL.
            return unsafe {
                super::x86::avx512_requant::apply_rows(&rule, acc, stride, cols, out)
            };
        }
        #[cfg(target_arch = "x86_64")]
        if tier.is_x86_simd() && tier.is_available() {
            // SAFETY: the host has `tier`, which includes AVX2 and FMA.
            return unsafe {
                super::x86::avx2_requant::apply_rows(self, acc, stride, cols, c, out)
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = tier; // No SIMD epilogue outside x86-64 yet.
        self.apply_rows_portable(acc, stride, cols, c, out);
    }

    /// [`TileBlock`] requantized inside a GEMM task: AVX2 lanes on x86-64, the element rule
    /// elsewhere.
    ///
    /// # Safety
    /// As [`TileBlock`]; on x86-64 the caller must be compiled with AVX2.
    #[inline(always)]
    pub(crate) unsafe fn apply_tile_block_in_task(&self, b: &TileBlock) {
        // SAFETY (either build): forwarded from this function's contract.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            super::x86::avx2_requant::tile_block(self, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unsafe {
            self.apply_tile_block_portable(b)
        }
    }

    /// [`TileBlock`] by the element rule.
    ///
    /// # Safety
    /// As [`TileBlock`].
    #[inline(always)]
    pub(crate) unsafe fn apply_tile_block_portable(&self, b: &TileBlock) {
        for r in 0..b.rows {
            let acc = &b.acc[r * b.acc_stride..][..b.cols];
            // SAFETY: row r's bytes are writable by this thread alone (`TileBlock`'s contract).
            let out =
                unsafe { std::slice::from_raw_parts_mut(b.out.add(r * b.out_stride), b.cols) };
            if b.by_row {
                self.apply_channel_portable(acc, b.first_channel + r, out);
            } else {
                self.apply_columns_portable(acc, b.first_channel, out);
            }
        }
    }

    /// The loop behind [`Requant::apply_rows`].
    #[inline(always)]
    pub(crate) fn apply_rows_portable(
        &self,
        acc: &[i32],
        stride: usize,
        cols: usize,
        c: usize,
        out: &mut [u8],
    ) {
        for_each_row(acc, stride, cols, out, |a, o| {
            self.apply_channel_portable(a, c, o)
        });
    }

    /// Channel `c`'s constants, for kernels that apply the rule lane-parallel.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn channel_rule(&self, c: usize) -> ChannelRule {
        match self {
            Requant::Fbgemm(r) => ChannelRule::Fbgemm {
                bias: r.bias_term.as_ref().map_or(0.0, |b| b[c]),
                multiplier: r.multiplier[c],
                zero_point: r.zero_point,
                lo: r.lo,
                nan_free: r.nan_free,
            },
            Requant::Qnnpack(r) => ChannelRule::Qnnpack {
                bias: r.bias_q[c],
                scale: r.scale[c],
                zero_point: r.zero_point,
                lo: r.lo,
                nan_free: r.nan_free,
            },
        }
    }

    /// One row of [`Requant::apply_rows_portable`].
    #[inline(always)]
    pub(crate) fn apply_channel_portable(&self, acc: &[i32], c: usize, out: &mut [u8]) {
        // Plain loops: an iterator adapter's `fold` is not inlined into the AVX2 build, and
        // outside it `round_ties_even` is a libm call per element.
        match self {
            Requant::Fbgemm(r) => {
                for (&v, y) in acc.iter().zip(out) {
                    *y = r.apply(v, c);
                }
            }
            Requant::Qnnpack(r) => {
                for (&v, y) in acc.iter().zip(out) {
                    *y = r.apply(v, c);
                }
            }
        }
    }

    /// `out[j] = self.apply(acc[j], first_channel + j)`: a row of consecutive channels.
    #[inline(always)]
    pub(crate) fn apply_columns_portable(&self, acc: &[i32], first_channel: usize, out: &mut [u8]) {
        match self {
            Requant::Fbgemm(r) => {
                for (j, (&v, y)) in acc.iter().zip(out).enumerate() {
                    *y = r.apply(v, first_channel + j);
                }
            }
            Requant::Qnnpack(r) => {
                for (j, (&v, y)) in acc.iter().zip(out).enumerate() {
                    *y = r.apply(v, first_channel + j);
                }
            }
        }
    }
}

/// Calls `f` on each output row of `cols` bytes with its `cols` accumulators, rows `stride`
/// accumulators apart: the row walk every `apply_rows` build shares (inlined, so it is
/// compiled with the caller's target features).
#[inline(always)]
pub(crate) fn for_each_row(
    acc: &[i32],
    stride: usize,
    cols: usize,
    out: &mut [u8],
    mut f: impl FnMut(&[i32], &mut [u8]),
) {
    for (r, o) in out.chunks_exact_mut(cols).enumerate() {
        f(&acc[r * stride..][..cols], o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run, channel and row epilogues (AVX2 / AVX-512 lanes on x86 hosts) return the element
    /// rule's bytes, ties, clamps and NaN included, for both engines, per-tensor and per-channel,
    /// with and without ReLU.
    #[test]
    fn rows_equal_element_rule() {
        let n = 5;
        // Around ±ties of the multipliers below and far outside the output range.
        let acc: Vec<i32> = (-300..300)
            .chain([i32::MIN, i32::MAX, -1 << 20, 1 << 20])
            .collect();
        let acc = &acc[..acc.len() / n * n];
        for (scales, bias) in [
            (vec![0.5], None),
            (
                vec![0.25, 0.5, 1.0, 0.125, 0.75],
                Some(vec![0.3, -1.5, 2.0, 0.0, 7.25]),
            ),
            // Bias terms at or past overflow: `acc + bias` infinite, NaN where the
            // multiplier is 0 or infinite (the SIMD bodies' NaN-free shortcut must not apply).
            (
                vec![0.25, 0.5, 1.0, 0.125, 0.75],
                Some(vec![3e38, -3e38, 1e36, f32::MAX, 0.0]),
            ),
        ] {
            // An output scale that rounds to 0 in f32 makes the multipliers infinite: NaN at 0.
            for (relu, sy) in [(false, 1.0), (true, 1.0), (false, 1e-46), (true, 1e-46)] {
                let bias = bias.as_deref();
                for rq in [
                    Requant::Fbgemm(FbgemmRequant::new(0.5, &scales, bias, sy, 17, relu, n)),
                    Requant::Qnnpack(QnnpackRequant::new(0.5, &scales, bias, sy, 17, relu, n)),
                ] {
                    for tier in crate::isa::ALL.into_iter().filter(|t| t.is_available()) {
                        // Linear rows (run 1) and NC-plane layouts (run 4, 20 planes of 5 channels…).
                        for run in [1, 4, 20] {
                            let len = acc.len() / (run * n) * run * n;
                            let mut got = vec![0u8; len];
                            rq.apply_runs(tier, &acc[..len], run, n, &mut got);
                            let want: Vec<u8> = acc[..len]
                                .iter()
                                .enumerate()
                                .map(|(i, &v)| rq.apply(v, (i / run) % n))
                                .collect();
                            assert_eq!(got, want, "{rq:?} run {run} on {tier}");
                        }
                        for c in 0..n {
                            let mut got = vec![0u8; acc.len()];
                            rq.apply_channel(tier, acc, c, &mut got);
                            let want: Vec<u8> = acc.iter().map(|&v| rq.apply(v, c)).collect();
                            assert_eq!(got, want, "{rq:?} channel {c} on {tier}");
                            // Rows of 21 outputs every 24 accumulators (a masked tail per
                            // row), of 7 every 9 (a depthwise 7×7 plane: staged whole on
                            // AVX-512) and of 40 every 45 (wider rows, row by row).
                            for (stride, cols) in [(24, 21), (9, 7), (45, 40)] {
                                let rows = acc.len() / stride;
                                let mut got = vec![0u8; rows * cols];
                                rq.apply_rows(tier, acc, stride, cols, c, &mut got);
                                let want: Vec<u8> = (0..rows * cols)
                                    .map(|i| rq.apply(acc[i / cols * stride + i % cols], c))
                                    .collect();
                                assert_eq!(got, want, "{rq:?} rows {cols}/{stride}, {c} on {tier}");
                            }
                        }
                    }
                }
            }
        }
    }
}
