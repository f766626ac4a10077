//! Percentile calibration (qlab extension): clip the range where the histogram's mass reaches a
//! percentile, so rare outliers do not stretch the scale.
//!
//! Definition. Let `T` be the total mass, `p` the kept percentage and `q = (100 - p) / 100` the
//! clipped fraction. If the histogram range straddles zero (signed data) each tail loses `q/2`
//! of the mass; otherwise only the tail away from zero loses `q` (the side at zero is kept, it
//! is in the range anyway). The lower clip point is the smallest `x` with `mass(< x) = tail_lo*T`
//! and the upper one the largest `x` with `mass(> x) = tail_hi*T`, with the mass of each bin
//! spread uniformly over the bin (linear interpolation inside the bin). All in f64, rounded to
//! f32 at the end; the result is always inside `[min, max]`.

/// The position where the running mass from the left first reaches `target`, interpolated.
fn quantile_from_left(min: f64, width: f64, hist: &[f32], target: f64) -> f64 {
    let mut acc = 0f64;
    for (i, &h) in hist.iter().enumerate() {
        let h = h as f64;
        if h > 0.0 && acc + h >= target {
            let frac = ((target - acc) / h).clamp(0.0, 1.0);
            return min + width * (i as f64 + frac);
        }
        acc += h;
    }
    min + width * hist.len() as f64
}

/// The percentile clip range of histogram `hist` over `[min, max]` keeping `p` percent.
pub(crate) fn clip_range(min: f32, max: f32, hist: &[f32], p: f64) -> (f32, f32) {
    let total: f64 = hist.iter().map(|&h| h as f64).sum();
    if total <= 0.0 || min >= max {
        return (min, max);
    }
    let clipped = (100.0 - p) / 100.0;
    let (tail_lo, tail_hi) = match (min < 0.0, max > 0.0) {
        (true, true) => (clipped / 2.0, clipped / 2.0),
        (true, false) => (clipped, 0.0),
        _ => (0.0, clipped),
    };
    let (lo64, hi64) = (min as f64, max as f64);
    let width = (hi64 - lo64) / hist.len() as f64;
    let lo = if tail_lo > 0.0 {
        quantile_from_left(lo64, width, hist, tail_lo * total)
    } else {
        lo64
    };
    // The upper tail is the lower tail of the mirrored histogram.
    let mirrored: Vec<f32> = hist.iter().rev().copied().collect();
    let hi = if tail_hi > 0.0 {
        -quantile_from_left(-hi64, width, &mirrored, tail_hi * total)
    } else {
        hi64
    };
    let (lo, hi) = (lo.clamp(lo64, hi64) as f32, hi.clamp(lo64, hi64) as f32);
    if lo <= hi { (lo, hi) } else { (hi, lo) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_data_clips_at_the_percentile() {
        // 1000 equal bins over [0, 1): the 99% point of uniform mass is 0.99.
        let hist = vec![1.0f32; 1000];
        let (lo, hi) = clip_range(0.0, 1.0, &hist, 99.0);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.99).abs() < 1e-6, "{hi}");
        // Signed: 0.5% from each tail of [-1, 1].
        let (lo, hi) = clip_range(-1.0, 1.0, &hist, 99.0);
        assert!(
            (lo + 0.99).abs() < 1e-6 && (hi - 0.99).abs() < 1e-6,
            "{lo} {hi}"
        );
    }

    #[test]
    fn one_outlier_is_clipped() {
        let mut hist = vec![0.0f32; 2048];
        hist[..100].iter_mut().for_each(|h| *h = 100.0);
        hist[2047] = 1.0;
        let (_, hi) = clip_range(0.0, 2048.0, &hist, 99.9);
        assert!(hi <= 100.0, "{hi}");
    }
}
