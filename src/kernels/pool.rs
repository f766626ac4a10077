//! Max pooling of u8 / i8 planes: [`super::reference::max_pool2d`]'s result (PyTorch's
//! `quantized::max_pool2d`: the max over the in-bounds taps of a dilated window, the type's
//! minimum when no tap is in bounds), computed separably on raw bytes.
//!
//! Why a kernel of its own. The per-output walk over every window tap through an i32 copy of
//! the tensor was most of GoogLeNet's int8 forward (31 of 34 ms).
//!
//! Design. A 2-D max is a max of row maxima, so each output row is two passes, both one
//! primitive, the *row max* `dst[i] = max_j base[offsets[j] + i]` (an element-wise max of shifted
//! rows, vectorised per tier):
//! 1. vertical: the in-bounds input rows of the output row's window (offsets `r·W`), merged into
//!    one row of `W` (borrowed as is when the window has one in-bounds row);
//! 2. horizontal: over the interior outputs, whose windows lie wholly inside the row, the row
//!    max with offsets `k·d` gives the window max at every start position; stride 1 writes it
//!    straight into the output row, larger strides keep every `s`-th. The few border outputs
//!    (padding, ceil_mode's overhang) take the scalar max over their in-bounds taps.
//!
//! A "same" pool (stride 1, as many output columns as input ones) runs its interior rows as one
//! block per plane, both passes over the whole block: on GoogLeNet's 14×14 and 7×7 planes the
//! per-row calls cost more than the maxima.
//!
//! Many small planes (at most 14×14 outputs, at least 16 planes: GoogLeNet's late pools and
//! inception branches) pool channels-last instead: the planes are transposed to `[H·W, planes]` once,
//! every output position is one row max over its in-bounds taps' rows of all planes, and the
//! result is transposed back. The per-plane walk paid its fixed cost (row spans, border taps,
//! calls) per plane, several times the maxima on a 7×7 plane.
//!
//! So any kernel, stride, padding, dilation and ceil_mode runs on the same two passes, and each
//! tier only provides the row max: [`row_max`] is the scalar twin, the x86 tiers use
//! `vpmaxub` / `vpmaxsb` on 32 lanes (AVX2, AVX-VNNI) or 64 masked lanes (AVX-512), NEON uses
//! `umax` / `smax` on 16.

use super::transpose::transpose;
use crate::isa::{Isa, IsaError};
use rayon::prelude::*;

/// One axis of a pooling window over an input of `len`, producing `out` positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolAxis {
    pub len: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub dilation: usize,
    pub out: usize,
}

impl PoolAxis {
    /// The in-bounds taps of window `o`: input positions `o·s − p + k·d` inside `0..len`.
    pub fn taps(&self, o: usize) -> impl Iterator<Item = usize> + use<> {
        let start = (o * self.stride) as i64 - self.pad as i64;
        let (d, len) = (self.dilation as i64, self.len as i64);
        (0..self.kernel as i64)
            .map(move |k| start + k * d)
            .filter(move |t| (0..len).contains(t))
            .map(|t| t as usize)
    }

    /// The outputs `lo..hi` whose windows lie wholly in bounds; `0..lo` and `hi..out` are the
    /// borders (`lo <= hi <= out`).
    fn interior(&self) -> (usize, usize) {
        let lo = self.pad.div_ceil(self.stride).min(self.out);
        let reach = (self.kernel - 1) * self.dilation;
        // The last window start `o·s − p` with `o·s − p + reach <= len − 1`.
        let hi = match (self.len + self.pad).checked_sub(reach + 1) {
            Some(last) => (last / self.stride + 1).min(self.out),
            None => 0,
        };
        (lo, hi.max(lo))
    }
}

/// A max pooling of `planes` row-major planes, `[rows.len, cols.len]` each, into planes of
/// `[rows.out, cols.out]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool {
    pub planes: usize,
    pub rows: PoolAxis,
    pub cols: PoolAxis,
}

impl MaxPool {
    pub fn in_len(&self) -> usize {
        self.planes * self.rows.len * self.cols.len
    }

    pub fn out_len(&self) -> usize {
        self.planes * self.rows.out * self.cols.out
    }
}

/// A tier's row max: `dst[i] = max_j base[offsets[j] + i]`.
///
/// # Safety
/// The host must support the tier the function belongs to. (Bounds are checked: `offsets` is
/// non-empty and every `offsets[j] + dst.len() <= base.len()`, or the call panics.)
pub type RowMax<T> = unsafe fn(&mut [T], &[T], &[usize]);

