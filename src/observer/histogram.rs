//! HistogramObserver (NUMERICS §2.6): a fixed number of equal bins over the running range, and
//! qparams from a search over that histogram.
//!
//! The statistics are the histogram and its range only (memory O(bins) however many batches
//! are seen). When a batch widens the range, the old histogram is re-binned the way PyTorch 2.x
//! does it: each bin is split into `upsample_rate` equal parts whose midpoints are assigned to the
//! new bins, with the weights summed in f64 (torch's `bincount`) and rounded to f32 once.
//! Infinite values are dropped (PyTorch warns and filters them); NaN makes PyTorch's `histc`
//! raise, so it is a `BadInput` error here and the statistics stay untouched.
//!
//! A batch inside the known range (the steady state) costs one pass: it is binned against the
//! current range while the same pass watches its extremes and NaN; only a batch that widens the
//! range (or the first one) takes the PyTorch order of min/max first, then binning.
//!
//! The same statistics feed four calibrators, chosen by the spec's kind: PyTorch's L2 search
//! (`histogram`), and the qlab extensions `percentile`, `entropy` and `mse`.

use super::histc::{Binning, histc};
use super::qparams::qparams_from_min_max;
use super::{ObservedQParams, Observer, ObserverError, ObserverKind, ObserverSpec, Stats};
use super::{entropy, mse, norm_search, percentile};
use crate::tensor::quantize::min_max;

/// A histogram observer (PyTorch's, or a qlab calibrator over the same statistics).
#[derive(Debug, Clone)]
pub struct HistogramObserver {
    spec: ObserverSpec,
    min: f32,
    max: f32,
    hist: Vec<f32>,
}

/// `torch.linspace(start, end, n)[i]` in f32: `fma` from the nearer end (NUMERICS §2.6).
#[inline]
pub(crate) fn linspace_at(start: f32, end: f32, n: usize, i: usize) -> f32 {
    let step = (end - start) / (n - 1) as f32;
    if i < n / 2 {
        step.mul_add(i as f32, start)
    } else {
        (-step).mul_add((n - 1 - i) as f32, end)
    }
}

