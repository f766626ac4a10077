//! MSE calibration (qlab extension): choose the clip range whose quantization grid minimises
//! the expected squared error over the histogram, clipping error included.
//!
//! Definition. With `min_neg = min(min, 0)` and `max_pos = max(max, 0)`, three sweeps run in
//! turn, each keeping the best range found so far:
//!
//! 1. symmetric shrink: `[min_neg * k/K, max_pos * k/K]` for `k = 1..=K`, `K = 256`;
//! 2. lower edge: with the upper end fixed, the lower end takes every bin edge `min + w*j` at
//!    or below zero (`w` the bin width; at most 256 edges, evenly strided);
//! 3. upper edge: likewise for the upper end, with the new lower end fixed;
//!
//! sweeps 2 and 3 run twice (a lower end chosen before the upper end moved may no longer be
//! the best one).
//!
//! Each candidate is turned into real qparams with the §2.2 rules of the spec (dtype, qscheme,
//! range, eps), so the grid being scored is exactly the one that would be used. The score of a
//! grid with scale `s`, representable interval `[(qmin - zp)*s, (qmax - zp)*s]`, is
//! `sum over bins of count * e(centre)`, where `e(c) = s^2 / 12` (uniform rounding noise) when
//! the bin centre `c` is inside the interval and `(c - nearest end)^2` otherwise. Lower scores
//! win; ties keep the wider range. Computed in f64.

use super::ObserverSpec;
use super::qparams::qparams_from_min_max;

/// Candidates per sweep.
const CANDIDATES: usize = 256;
/// Rounds of the lower-edge / upper-edge sweeps.
const ROUNDS: usize = 2;

/// Expected squared error of a grid over the histogram's bin centres.
fn score(centres: &[f64], hist: &[f32], scale: f64, lo: f64, hi: f64) -> f64 {
    let noise = scale * scale / 12.0;
    centres
        .iter()
        .zip(hist)
        .map(|(&c, &h)| {
            let e = if c < lo {
                (lo - c) * (lo - c)
            } else if c > hi {
                (c - hi) * (c - hi)
            } else {
                noise
            };
            h as f64 * e
        })
        .sum()
}

/// The MSE-optimal clip range for histogram `hist` over `[min, max]` under `spec`'s grid rules.
pub(crate) fn clip_range(min: f32, max: f32, hist: &[f32], spec: &ObserverSpec) -> (f32, f32) {
    let bins = hist.len();
    let (neg, pos) = (min.min(0.0), max.max(0.0));
    let width = (max as f64 - min as f64) / bins as f64;
    let centres: Vec<f64> = (0..bins)
        .map(|i| min as f64 + width * (i as f64 + 0.5))
        .collect();
    let cost = |lo: f32, hi: f32| {
        let q = qparams_from_min_max(&[lo], &[hi], None, spec).ok()?;
        let (s, zp) = (q.scales[0] as f64, q.zero_points[0] as f64);
        Some(score(
            &centres,
            hist,
            s,
            (q.quant_min as f64 - zp) * s,
            (q.quant_max as f64 - zp) * s,
        ))
    };
    let mut best = ((min, max), f64::INFINITY);
    // Sweep 1, narrow to wide, so `<=` keeps the wider of equal ranges.
    for k in 1..=CANDIDATES {
        let f = k as f32 / CANDIDATES as f32;
        if let Some(e) = cost(neg * f, pos * f).filter(|&e| e <= best.1) {
            best = ((neg * f, pos * f), e);
        }
    }
    let stride = bins.div_ceil(CANDIDATES).max(1);
    let edge = |j: usize| (min as f64 + width * j as f64) as f32;
    // Sweeps 2 and 3, wide to narrow, so a strict `<` keeps the wider of equal ranges; two
    // rounds, because a lower end chosen before the upper end moved may no longer be best.
    for _ in 0..ROUNDS {
        let hi = best.0.1;
        for j in (0..=bins)
            .step_by(stride)
            .map(edge)
            .filter(|&e| e <= 0.0 && e < hi)
        {
            if let Some(e) = cost(j, hi).filter(|&e| e < best.1) {
                best = ((j, hi), e);
            }
        }
        let lo = best.0.0;
        for j in (0..=bins)
            .rev()
            .step_by(stride)
            .map(edge)
            .filter(|&e| e >= 0.0 && e > lo)
        {
            if let Some(e) = cost(lo, j).filter(|&e| e < best.1) {
                best = ((lo, j), e);
            }
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::{ObserverKind, ObserverSpec};

    #[test]
    fn outlier_is_clipped_but_bulk_kept() {
        // 2e7 elements spread uniformly on [0, 10] plus one at 1000: keeping the outlier would
        // cost the bulk far more rounding noise than clipping it costs.
        let bins = 2000;
        let mut hist = vec![0.0f32; bins];
        hist[..20].iter_mut().for_each(|h| *h = 1e6);
        hist[bins - 1] = 1.0;
        let spec = ObserverSpec::new(ObserverKind::Mse);
        let (lo, hi) = clip_range(0.0, 1000.0, &hist, &spec);
        assert_eq!(lo, 0.0);
        assert!((10.0..100.0).contains(&hi), "{hi}");
    }

    #[test]
    fn uniform_data_is_not_clipped() {
        let hist = vec![100.0f32; 512];
        let spec = ObserverSpec::new(ObserverKind::Mse);
        let (_, hi) = clip_range(0.0, 1.0, &hist, &spec);
        assert!(hi > 0.95, "{hi}");
    }

    #[test]
    fn one_sided_outliers_clip_one_side() {
        // Uniform bulk on [-1, 1] and rare far outliers above only: the lower end stays at the
        // bulk's edge while the upper end is pulled in.
        let bins = 1024;
        let (min, max) = (-1.0f32, 100.0f32);
        let w = (max - min) / bins as f32;
        let mut hist = vec![0.0f32; bins];
        for (i, h) in hist.iter_mut().enumerate() {
            let centre = min + w * (i as f32 + 0.5);
            if centre < 1.0 {
                *h = 1e6;
            }
        }
        hist[bins - 1] = 1.0;
        let spec = ObserverSpec::new(ObserverKind::Mse).with_dtype(crate::tensor::DType::QInt8);
        let (lo, hi) = clip_range(min, max, &hist, &spec);
        assert!(lo <= -0.9, "{lo}");
        assert!((0.9..20.0).contains(&hi), "{hi}");
    }
}