/// The element types the kernel pools: the storage of quint8 and qint8.
pub trait PoolInt: Copy + Ord + Send + Sync + 'static {
    /// What a window without in-bounds taps yields (PyTorch's initial max).
    const MIN: Self;
    /// The row max of `tier` (which the host must support).
    fn row_max_of(tier: Isa) -> RowMax<Self>;
    /// The values' bytes (a one-byte integer: every bit pattern is a value).
    fn bytes(v: &[Self]) -> &[u8];
    fn bytes_mut(v: &mut [Self]) -> &mut [u8];
}

/// The scalar twin of every tier's row max: the plain loops.
pub fn row_max<T: PoolInt>(dst: &mut [T], base: &[T], offsets: &[usize]) {
    check_row_max(dst.len(), base.len(), offsets);
    let n = dst.len();
    dst.copy_from_slice(&base[offsets[0]..][..n]);
    for &o in &offsets[1..] {
        for (d, &s) in dst.iter_mut().zip(&base[o..][..n]) {
            *d = (*d).max(s);
        }
    }
}

/// The bounds every row max asserts before touching memory.
#[inline]
pub(crate) fn check_row_max(n: usize, base: usize, offsets: &[usize]) {
    assert!(!offsets.is_empty(), "row max of no rows");
    assert!(
        offsets.iter().all(|&o| o + n <= base),
        "row max reads past its base"
    );
}

macro_rules! pool_int {
    ($t:ty, $avx2:ident, $avx512:ident, $neon:ident) => {
        impl PoolInt for $t {
            const MIN: Self = <$t>::MIN;

            #[allow(unreachable_code)]
            fn row_max_of(tier: Isa) -> RowMax<Self> {
                #[cfg(target_arch = "x86_64")]
                {
                    use super::x86::{avx2_pool, avx512_pool};
                    return match tier {
                        Isa::Avx2 | Isa::AvxVnni => avx2_pool::$avx2,
                        Isa::Avx512Vnni => avx512_pool::$avx512,
                        _ => row_max::<$t>,
                    };
                }
                #[cfg(target_arch = "aarch64")]
                {
                    return match tier {
                        Isa::Neon | Isa::Dotprod => super::aarch64::neon_pool::$neon,
                        _ => row_max::<$t>,
                    };
                }
                let _ = tier;
                row_max::<$t>
            }

            fn bytes(v: &[Self]) -> &[u8] {
                // SAFETY: a one-byte integer has the size and alignment of u8.
                unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
            }

            fn bytes_mut(v: &mut [Self]) -> &mut [u8] {
                // SAFETY: as above, and every byte is a valid value of the type.
                unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
            }
        }
    };
}

pool_int!(u8, row_max_u8, row_max_u8, row_max_u8);
pool_int!(i8, row_max_i8, row_max_i8, row_max_i8);