/// Min and max of the finite elements (PyTorch filters infinities before taking them again).
fn finite_min_max(x: &[f32]) -> Option<(f32, f32)> {
    x.iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, &v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Moves `old` (bins over `[omin, omax]`) onto the bins of `[nmin, nmax]` by splitting each old
/// bin into `upsample` parts placed at their midpoints (PyTorch's `_upscale_histogram`).
fn upscale(
    old: &[f32],
    (omin, omax): (f32, f32),
    (nmin, nmax): (f32, f32),
    upsample: usize,
) -> Vec<f64> {
    let bins = old.len();
    let fine = bins * upsample;
    let half = (0.5 * ((omax as f64 - omin as f64) / fine as f64)) as f32;
    let edges: Vec<f32> = (0..=bins)
        .map(|i| linspace_at(nmin, nmax, bins + 1, i))
        .collect();
    let mut out = vec![0f64; bins];
    for (i, &count) in old.iter().enumerate() {
        let weight = (count / upsample as f32) as f64;
        for j in i * upsample..(i + 1) * upsample {
            let mid = linspace_at(omin, omax, fine + 1, j) + half;
            // searchsorted(right) - 1, clamped to a real bin.
            let bin = edges
                .partition_point(|&e| e <= mid)
                .saturating_sub(1)
                .min(bins - 1);
            out[bin] += weight;
        }
    }
    out
}

impl HistogramObserver {
    /// Builds from a spec of a histogram kind (validated here).
    pub fn new(spec: &ObserverSpec) -> Result<HistogramObserver, ObserverError> {
        spec.validate()?;
        if !spec.kind.uses_histogram() {
            return Err(ObserverError::InvalidConfig(format!(
                "{} is not a histogram kind",
                spec.kind
            )));
        }
        Ok(HistogramObserver {
            spec: spec.clone(),
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            hist: vec![0.0; spec.bins],
        })
    }

    /// The histogram buffer (f32 counts over `[min, max]`).
    pub fn histogram(&self) -> &[f32] {
        &self.hist
    }

    /// The running (min, max); (+inf, -inf) before any data.
    pub fn min_max(&self) -> (f32, f32) {
        (self.min, self.max)
    }
}

impl Observer for HistogramObserver {
    fn forward(&mut self, x: &[f32], _shape: &[usize]) -> Result<(), ObserverError> {
        if x.is_empty() {
            return Ok(());
        }
        let bins = self.spec.bins;
        let isa = crate::isa::selected();
        let nan_error = || {
            ObserverError::BadInput("HistogramObserver cannot bin NaN (torch.histc raises)".into())
        };
        let initialised = self.min != f32::INFINITY && self.max != f32::NEG_INFINITY;
        if initialised {
            // Fast path, one pass: bin against the known range while watching the extremes. If
            // the batch stayed inside, these are exactly the counts PyTorch adds.
            let (update, seen) = histc(x, Binning::new(self.min, self.max, bins), isa);
            if seen.nan {
                return Err(nan_error());
            }
            if seen.min >= self.min && seen.max <= self.max {
                self.hist.iter_mut().zip(&update).for_each(|(h, u)| *h += u);
                return Ok(());
            }
        }
        let (mut xmin, mut xmax) = min_max(x);
        if xmin.is_nan() {
            return Err(nan_error());
        }
        if xmin.is_infinite() || xmax.is_infinite() {
            // Infinite elements fall outside any finite range, so histc drops them by itself.
            match finite_min_max(x) {
                Some(r) => (xmin, xmax) = r,
                None => return Ok(()),
            }
        }
        if !initialised {
            self.hist = histc(x, Binning::new(xmin, xmax, bins), isa).0;
            (self.min, self.max) = (xmin, xmax);
            return Ok(());
        }
        let (nmin, nmax) = (self.min.min(xmin), self.max.max(xmax));
        let update = histc(x, Binning::new(nmin, nmax, bins), isa).0;
        if nmin == self.min && nmax == self.max {
            self.hist.iter_mut().zip(&update).for_each(|(h, u)| *h += u);
        } else if self.min == self.max {
            // The old mass sits in one bin: wherever histc puts the old constant in the new range.
            let mass: f32 = self.hist.iter().sum();
            let at = histc(
                &[self.min],
                Binning::new(nmin, nmax, bins),
                crate::isa::Isa::Scalar,
            )
            .0;
            self.hist = update.iter().zip(&at).map(|(u, a)| u + a * mass).collect();
        } else {
            let moved = upscale(
                &self.hist,
                (self.min, self.max),
                (nmin, nmax),
                self.spec.upsample_rate,
            );
            self.hist = update
                .iter()
                .zip(&moved)
                .map(|(u, m)| u + *m as f32)
                .collect();
        }
        (self.min, self.max) = (nmin, nmax);
        Ok(())
    }

    fn calculate_qparams(&self) -> Result<ObservedQParams, ObserverError> {
        calibrate(self.min, self.max, &self.hist, &self.spec)
    }

    fn spec(&self) -> &ObserverSpec {
        &self.spec
    }

    fn stats(&self) -> Stats {
        Stats::Histogram {
            min: self.min,
            max: self.max,
            counts: self.hist.clone(),
        }
    }
}

/// qparams from histogram statistics with the calibrator `spec.kind` names.
pub(crate) fn calibrate(
    min: f32,
    max: f32,
    counts: &[f32],
    spec: &ObserverSpec,
) -> Result<ObservedQParams, ObserverError> {
    let never_run = min == f32::INFINITY && max == f32::NEG_INFINITY;
    if never_run || counts.is_empty() {
        return qparams_from_min_max(&[f32::INFINITY], &[f32::NEG_INFINITY], None, spec);
    }
    if min > max || min.is_nan() || max.is_nan() {
        return Err(ObserverError::MinGreaterThanMax { min, max });
    }
    let levels = 1usize << spec.qdtype()?.bits();
    let (lo, hi) = match spec.kind {
        ObserverKind::Percentile => percentile::clip_range(min, max, counts, spec.percentile),
        ObserverKind::Entropy => entropy::clip_range(min, max, counts, levels),
        ObserverKind::Mse => mse::clip_range(min, max, counts, spec),
        _ => norm_search::clip_range(min, max, counts, levels),
    };
    qparams_from_min_max(&[lo], &[hi], None, spec)
}
