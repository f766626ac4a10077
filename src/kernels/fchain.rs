//! Float FMA chains: the inner loop of the float convolution, which reproduces PyTorch's
//! (oneDNN's) summation order bit for bit (`graph::ops::conv_order` fixes the order; this file
//! only computes it fast).
//!
//! The operation: `out[o][p] ⊕= start(o) + Σ_{k in ks} w[o][k]·x[k][p]`, one fused
//! multiply-add chain per output element in the order of `ks`, then finished by [`Finish`]
//! (stored, a per-row constant added, or added to what `out` holds) with one rounding. Each
//! element's chain is independent of every other's, so a tier may compute any number of them
//! side by side in vector lanes: the result never depends on the tier, only the speed does.
//!
//! Tiers: [`chain_scalar`] is the definition (one element at a time); AVX-512 runs register
//! tiles of 6 rows by 64 positions (24 zmm accumulators), AVX2 4 rows by 16 (8 ymm), both with
//! masked loads for the last positions of a row, so no position falls back to scalar code.
//! The other tiers (NEON) run the scalar twin, which the compiler vectorises by itself only in
//! part.

use super::patches::Patches;
use crate::isa::{Isa, IsaError};

/// Where each row's chain starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    Zero,
    /// Row `o` starts at `bias[o]`.
    Bias(&'a [f32]),
}

/// What is done with a finished chain `c` (one rounding each).
#[derive(Debug, Clone, Copy)]
pub enum Finish<'a> {
    /// `out = c`.
    Store,
    /// `out = c + add[o]`: the bias added after the products, as oneDNN's direct kernel does.
    AddRow(&'a [f32]),
    /// `out = out + c`: a later reduction block added to the running sum.
    Accumulate,
}

/// Where the chains' `x` rows come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Row `k` is `x[k·len..][..len]` (a pointwise conv's input planes, a GEMM operand).
    Rows { x: &'a [f32], len: usize },
    /// The im2col rows of a convolution group, formed as they are packed.
    Patches(Patches<'a>),
}

impl Source<'_> {
    /// Rows and positions the source has.
    fn extent(&self) -> (usize, usize) {
        match self {
            Source::Rows { x, len } => (x.len() / (*len).max(1), *len),
            Source::Patches(p) => (p.rows(), p.positions()),
        }
    }

    /// Element (`k`, `p`).
    #[inline(always)]
    fn value(&self, k: usize, p: usize) -> f32 {
        match self {
            Source::Rows { x, len } => x[k * len + p],
            Source::Patches(patches) => patches.value(k, p),
        }
    }

    /// Rows `ks` of positions `p0..p0 + width` into `dst`, row `i` at `i·stride`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn pack(
        &self,
        ks: &[usize],
        p0: usize,
        width: usize,
        dst: &mut [f32],
        stride: usize,
    ) {
        match self {
            Source::Rows { x, len } => {
                for (i, &k) in ks.iter().enumerate() {
                    dst[i * stride..][..width].copy_from_slice(&x[k * len + p0..][..width]);
                }
            }
            Source::Patches(patches) => patches.pack_rows(ks, p0, width, dst, stride),
        }
    }
}

/// The operands of one call: `out` is `rows × n` row-major and holds positions `p0..p0 + n`
/// of the source; `w` rows are `w_stride` apart and read at the columns `ks`; `x` supplies row
/// `k` of every position.
#[derive(Debug, Clone, Copy)]
pub struct Chains<'a> {
    pub n: usize,
    pub p0: usize,
    pub start: Start<'a>,
    pub finish: Finish<'a>,
    pub w: &'a [f32],
    pub w_stride: usize,
    pub x: Source<'a>,
    pub ks: &'a [usize],
}

