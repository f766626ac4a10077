//! PyTorch's float summation orders, so float results (and the observers that see them) match
//! PyTorch bit for bit on the shapes eager models use.
//!
//! Measured against recorded outputs (golden `workflows.json`, `fusion.json`):
//! * Linear (`addmm` on MKL): each output is a dot product vectorised over K in 8 lanes —
//!   lane `l` accumulates `x[8c + l] · w[8c + l]` with FMA over chunks `c` — reduced by halving
//!   (lanes l and l+4, then l and l+2, then 0 and 1), and the bias is added last.
//! * `mean` over contiguous dims (what `AdaptiveAvgPool2d(1)` runs): ATen's `cascade_sum` at
//!   AVX2 width: 8-lane vectors summed into 4 interleaved vector accumulators, combined in order,
//!   the scalar tail summed first and the 8 lanes then added one by one.

const LANES: usize = 8;

/// Rows of `w` (each `x.len()` long, row `r` at `w[r·x.len()..]`) dotted with `x` at once,
/// MKL's order (module docs) in each: `R` independent chains of 8 lanes keep the FMA units busy where one
/// dot product waits on its own chain.
#[inline(always)]
fn dots_lanes<const R: usize>(x: &[f32], w: &[f32]) -> [f32; R] {
    let k = x.len();
    let whole = k / LANES * LANES;
    let mut acc = [[0.0f32; LANES]; R];
    for c in (0..whole).step_by(LANES) {
        let xs: &[f32; LANES] = x[c..c + LANES].try_into().expect("a whole chunk");
        for (r, a) in acc.iter_mut().enumerate() {
            let ws: &[f32; LANES] = w[r * k + c..][..LANES].try_into().expect("a whole chunk");
            for l in 0..LANES {
                a[l] = xs[l].mul_add(ws[l], a[l]);
            }
        }
    }
    std::array::from_fn(|r| {
        let a = &mut acc[r];
        for (l, (xv, wv)) in x[whole..]
            .iter()
            .zip(&w[r * k + whole..][..k - whole])
            .enumerate()
        {
            a[l] = xv.mul_add(*wv, a[l]);
        }
        let h4: [f32; 4] = std::array::from_fn(|l| a[l] + a[l + 4]);
        let h2: [f32; 2] = std::array::from_fn(|l| h4[l] + h4[l + 2]);
        h2[0] + h2[1]
    })
}

crate::isa::avx2_fma_twin! {
    /// `out[o] = dot(x, w[o])` for every row of `w` (`out.len()` rows of `x.len()`), each in
    /// MKL's order (module docs), several rows at a time.
    pub(crate) fn dot_rows(out: &mut [f32], x: &[f32], w: &[f32])
    when std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") => {
        const R: usize = 8;
        let k = x.len();
        let whole = out.len() / R * R;
        for (o, chunk) in out[..whole].chunks_exact_mut(R).enumerate() {
            chunk.copy_from_slice(&dots_lanes::<R>(x, &w[o * R * k..][..R * k]));
        }
        for (o, v) in out.iter_mut().enumerate().skip(whole) {
            *v = dots_lanes::<1>(x, &w[o * k..][..k])[0];
        }
    }
}

