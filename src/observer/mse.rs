//! MSE calibration (qlab extension): choose the clip range whose quantization grid minimises
//! the expected squared error over the histogram, clipping error included.
//!
//! Definition. Candidates shrink the observed range towards zero by a common factor:
//! `[min_neg * k/K, max_pos * k/K]` for `k = 1..=K`, `K = 256`, with `min_neg = min(min, 0)` and
//! `max_pos = max(max, 0)` (symmetric qschemes make the range symmetric themselves). Each
//! candidate is turned into real qparams with the §2.2 rules of the spec (dtype, qscheme,
//! range, eps), so the grid being scored is exactly the one that would be used. The score of a
//! grid with scale `s`, representable interval `[(qmin - zp)*s, (qmax - zp)*s]`, is
//! `sum over bins of count * e(centre)`, where `e(c) = s^2 / 12` (uniform rounding noise) when
//! the bin centre `c` is inside the interval and `(c - nearest end)^2` otherwise. The smallest
//! score wins, ties going to the wider range (larger `k`). Computed in f64.

use super::ObserverSpec;
use super::qparams::qparams_from_min_max;

const CANDIDATES: usize = 256;

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
    let (neg, pos) = (min.min(0.0), max.max(0.0));
    let width = (max as f64 - min as f64) / hist.len() as f64;
    let centres: Vec<f64> = (0..hist.len())
        .map(|i| min as f64 + width * (i as f64 + 0.5))
        .collect();
    let mut best = ((min, max), f64::INFINITY);
    for k in 1..=CANDIDATES {
        let f = k as f32 / CANDIDATES as f32;
        let (lo, hi) = (neg * f, pos * f);
        let Ok(q) = qparams_from_min_max(&[lo], &[hi], None, spec) else {
            continue;
        };
        let (s, zp) = (q.scales[0] as f64, q.zero_points[0] as f64);
        let e = score(
            &centres,
            hist,
            s,
            (q.quant_min as f64 - zp) * s,
            (q.quant_max as f64 - zp) * s,
        );
        if e <= best.1 {
            best = ((lo, hi), e);
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
}
