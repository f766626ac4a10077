//! HistogramObserver's non-linear L2 search (NUMERICS §2.6; a port of caffe2 NormMinimization).
//!
//! Starting from the full histogram, each step narrows the candidate range `[start, end]` of
//! bins at whichever side crosses the next 1e-5 quantile of the mass first, and keeps the move
//! while the expected L2 quantization error (`quant_error`) does not grow. The answer is
//! `[min + w*start, min + w*(end+1)]` with `w` the bin width.
//!
//! Speed without changing the answer: PyTorch rescans the cumulative sum from the range ends on
//! every one of up to 100 000 steps. The thresholds only ever move inwards (alpha and beta are
//! monotone) and the cumulative sum is non-decreasing, so the scan positions are monotone too:
//! two cursors that never move back give the same `l` and `r` in amortised O(1). The error of a
//! candidate is one tight loop over the bins, evaluated only when the candidate changes, in
//! PyTorch's f32 operation order, summed in `torch.sum`'s order.

use super::torch_sum::torch_sum;

/// `torch.cumsum` of f32: accumulated in f64 (`acc_type<float>` on CPU), each prefix rounded.
/// From source reading; the golden cases pass with an f32 accumulator too.
pub(crate) fn cumsum(hist: &[f32]) -> Vec<f32> {
    let mut acc = 0f64;
    hist.iter()
        .map(|&h| {
            acc += h as f64;
            acc as f32
        })
        .collect()
}

/// `floor(a / b)` exactly as `torch.div(a, b, rounding_mode='floor')` returns it for f32.
///
/// PyTorch derives it from `fmod`; the result is the exact mathematical floor of the quotient
/// of the two floats. An f64 quotient of two f32 values is never close enough to an integer to
/// floor wrongly (its error is below 2^-53 relative, while a non-integral quotient of two 24-bit
/// significands is at least 2^-24 relative away from the nearest integer).
#[inline(always)]
fn floor_div(a: f32, b: f32) -> f32 {
    (a as f64 / b as f64).floor() as f32
}

/// The expected L2 error of quantizing the histogram to `levels` bins spread over source bins
/// `start..=end` (PyTorch's `_compute_quantization_error`); `norms` is scratch of `hist.len()`.
fn quant_error(
    min: f32,
    max: f32,
    hist: &[f32],
    (start, end): (usize, usize),
    levels: usize,
    norms: &mut [f32],
) -> f32 {
    let bins = hist.len();
    let bw64 = (max as f64 - min as f64) / bins as f64;
    let dw64 = bw64 * (end - start + 1) as f64 / levels as f64;
    if dw64 == 0.0 {
        return 0.0;
    }
    let (bw, dw, half) = (bw64 as f32, dw64 as f32, (dw64 / 2.0) as f32);
    let neg_half = (-dw64 / 2.0) as f32;
    let cube = |v: f32| v * v * v;
    let top = (levels - 1) as f32;
    // The middle term's norm is one scalar: (half^3 - (-half)^3) / 3.
    let mid = (cube(half) - cube(neg_half)) / 3.0;
    let neg_half_cubed = cube(neg_half);
    let half_cubed = cube(half);
    for (i, (n, &h)) in norms.iter_mut().zip(hist).enumerate() {
        let begin = (i as i64 - start as i64) as f32 * bw;
        let stop = begin + bw;
        let kb = floor_div(begin, dw).clamp(0.0, top);
        let ke = floor_div(stop, dw).clamp(0.0, top);
        let density = h / bw;
        let db = begin - (kb + 0.5) * dw;
        let first = density * ((half_cubed - cube(db)) / 3.0);
        let middle = (ke - kb - 1.0) * (density * mid);
        let de = stop - (ke * dw + half);
        let last = density * ((cube(de) - neg_half_cubed) / 3.0);
        *n = first + middle + last;
    }
    torch_sum(norms)
}

/// The clip range PyTorch's HistogramObserver picks for histogram `hist` over `[min, max]`.
pub(crate) fn clip_range(min: f32, max: f32, hist: &[f32], levels: usize) -> (f32, f32) {
    let bins = hist.len();
    let bin_width = (max - min) / bins as f32;
    let total = torch_sum(hist) as f64;
    let csum = cumsum(hist);
    let mut norms = vec![0f32; bins];
    let step = 1e-5f64;
    let (mut alpha, mut beta) = (0.0f64, 1.0f64);
    let (mut start, mut end) = (0usize, bins - 1);
    let mut best = f64::INFINITY;
    let (mut lc, mut rc) = (0usize, bins - 1);
    while alpha < beta {
        let (na, nb) = (alpha + step, beta - step);
        let (ta, tb) = ((na * total) as f32, (nb * total) as f32);
        lc = lc.max(start);
        while lc < end && csum[lc] < ta {
            lc += 1;
        }
        let l = lc.min(end);
        rc = rc.min(end);
        while rc > start && csum[rc] > tb {
            rc -= 1;
        }
        let r = rc.max(start);
        let candidate = if l - start > end - r {
            alpha = na;
            (l, end)
        } else {
            beta = nb;
            (start, r)
        };
        if candidate == (start, end) {
            continue;
        }
        let err = quant_error(min, max, hist, candidate, levels, &mut norms) as f64;
        if err > best {
            break;
        }
        best = err;
        (start, end) = candidate;
    }
    (
        min + bin_width * start as f32,
        min + bin_width * (end + 1) as f32,
    )
}