/// [`super::reference::max_pool2d`] on `tier`: writes the `g.out_len()` pooled values of `x`
/// (`g.in_len()` values) to `y`; an error when the host lacks the tier.
pub fn max_pool2d_on<T: PoolInt>(
    tier: Isa,
    g: &MaxPool,
    x: &[T],
    y: &mut [T],
) -> Result<(), IsaError> {
    tier.check()?;
    assert!(x.len() >= g.in_len() && y.len() >= g.out_len());
    if g.out_len() == 0 || g.in_len() == 0 {
        y[..g.out_len()].fill(T::MIN);
        return Ok(());
    }
    let f = T::row_max_of(tier);
    #[cfg(target_arch = "x86_64")]
    let wide = tier.is_x86_simd();
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    // SAFETY: `check` just confirmed the host supports `tier`, whose row max `f` is.
    let merge = |dst: &mut [T], base: &[T], offsets: &[usize]| unsafe { f(dst, base, offsets) };
    if g.rows.out * g.cols.out <= CHANNELS_LAST_OUTPUTS && g.planes >= CHANNELS_LAST_PLANES {
        channels_last(g, x, y, merge);
        return Ok(());
    }
    let (r, c) = (g.rows, g.cols);
    let (lo, hi) = c.interior();
    let first = (lo * c.stride).saturating_sub(c.pad);
    // Window starts from output `lo`'s to output `hi − 1`'s, every one of them.
    let starts = if hi > lo {
        (hi - 1 - lo) * c.stride + 1
    } else {
        0
    };
    let col_offsets: Vec<usize> = (0..c.kernel).map(|k| k * c.dilation).collect();
    // The taps are the same in every plane: the row offsets of each output row (flattened, with
    // each row's range) and the column taps of the border outputs are listed once per call.
    let (mut row_offsets, mut row_spans) = (Vec::new(), Vec::with_capacity(r.out));
    for oy in 0..r.out {
        let from = row_offsets.len();
        row_offsets.extend(r.taps(oy).map(|t| t * c.len));
        row_spans.push(from..row_offsets.len());
    }
    let borders: Vec<(usize, Vec<usize>)> = (0..lo)
        .chain(hi..c.out)
        .map(|ox| (ox, c.taps(ox).collect()))
        .collect();
    let (plane_in, plane_out) = (r.len * c.len, r.out * c.out);
    // Planes are independent: groups of them run in parallel, each with its own row buffers.
    let per_task = (POOL_TASK_ELEMENTS / plane_in).max(1);
    // Stride 1 both ways with as many output columns as input ones (a "same" pool, as in
    // GoogLeNet's inception branches): the interior rows run as whole blocks (see `block_rows`).
    let (r_lo, r_hi) = match r.stride == 1 && c.stride == 1 && c.out == c.len {
        true => r.interior(),
        false => (0, 0),
    };
    let block_offsets: Vec<usize> = (0..r.kernel).map(|k| k * r.dilation * c.len).collect();
    let run = |(xs, ys): (&[T], &mut [T])| {
        let mut merged = vec![T::MIN; c.len.max((r_hi - r_lo) * c.len)];
        let mut window_max = vec![T::MIN; starts];
        for (xp, yp) in xs
            .chunks_exact(plane_in)
            .zip(ys.chunks_exact_mut(plane_out))
        {
            if r_hi > r_lo {
                // Rows r_lo..r_hi: one vertical pass over the block (input rows from
                // r_lo - pad), one horizontal pass over the flattened block (the outputs near
                // a row's ends mix in the neighbouring row and are redone as borders).
                let rows = r_hi - r_lo;
                let block = &mut merged[..rows * c.len];
                merge(block, &xp[(r_lo - r.pad) * c.len..], &block_offsets);
                let yb = &mut yp[r_lo * c.out..r_hi * c.out];
                if hi > lo {
                    let n = (rows - 1) * c.out + hi - lo;
                    merge(&mut yb[lo..lo + n], &block[first..], &col_offsets);
                }
                for (yrow, row) in yb.chunks_exact_mut(c.out).zip(block.chunks_exact(c.len)) {
                    for (ox, taps) in &borders {
                        yrow[*ox] = taps.iter().map(|&t| row[t]).max().unwrap_or(T::MIN);
                    }
                }
            }
            let rows = yp.chunks_exact_mut(c.out).zip(&row_spans).enumerate();
            for (_, (yrow, span)) in rows.filter(|(oy, _)| !(r_lo..r_hi).contains(oy)) {
                let row: &[T] = match row_offsets[span.clone()] {
                    [] => {
                        yrow.fill(T::MIN);
                        continue;
                    }
                    [one] => &xp[one..][..c.len],
                    ref offsets => {
                        merge(&mut merged[..c.len], xp, offsets);
                        &merged[..c.len]
                    }
                };
                if hi == lo {
                    // No interior output: the borders below are the whole row.
                } else if c.stride == 1 {
                    merge(&mut yrow[lo..hi], &row[first..], &col_offsets);
                } else {
                    merge(&mut window_max, &row[first..], &col_offsets);
                    every_nth(&mut yrow[lo..hi], &window_max, c.stride, wide);
                }
                for (ox, taps) in &borders {
                    yrow[*ox] = taps.iter().map(|&t| row[t]).max().unwrap_or(T::MIN);
                }
            }
        }
    };
    let xs = x[..g.in_len()].par_chunks(per_task * plane_in);
    xs.zip(y[..g.out_len()].par_chunks_mut(per_task * plane_out))
        .for_each(run);
    Ok(())
}

/// Planes of at most this many outputs pool channels-last ([`channels_last`]) …
///
/// A measured crossover: it takes every tap of a window (no separable passes), so a "same"
/// 3×3 pool on 28×28 planes ran 3× slower channels-last, while the 14×14 → 7×7 pools of
/// GoogLeNet ran 6× faster and its 14×14 "same" ones a little faster.
const CHANNELS_LAST_OUTPUTS: usize = 14 * 14;
/// … when there are at least this many of them.
const CHANNELS_LAST_PLANES: usize = 16;

/// [`max_pool2d_on`] over `[H·W, planes]`: `x`'s planes transposed to channels-last, each output
/// position the row max (`merge`) of its in-bounds taps' rows, transposed back into `y`.
fn channels_last<T: PoolInt>(
    g: &MaxPool,
    x: &[T],
    y: &mut [T],
    merge: impl Fn(&mut [T], &[T], &[usize]) + Sync,
) {
    let (r, c, p) = (g.rows, g.cols, g.planes);
    let (plane_in, plane_out) = (r.len * c.len, r.out * c.out);
    let mut xt = vec![T::MIN; plane_in * p];
    let src = T::bytes(&x[..p * plane_in]);
    transpose(src, plane_in, p, plane_in, T::bytes_mut(&mut xt), p);
    let mut yt = vec![T::MIN; plane_out * p];
    // `offsets`: a buffer reused across positions (one per parallel task).
    let pool = |offsets: &mut Vec<usize>, (at, dst): (usize, &mut [T])| {
        let (oy, ox) = (at / c.out, at % c.out);
        let taps = r
            .taps(oy)
            .flat_map(|ty| c.taps(ox).map(move |tx| ty * c.len + tx));
        offsets.clear();
        offsets.extend(taps.map(|t| t * p));
        // No tap in bounds: the type's minimum, as `yt` already holds.
        if !offsets.is_empty() {
            merge(dst, &xt, offsets);
        }
    };
    if plane_out * p >= POOL_TASK_ELEMENTS {
        let positions = yt.par_chunks_mut(p).enumerate().with_min_len(4);
        positions.for_each_init(Vec::new, pool);
    } else {
        let mut offsets = Vec::new();
        yt.chunks_mut(p)
            .enumerate()
            .for_each(|job| pool(&mut offsets, job));
    }
    let dst = T::bytes_mut(&mut y[..p * plane_out]);
    transpose(T::bytes(&yt), p, plane_out, p, dst, plane_out);
}

