//! Scalar reference kernels: plain loops whose results define what every fast tier must return.
//!
//! The u8×s8 dot products come in two flavours. Exact: `Σ a·w` in i32. Pair-saturating: the
//! raw products of positions (2j, 2j+1) are added in i16 with saturation before widening, which
//! is what fbgemm's `vpmaddubsw` kernels compute on AVX2 hosts (NUMERICS §8). Zero-point
//! corrections are always exact and applied afterwards, as fbgemm does.

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
}
