//! Error metrics between a reference tensor `x` and its quantized counterpart `y`, each defined
//! by its formula:
//!
//! * SQNR (dB) = 20·log10(‖x‖ / ‖x − y‖) = 10·log10(Σx² / Σ(x−y)²); +∞ when y equals x.
//! * MSE = Σ(x−y)² / n; max abs error = max |x−y|; mean error (bias) = Σ(y−x) / n.
//! * cosine similarity = Σxy / (‖x‖·‖y‖) (1 when both are zero).
//! * rmse/scale = sqrt(Σ((x−y)/s)² / n) with `s` the quantization step of each element; uniform
//!   rounding noise gives 1/√12 ≈ 0.2887, more means clipping or outliers dominate.
//! * clip rate = #{i : x[i] < lo or x[i] > hi} / n for an interval `[lo, hi]` ([`ClipCount`];
//!   NaN is never counted as clipped).

/// Running sums for the metrics, accumulated over any number of tensor pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorStats {
    pub count: u64,
    sum_x2: f64,
    sum_y2: f64,
    sum_xy: f64,
    sum_err2: f64,
    sum_err: f64,
    sum_err2_over_s2: f64,
    max_abs: f64,
}

impl ErrorStats {
    /// Adds pairs `(x[i], y[i])` whose quantization step is `step(i)`.
    pub fn add(&mut self, x: &[f32], y: &[f32], step: impl Fn(usize) -> f64) {
        for (i, (&a, &b)) in x.iter().zip(y).enumerate() {
            let (a, b) = (a as f64, b as f64);
            let e = b - a;
            self.count += 1;
            self.sum_x2 += a * a;
            self.sum_y2 += b * b;
            self.sum_xy += a * b;
            self.sum_err2 += e * e;
            self.sum_err += e;
            let s = step(i);
            if s > 0.0 {
                self.sum_err2_over_s2 += (e / s) * (e / s);
            }
            self.max_abs = self.max_abs.max(e.abs());
        }
    }

    pub fn sqnr_db(&self) -> f64 {
        if self.sum_err2 == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.sum_x2 / self.sum_err2).log10()
        }
    }

    pub fn mse(&self) -> f64 {
        self.sum_err2 / self.count.max(1) as f64
    }

    pub fn max_abs(&self) -> f64 {
        self.max_abs
    }

    pub fn mean_error(&self) -> f64 {
        self.sum_err / self.count.max(1) as f64
    }

    pub fn cosine(&self) -> f64 {
        let norm = (self.sum_x2 * self.sum_y2).sqrt();
        if norm == 0.0 {
            if self.sum_x2 == self.sum_y2 { 1.0 } else { 0.0 }
        } else {
            self.sum_xy / norm
        }
    }

    pub fn rmse_over_scale(&self) -> f64 {
        (self.sum_err2_over_s2 / self.count.max(1) as f64).sqrt()
    }
}

/// Values outside a closed interval, counted over any number of tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClipCount {
    pub outside: u64,
    pub total: u64,
}

impl ClipCount {
    /// Counts `values` against `[lo, hi]`.
    pub fn add(&mut self, values: &[f32], lo: f64, hi: f64) {
        self.total += values.len() as u64;
        self.outside += values
            .iter()
            .filter(|&&v| (v as f64) < lo || (v as f64) > hi)
            .count() as u64;
    }

    /// `outside / total`; `None` when nothing was counted.
    pub fn rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.outside as f64 / self.total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_hand_computed_values() {
        let mut s = ErrorStats::default();
        s.add(&[1.0, -2.0, 3.0, 0.0], &[1.0, -2.5, 3.5, 0.0], |_| 0.5);
        // Σx² = 14, Σ(x−y)² = 0.5 → SQNR = 10·log10(28).
        assert!((s.sqnr_db() - 10.0 * 28f64.log10()).abs() < 1e-12);
        assert_eq!(s.mse(), 0.125);
        assert_eq!(s.max_abs(), 0.5);
        assert_eq!(s.mean_error(), 0.0);
        assert_eq!(s.rmse_over_scale(), (2.0f64 / 4.0).sqrt());
        let mut same = ErrorStats::default();
        same.add(&[1.0, 2.0], &[1.0, 2.0], |_| 1.0);
        assert_eq!(same.sqnr_db(), f64::INFINITY);
        assert!((same.cosine() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn clip_rate_on_hand_counted_values() {
        let mut c = ClipCount::default();
        assert_eq!(c.rate(), None);
        // [-1, 2]: -1.5 and 2.25 fall outside, the edges and NaN do not → 2 of 7.
        c.add(&[-1.5, -1.0, 0.0, 2.0, 2.25, 1.0, f32::NAN], -1.0, 2.0);
        assert_eq!((c.outside, c.total), (2, 7));
        c.add(&[3.0], -1.0, 2.0);
        assert_eq!(c.rate(), Some(3.0 / 8.0));
    }
}