/// `dst[i] = src[i·step]`: a strided pool's window maxima at its window starts. Stride 2 (every
/// strided pool in the zoo) reads pairs, which the compiler turns into byte shuffles; `wide`
/// (an x86 SIMD tier, so AVX2 at least) compiles that loop for AVX2. The same copies either way.
fn every_nth<T: PoolInt>(dst: &mut [T], src: &[T], step: usize, wide: bool) {
    #[inline(always)]
    fn pairs<T: PoolInt>(dst: &mut [T], src: &[T]) {
        for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
            *d = p[0];
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn pairs_avx2<T: PoolInt>(dst: &mut [T], src: &[T]) {
        pairs(dst, src)
    }
    if step != 2 {
        for (d, &v) in dst.iter_mut().zip(src.iter().step_by(step)) {
            *d = v;
        }
        return;
    }
    // The last start has no partner in a pair of its own: copied alone.
    let whole = dst.len().min(src.len() / 2);
    let (head, tail) = dst.split_at_mut(whole);
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only set for tiers that include AVX2.
        unsafe { pairs_avx2(head, src) };
    } else {
        pairs(head, src);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = wide;
        pairs(head, src);
    }
    for (i, d) in tail.iter_mut().enumerate() {
        *d = src[2 * (whole + i)];
    }
}

/// Input elements per parallel task of [`max_pool2d_on`] (whole planes, at least one).
const POOL_TASK_ELEMENTS: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(len: usize, kernel: usize, stride: usize, pad: usize, out: usize) -> PoolAxis {
        PoolAxis {
            len,
            kernel,
            stride,
            pad,
            dilation: 1,
            out,
        }
    }

    #[test]
    fn interior_excludes_padded_and_overhanging_windows() {
        // 3x3 s2 p1 on 112: output 0 reaches into the padding, the rest are inside.
        assert_eq!(axis(112, 3, 2, 1, 56).interior(), (1, 56));
        // GoogLeNet's ceil_mode 3x3 s2 on 56 -> 28: the last window overhangs by one.
        assert_eq!(axis(56, 3, 2, 0, 28).interior(), (0, 27));
        // A 1-wide input under a padded 3-window: no interior at all.
        assert_eq!(axis(1, 3, 1, 1, 1).interior(), (1, 1));
    }

    /// "Same" pools (stride 1, output as wide as the input), whose interior rows run as one
    /// block, equal the reference on every available tier: 3×3 and 5×5 windows, dilated rows,
    /// planes from 1×1 to wider than a vector, several planes per task.
    #[test]
    fn same_pools_as_blocks_match_the_reference() {
        // (rows, cols, kernel, pad, row dilation)
        let shapes = [
            (14, 14, 3, 1, 1),
            (7, 7, 3, 1, 1),
            (9, 70, 5, 2, 1),
            (11, 5, 3, 1, 2),
            (1, 1, 3, 1, 1),
            (2, 3, 3, 1, 1),
        ];
        for (h, w, k, p, dil) in shapes {
            let rows = PoolAxis {
                len: h,
                kernel: k,
                stride: 1,
                pad: p,
                dilation: dil,
                out: h + 2 * p - dil * (k - 1),
            };
            let g = MaxPool {
                planes: 3,
                rows,
                cols: axis(w, k, 1, p, w + 2 * p - (k - 1)),
            };
            let x: Vec<u8> = (0..g.in_len())
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                .collect();
            let mut want = vec![0u8; g.out_len()];
            crate::kernels::reference::max_pool2d(&g, &x, &mut want);
            for tier in crate::isa::ALL.into_iter().filter(|t| t.is_available()) {
                let mut got = vec![7u8; g.out_len()];
                max_pool2d_on(tier, &g, &x, &mut got).unwrap();
                assert_eq!(got, want, "{tier} {h}x{w} k{k} p{p} d{dil}");
            }
        }
    }
}