impl Chains<'_> {
    /// Panics unless every index the chains read is in bounds (what makes the tiers' unchecked
    /// loads sound): `rows` rows of `out`.
    fn check(&self, out_len: usize) -> usize {
        let rows = out_len / self.n.max(1);
        assert_eq!(rows * self.n, out_len, "out is whole rows of n");
        if rows == 0 || self.n == 0 {
            return rows;
        }
        let k_max = self.ks.iter().copied().max().unwrap_or(0);
        if let Source::Patches(p) = &self.x {
            p.check();
        }
        let (x_rows, positions) = self.x.extent();
        assert!(self.p0 + self.n <= positions, "x holds every position");
        if !self.ks.is_empty() {
            assert!(k_max < x_rows, "x holds every row ks names");
            assert!(
                (rows - 1) * self.w_stride + k_max < self.w.len(),
                "w holds every row's columns ks"
            );
        }
        for per_row in [self.start_row(), self.add_row()].into_iter().flatten() {
            assert!(per_row.len() >= rows, "a per-row constant for every row");
        }
        rows
    }

    fn start_row(&self) -> Option<&[f32]> {
        match self.start {
            Start::Zero => None,
            Start::Bias(b) => Some(b),
        }
    }

    fn add_row(&self) -> Option<&[f32]> {
        match self.finish {
            Finish::AddRow(a) => Some(a),
            _ => None,
        }
    }

    /// Row `o`'s starting value.
    #[inline(always)]
    pub(crate) fn init(&self, o: usize) -> f32 {
        self.start_row().map_or(0.0, |b| b[o])
    }

    /// The stored value of a finished chain `c` whose slot holds `old`.
    #[inline(always)]
    fn finished(&self, o: usize, c: f32, old: f32) -> f32 {
        match self.finish {
            Finish::Store => c,
            Finish::AddRow(a) => c + a[o],
            Finish::Accumulate => old + c,
        }
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The tiers' packing buffer, kept per thread: a conv calls the chains once per reduction
    /// block, and a fresh buffer each time would be allocated and zeroed each time.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's packing buffer, at least `len` long (contents unspecified).
#[cfg(target_arch = "x86_64")]
pub(crate) fn scratch(len: usize) -> Vec<f32> {
    let mut v = SCRATCH.take();
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

/// Hands the buffer from [`scratch`] back for the thread's next call.
#[cfg(target_arch = "x86_64")]
pub(crate) fn return_scratch(v: Vec<f32>) {
    SCRATCH.set(v);
}

/// The definition: each element's chain, one at a time.
pub fn chain_scalar(out: &mut [f32], c: &Chains) {
    let rows = c.check(out.len());
    // The `x` elements every row reads, formed once (a patch element costs index arithmetic).
    let x: Vec<f32> =
        c.ks.iter()
            .flat_map(|&k| (c.p0..c.p0 + c.n).map(move |p| c.x.value(k, p)))
            .collect();
    for o in 0..rows {
        let w = &c.w[o * c.w_stride..];
        for p in 0..c.n {
            let mut a = c.init(o);
            for (i, &k) in c.ks.iter().enumerate() {
                a = w[k].mul_add(x[i * c.n + p], a);
            }
            let slot = &mut out[o * c.n + p];
            *slot = c.finished(o, a, *slot);
        }
    }
}

/// The chains on `tier` (the same floats on every tier).
pub fn chain_on(tier: Isa, out: &mut [f32], c: &Chains) -> Result<(), IsaError> {
    tier.check()?;
    c.check(out.len());
    match tier {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `check` confirmed the host has the tier's features (AVX-512F, resp. AVX2 and
        // FMA) and that every index the chains read is in bounds.
        Isa::Avx512Vnni => unsafe { super::x86::fchain::avx512::chain(out, c) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { super::x86::fchain::avx2::chain(out, c) },
        _ => chain_scalar(out, c),
    }
    Ok(())
}

/// The chains on the selected tier ([`crate::isa::selected`]).
pub fn chain(out: &mut [f32], c: &Chains) {
    chain_on(crate::isa::selected(), out, c).expect("the selected tier is available")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tier packs patches as the definition reads them: a strided, padded 3×3 window over
    /// two channels, positions from the middle of an output row, each start and finish.
    #[test]
    fn tiers_match_the_definition_on_patches() {
        use crate::kernels::patches::Window;
        let window = Window {
            input: [1, 11, 13],
            kernel: [1, 3, 3],
            out: [1, 6, 7],
            stride: [1, 2, 2],
            pad: [0, 1, 1],
            dilation: [1, 1, 1],
        };
        let x: Vec<f32> = (0..2 * 11 * 13).map(|i| (i as f32 * 0.23).sin()).collect();
        let patches = Patches {
            x: &x,
            channels: 2,
            window,
        };
        let (m, k) = (5, patches.rows());
        let w: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.41).cos()).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.25).collect();
        let ks: Vec<usize> = (0..9).flat_map(|t| [t, 9 + t]).collect();
        let (p0, n) = (4, 33);
        for (start, finish) in [
            (Start::Bias(&bias), Finish::Store),
            (Start::Zero, Finish::AddRow(&bias)),
            (Start::Zero, Finish::Accumulate),
        ] {
            let c = Chains {
                n,
                p0,
                start,
                finish,
                w: &w,
                w_stride: k,
                x: Source::Patches(patches),
                ks: &ks,
            };
            let old: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
            let mut want = old.clone();
            chain_scalar(&mut want, &c);
            for tier in crate::isa::ALL.into_iter().filter(|t| t.is_available()) {
                let mut got = old.clone();
                chain_on(tier, &mut got, &c).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{tier} {finish:?}");
            }
        }
    }

    /// Every available tier equals the definition bit for bit, on rows and positions that leave
    /// partial tiles, with each start and finish.
    #[test]
    fn tiers_match_the_definition() {
        let (m, k, n) = (7, 11, 141);
        let w: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos() * 3.0).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5 - 1.0).collect();
        let ks = [4, 0, 2, 1, 3, 10, 7];
        let old: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.7).sin()).collect();
        for start in [Start::Zero, Start::Bias(&bias)] {
            for finish in [Finish::Store, Finish::AddRow(&bias), Finish::Accumulate] {
                let c = Chains {
                    n,
                    p0: 0,
                    start,
                    finish,
                    w: &w,
                    w_stride: k,
                    x: Source::Rows { x: &x, len: n },
                    ks: &ks,
                };
                let mut want = old.clone();
                chain_scalar(&mut want, &c);
                for tier in crate::isa::ALL.into_iter().filter(|t| t.is_available()) {
                    let mut got = old.clone();
                    chain_on(tier, &mut got, &c).unwrap();
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{tier} {start:?} {finish:?}");
                }
            }
        }
    }
}
