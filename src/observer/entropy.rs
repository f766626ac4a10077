//! Entropy calibration (qlab extension): TensorRT's KL-divergence threshold search, run on the
//! histogram statistics HistogramObserver already keeps.
//!
//! Definition. TensorRT calibrates a magnitude threshold `t` on a histogram of `|x|`. Here the
//! observer's histogram over `[min, max]` is first folded into `B` (= its bin count) magnitude
//! bins over `[0, A]`, `A = max(|min|, |max|)`: each source bin's mass goes to the magnitude bin
//! containing `|centre|`. With `L` target levels (`levels/2` = 128 when the data straddle zero,
//! all 256 when they are one-signed), for every candidate `i` in `L..=B`:
//!
//! * `P` = the first `i` magnitude bins, with all mass beyond them added to bin `i-1` (clipping
//!   moves outliers onto the threshold);
//! * `Q` = the first `i` bins merged into `L` groups of `i/L` bins (the last group takes the
//!   remainder), each group's mass spread evenly over the group's non-empty bins;
//! * `KL(P || Q) = sum p_j ln(p_j / q_j)` over bins with `p_j > 0` after normalising both to 1
//!   (where clipped mass lands on an empty last bin, `q_j = 0 < p_j`, the term is the large
//!   finite penalty `1e6 * p_j` instead of infinity, so candidates stay ordered).
//!
//! The `i` with the smallest divergence wins (ties: the smallest `i`), the threshold is
//! `t = (i + 0.5) * A / B` (TensorRT's bin-centre rule), and the clip range is
//! `[max(min, -t), min(max, t)]`, i.e. `[-t, t]` for signed data and `[min, t]` for non-negative
//! data. Histograms with fewer than `L` magnitude bins are returned unclipped.

/// Folds a histogram over `[min, max]` into `bins` magnitude bins over `[0, amax]`.
fn magnitudes(min: f32, max: f32, hist: &[f32]) -> (Vec<f64>, f64) {
    let (lo, hi) = (min as f64, max as f64);
    let amax = lo.abs().max(hi.abs());
    let bins = hist.len();
    let width = (hi - lo) / bins as f64;
    let mut out = vec![0f64; bins];
    for (i, &h) in hist.iter().enumerate() {
        let centre = (lo + width * (i as f64 + 0.5)).abs();
        let b = if amax > 0.0 {
            ((centre / amax) * bins as f64) as usize
        } else {
            0
        };
        out[b.min(bins - 1)] += h as f64;
    }
    (out, amax)
}

/// KL(P || Q) for candidate `i` (see the module docs).
fn divergence(mag: &[f64], i: usize, levels: usize) -> f64 {
    let mut p: Vec<f64> = mag[..i].to_vec();
    p[i - 1] += mag[i..].iter().sum::<f64>();
    let group = i / levels;
    let mut q = vec![0f64; i];
    for g in 0..levels {
        let from = g * group;
        let to = if g == levels - 1 { i } else { from + group };
        let mass: f64 = mag[from..to].iter().sum();
        let nonzero = mag[from..to].iter().filter(|&&m| m > 0.0).count();
        if nonzero > 0 {
            for j in from..to {
                if mag[j] > 0.0 {
                    q[j] = mass / nonzero as f64;
                }
            }
        }
    }
    let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if ps <= 0.0 || qs <= 0.0 {
        return 0.0;
    }
    p.iter()
        .zip(&q)
        .filter(|(pj, _)| **pj > 0.0)
        .map(|(pj, qj)| {
            let (pn, qn) = (pj / ps, qj / qs);
            if qn > 0.0 {
                pn * (pn / qn).ln()
            } else {
                pn * 1e6
            }
        })
        .sum()
}

/// The entropy-calibrated clip range for histogram `hist` over `[min, max]`.
pub(crate) fn clip_range(min: f32, max: f32, hist: &[f32], levels: usize) -> (f32, f32) {
    let signed = min < 0.0 && max > 0.0;
    let levels = if signed { levels / 2 } else { levels };
    let (mag, amax) = magnitudes(min, max, hist);
    let bins = mag.len();
    if bins < levels || amax <= 0.0 {
        return (min, max);
    }
    let best = (levels..=bins)
        .map(|i| (i, divergence(&mag, i, levels)))
        .fold((bins, f64::INFINITY), |best, (i, d)| {
            if d < best.1 { (i, d) } else { best }
        });
    let t = ((best.0 as f64 + 0.5) * amax / bins as f64).min(amax) as f32;
    ((-t).max(min), t.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_do_not_stretch_the_range() {
        // A bell of mass near zero plus a lone far outlier: the threshold stays near the bell.
        let bins = 2048;
        let mut hist = vec![0.0f32; bins];
        for (i, h) in hist.iter_mut().enumerate() {
            let x = (i as f32 - 1024.0) / 40.0;
            *h = (1e5 * (-0.5 * x * x).exp()).floor();
        }
        hist[bins - 1] = 1.0;
        let (lo, hi) = clip_range(-1024.0, 1024.0, &hist, 256);
        assert!(hi < 400.0 && lo > -400.0, "{lo} {hi}");
        assert!(hi > 60.0, "the bulk must stay representable: {hi}");
    }

    #[test]
    fn uniform_data_keeps_most_of_the_range() {
        let hist = vec![10.0f32; 1024];
        let (lo, hi) = clip_range(0.0, 1.0, &hist, 256);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.9, "{hi}");
    }
}