/// ATen's `multi_row_sum` over `rows` rows of 4 vectors: interleaved accumulators with a
/// 4-level cascade every 16 rows, so long sums keep their precision as PyTorch's do.
fn multi_row_sum(vecs: &[[f32; LANES]]) -> [[f32; LANES]; 4] {
    const LEVELS: usize = 4;
    let rows = vecs.len() / 4;
    let ceil_log2 = if rows <= 1 {
        0
    } else {
        usize::BITS - (rows - 1).leading_zeros()
    } as usize;
    let power = (ceil_log2 / LEVELS).max(4);
    let step = 1usize << power;
    let mask = step - 1;
    let add = |a: &mut [f32; LANES], b: &[f32; LANES]| {
        for l in 0..LANES {
            a[l] += b[l];
        }
    };
    let mut acc = [[[0.0f32; LANES]; 4]; LEVELS];
    let mut i = 0;
    while i + step <= rows {
        for j in 0..step {
            for k in 0..4 {
                add(&mut acc[0][k], &vecs[(i + j) * 4 + k]);
            }
        }
        for j in 1..LEVELS {
            let (below, above) = acc.split_at_mut(j);
            for (upper, lower) in above[0].iter_mut().zip(below[j - 1].iter_mut()) {
                add(upper, lower);
                *lower = [0.0; LANES];
            }
            if i & (mask << (j * power)) != 0 {
                break;
            }
        }
        i += step;
    }
    for r in i..rows {
        for k in 0..4 {
            add(&mut acc[0][k], &vecs[r * 4 + k]);
        }
    }
    let (first, rest) = acc.split_at_mut(1);
    for level in rest.iter() {
        for (a, b) in first[0].iter_mut().zip(level) {
            add(a, b);
        }
    }
    acc[0]
}

/// `x.sum()` of a contiguous run, in ATen's order (module docs).
pub(crate) fn sum(x: &[f32]) -> f32 {
    let vecs: Vec<[f32; LANES]> = x
        .chunks_exact(LANES)
        .map(|c| std::array::from_fn(|l| c[l]))
        .collect();
    let mut partial = multi_row_sum(&vecs);
    for v in &vecs[vecs.len() / 4 * 4..] {
        for l in 0..LANES {
            partial[0][l] += v[l];
        }
    }
    let mut lanes = partial[0];
    for p in &partial[1..] {
        for l in 0..LANES {
            lanes[l] += p[l];
        }
    }
    let mut total: f32 = x[vecs.len() * LANES..].iter().fold(0.0, |a, &v| a + v);
    for v in lanes {
        total += v;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One dot product in MKL's order, written out: the definition `dot_rows` must meet.
    fn dot(x: &[f32], w: &[f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let mut xc = x.chunks_exact(LANES);
        let mut wc = w.chunks_exact(LANES);
        for (xs, ws) in (&mut xc).zip(&mut wc) {
            for l in 0..LANES {
                acc[l] = xs[l].mul_add(ws[l], acc[l]);
            }
        }
        // The tail is a masked final chunk: it lands in the low lanes.
        for (l, (a, b)) in xc.remainder().iter().zip(wc.remainder()).enumerate() {
            acc[l] = a.mul_add(*b, acc[l]);
        }
        let h4: [f32; 4] = std::array::from_fn(|l| acc[l] + acc[l + 4]);
        let h2: [f32; 2] = std::array::from_fn(|l| h4[l] + h4[l + 2]);
        h2[0] + h2[1]
    }

    /// Many rows at once give each row's own dot product, bit for bit, with and without tails.
    #[test]
    fn dot_rows_is_dot_per_row() {
        for (rows, k) in [(19, 77), (8, 64), (3, 5), (17, 768)] {
            let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.31).sin()).collect();
            let w: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.17).cos()).collect();
            let mut got = vec![0.0; rows];
            dot_rows(&mut got, &x, &w);
            for (o, g) in got.iter().enumerate() {
                let want = dot(&x, &w[o * k..][..k]);
                assert_eq!(g.to_bits(), want.to_bits(), "row {o} of {rows}x{k}");
            }
        }
    }

    #[test]
    fn orders_are_sums() {
        let x: Vec<f32> = (0..77).map(|i| i as f32).collect();
        let w = vec![1.0f32; 77];
        let mut d = [0.0];
        dot_rows(&mut d, &x, &w);
        assert_eq!(d[0], (0..77).sum::<i32>() as f32);
        assert_eq!(sum(&x), (0..77).sum::<i32>() as f32);
        let big: Vec<f32> = (0..5000).map(|i| (i % 7) as f32).collect();
        assert_eq!(sum(&big), big.iter().map(|&v| v as f64).sum::<f64>() as f32);
        assert_eq!(sum(&[]), 0.0);
    }
}
