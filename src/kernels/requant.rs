//! Requantization of i32 accumulators to quint8 outputs, one rule per engine (NUMERICS §6.2 and
//! §6.3). Both are precomputed per output channel so the inner loop is a few f32 operations.

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
}

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
        let multiplier = atw.iter().map(|&a| a / sy).collect();
        let bias_term = bias.map(|b| {
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
        FbgemmRequant {
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
        let scale = (0..channels)
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
    /// plane of NC… outputs).
    ///
    /// On x86 tiers the element rule runs as explicit AVX2 lanes (`x86::avx2_requant`), with the
    /// same IEEE operations, so the same bytes.
    pub fn apply_runs(&self, acc: &[i32], run: usize, channels: usize, out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::selected_is_x86_simd() {
            // SAFETY: the selected tier is available and each of these tiers requires AVX2.
            return unsafe { super::x86::avx2_requant::apply_runs(self, acc, run, channels, out) };
        }
        self.apply_runs_portable(acc, run, channels, out);
    }

    /// Requantizes `acc`, every element of which belongs to channel `c` (one channel's plane
    /// of a conv output, computed and requantized while it is still in cache).
    pub fn apply_channel(&self, acc: &[i32], c: usize, out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::selected_is_x86_simd() {
            // SAFETY: as in `apply_runs`.
            return unsafe { super::x86::avx2_requant::apply_channel(self, acc, c, out) };
        }
        self.apply_channel_portable(acc, c, out);
    }

    /// [`Requant::apply_channel`] inlined into a GEMM task's tile epilogue: explicit AVX2 lanes
    /// on x86-64 (every x86 task is compiled with AVX2), the element rule elsewhere.
    ///
    /// # Safety
    /// On x86-64 the caller must be compiled with AVX2.
    #[inline(always)]
    pub(crate) unsafe fn apply_channel_in_task(&self, acc: &[i32], c: usize, out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from this function's contract.
        unsafe {
            super::x86::avx2_requant::channel(self, acc, c, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.apply_channel_portable(acc, c, out);
    }

    /// The loop behind [`Requant::apply_channel`].
    #[inline(always)]
    pub(crate) fn apply_channel_portable(&self, acc: &[i32], c: usize, out: &mut [u8]) {
        match self {
            Requant::Fbgemm(r) => acc.iter().zip(out).for_each(|(&v, y)| *y = r.apply(v, c)),
            Requant::Qnnpack(r) => acc.iter().zip(out).for_each(|(&v, y)| *y = r.apply(v, c)),
        }
    }

    /// The loop behind [`Requant::apply_runs`], one engine match per call.
    #[inline(always)]
    pub(crate) fn apply_runs_portable(
        &self,
        acc: &[i32],
        run: usize,
        channels: usize,
        out: &mut [u8],
    ) {
        #[inline(always)]
        fn each(
            acc: &[i32],
            run: usize,
            channels: usize,
            out: &mut [u8],
            f: impl Fn(i32, usize) -> u8,
        ) {
            if run == 0 || channels == 0 {
                return;
            }
            let block = run * channels;
            for (a, o) in acc.chunks_exact(block).zip(out.chunks_exact_mut(block)) {
                if run == 1 {
                    // Rows of a linear output: one channel per element, walked without runs.
                    for (c, (&v, y)) in a.iter().zip(o).enumerate() {
                        *y = f(v, c);
                    }
                    continue;
                }
                for (c, (a, o)) in a.chunks_exact(run).zip(o.chunks_exact_mut(run)).enumerate() {
                    for (&v, y) in a.iter().zip(o) {
                        *y = f(v, c);
                    }
                }
            }
        }
        match self {
            Requant::Fbgemm(r) => each(acc, run, channels, out, |v, c| r.apply(v, c)),
            Requant::Qnnpack(r) => each(acc, run, channels, out, |v, c| r.apply(v, c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run and channel epilogues (AVX2 lanes on x86 hosts) return the element rule's bytes,
    /// ties, clamps and NaN included, for both engines, per-tensor and per-channel, with and without ReLU.
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
        ] {
            // An output scale that rounds to 0 in f32 makes the multipliers infinite: NaN at 0.
            for (relu, sy) in [(false, 1.0), (true, 1.0), (false, 1e-46), (true, 1e-46)] {
                let bias = bias.as_deref();
                for rq in [
                    Requant::Fbgemm(FbgemmRequant::new(0.5, &scales, bias, sy, 17, relu, n)),
                    Requant::Qnnpack(QnnpackRequant::new(0.5, &scales, bias, sy, 17, relu, n)),
                ] {
                    // Linear rows (run 1) and NC-plane layouts (run 4, 20 planes of 5 channels…).
                    for run in [1, 4] {
                        let len = acc.len() / (run * n) * run * n;
                        let mut got = vec![0u8; len];
                        rq.apply_runs(&acc[..len], run, n, &mut got);
                        let want: Vec<u8> = acc[..len]
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| rq.apply(v, (i / run) % n))
                            .collect();
                        assert_eq!(got, want, "{rq:?} run {run}");
                    }
                    for c in 0..n {
                        let mut got = vec![0u8; acc.len()];
                        rq.apply_channel(acc, c, &mut got);
                        let want: Vec<u8> = acc.iter().map(|&v| rq.apply(v, c)).collect();
                        assert_eq!(got, want, "{rq:?} channel {c}");
                    }
                }
            }
        }
    }
}
