//! Scalar reference kernels: plain loops whose results define what every fast tier must return.
//!
//! The u8×s8 dot products come in two flavours. Exact: `Σ a·w` in i32. Pair-saturating: the
//! raw products of positions (2j, 2j+1) are added in i16 with saturation before widening, which
//! is what fbgemm's `vpmaddubsw` kernels compute on AVX2 hosts (NUMERICS §8). Zero-point
//! corrections are always exact and applied afterwards, as fbgemm does.

use super::pool::{MaxPool, PoolInt};

/// Raw `Σ a[k]·w[k]` over one row, exactly.
#[inline]
pub fn dot_u8_i8(a: &[u8], w: &[i8]) -> i32 {
    a.iter().zip(w).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Raw `Σ a[k]·w[k]` with each adjacent pair (2j, 2j+1) summed in saturating i16 first; returns
/// the sum and how many pairs saturated.
#[inline]
pub fn dot_u8_i8_pairs_saturating(a: &[u8], w: &[i8]) -> (i32, u32) {
    let mut sum = 0i32;
    let mut saturated = 0u32;
    for (pa, pw) in a.chunks(2).zip(w.chunks(2)) {
        let pair: i32 = pa.iter().zip(pw).map(|(&x, &y)| x as i32 * y as i32).sum();
        let clamped = pair.clamp(i16::MIN as i32, i16::MAX as i32);
        saturated += (clamped != pair) as u32;
        sum += clamped;
    }
    (sum, saturated)
}

/// The extremes of a weight's pair sums per unit of activation: `pos` the largest
/// `max(w_a, 0) + max(w_b, 0)`, `neg` the largest `max(−w_a, 0) + max(−w_b, 0)` over its pairs.
/// Every pair sum `x_a·w_a + x_b·w_b` with activations at most `x_max` lies in
/// `[−x_max·neg, x_max·pos]`, so when [`PairBound::fits`] says that range fits i16 no pair can
/// saturate and the exact sums are the pair-saturating ones.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PairBound {
    pos: i32,
    neg: i32,
}

impl PairBound {
    pub(crate) fn of<'w>(pairs: impl Iterator<Item = &'w [i8]>) -> PairBound {
        pairs.fold(PairBound::default(), |b, p| PairBound {
            pos: b.pos.max(p.iter().map(|&v| (v as i32).max(0)).sum()),
            neg: b.neg.max(p.iter().map(|&v| (-(v as i32)).max(0)).sum()),
        })
    }

    /// Whether every pair sum with activations at most `x_max` fits i16.
    pub(crate) fn fits(self, x_max: u8) -> bool {
        let x = x_max as i32;
        x * self.pos <= i16::MAX as i32 && x * self.neg <= -(i16::MIN as i32)
    }
}

/// `acc[i·n + c] = Σ_k (a[i,k] - a_zp)·(w[c,k] - w_zp[c])` for row-major `a` (m×k) and `w`
/// (n×k), computed fbgemm's way: a raw dot product (pair-saturating when asked), minus
/// `a_zp·Σ_k w[c,k]`, minus `w_zp[c]·Σ_k a[i,k]`, plus `k·a_zp·w_zp[c]`. Returns the number of
/// saturated pairs (0 unless `saturate_pairs`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_u8_i8_i32(
    m: usize,
    n: usize,
    k: usize,
    a: &[u8],
    a_zp: i32,
    w: &[i8],
    w_zp: &[i32],
    saturate_pairs: bool,
    acc: &mut [i32],
) -> u64 {
    let colsum: Vec<i32> = (0..n)
        .map(|c| w[c * k..(c + 1) * k].iter().map(|&v| v as i32).sum())
        .collect();
    let mut saturated = 0u64;
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        let rowsum: i32 = row.iter().map(|&v| v as i32).sum();
        for c in 0..n {
            let wr = &w[c * k..(c + 1) * k];
            let raw = if saturate_pairs {
                let (s, sat) = dot_u8_i8_pairs_saturating(row, wr);
                saturated += sat as u64;
                s
            } else {
                dot_u8_i8(row, wr)
            };
            let zw = w_zp[if w_zp.len() == 1 { 0 } else { c }];
            acc[i * n + c] = raw - a_zp * colsum[c] - zw * rowsum + k as i32 * a_zp * zw;
        }
    }
    saturated
}

/// `quantized::max_pool2d` on `g.planes` row-major planes, as PyTorch loops: per output, the
/// max over the in-bounds taps of its dilated window, `T::MIN` when none is in bounds. (qlab's
/// original per-element implementation; [`super::pool::max_pool2d_on`] must equal it.)
pub fn max_pool2d<T: PoolInt>(g: &MaxPool, x: &[T], y: &mut [T]) {
    let (r, c) = (g.rows, g.cols);
    let outputs = x
        .chunks_exact(r.len * c.len)
        .take(g.planes)
        .flat_map(|plane| {
            (0..r.out).flat_map(move |i| {
                (0..c.out).map(move |j| {
                    r.taps(i)
                        .flat_map(|row| c.taps(j).map(move |col| plane[row * c.len + col]))
                        .max()
                        .unwrap_or(T::MIN)
                })
            })
        });
    for (out, v) in y[..g.out_len()].iter_mut().zip(outputs) {
        *out = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_equals_zero_point_formula() {
        let a = [200u8, 3, 255, 17, 0];
        let w = [-128i8, 127, 5, -7, 64];
        let mut acc = [0i32; 1];
        gemm_u8_i8_i32(1, 1, 5, &a, 128, &w, &[-3], false, &mut acc);
        let want: i32 = a
            .iter()
            .zip(&w)
            .map(|(&x, &y)| (x as i32 - 128) * (y as i32 + 3))
            .sum();
        assert_eq!(acc[0], want);
    }

    #[test]
    fn pair_saturation_matches_numerics_table() {
        // NUMERICS §8: x = 255,255,0,0 with w = 127,127,0,0 saturates to 32767 (true 64770).
        let (s, sat) = dot_u8_i8_pairs_saturating(&[255, 255, 0, 0], &[127, 127, 0, 0]);
        assert_eq!((s, sat), (32767, 1));
        let (s, sat) = dot_u8_i8_pairs_saturating(&[0, 255, 255, 0], &[0, 127, 127, 0]);
        assert_eq!(
            (s, sat),
            (64770, 0),
            "pairs are (0,1) and (2,3), so this one never saturates"
        );
        let (s, _) = dot_u8_i8_pairs_saturating(&[255, 255, 0, 0], &[-128, -128, 0, 0]);
        assert_eq!(s, -32768);
    }

    /// The bound is tight at both ends of i16: two −128 weights reach −32768 with 128-byte
    /// activations (which fits), two 127s pass 32767 from 130-byte ones (which does not).
    #[test]
    fn pair_bound_is_tight_at_both_ends_of_i16() {
        let neg: &[i8] = &[-128, -128, 5, -3];
        assert!(PairBound::of(neg.chunks(2)).fits(128));
        assert!(!PairBound::of(neg.chunks(2)).fits(129));
        let pos: &[i8] = &[127, 127];
        assert!(PairBound::of(pos.chunks(2)).fits(129));
        assert!(!PairBound::of(pos.chunks(2)).fits(130));
        // A pair of mixed signs spans less than either sign alone: 255·127 = 32385.
        let mixed: &[i8] = &[127, -128];
        assert!(PairBound::of(mixed.chunks(2)).fits(255));
        // An odd last weight is a pair of its own.
        let odd: &[i8] = &[1, 1, -128];
        assert!(PairBound::of(odd.chunks(2)).fits(255));
    }
}
