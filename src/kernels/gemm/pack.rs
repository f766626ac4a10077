//! The weight side of the GEMM: panel packing and the per-weight cache of packed panels.
//!
//! Packing is split from the driver because its cost is paid once per weight (a module keeps
//! its [`PackCache`]) while the driver runs per call; the panel layout itself is described in
//! the `gemm` module note.

use super::GemmWeights;
use crate::isa::Isa;
use crate::kernels::reference::PairBound;
use std::fmt;
use std::sync::OnceLock;

/// Packed panels of one weight, per panel width, built on first use.
///
/// Equality ignores the contents: the panels are a pure function of the weight they belong to.
#[derive(Clone, Default)]
pub struct PackCache {
    /// Indexed by [`super::micro::MicroKernel::SLOT`]: 8-column panels (AVX2, NEON, dotprod),
    /// 32-column panels (AVX-512, AVX-VNNI), 16-column panels (AVX2's bounded-pair tile).
    pub(super) slots: [OnceLock<Box<Panels>>; 3],
    /// [`GemmWeights::pair_bound`].
    pub(super) pair_bound: OnceLock<PairBound>,
}

impl PartialEq for PackCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for PackCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built: Vec<usize> = self
            .slots
            .iter()
            .filter_map(|s| s.get().map(|p| p.nr))
            .collect();
        write!(f, "PackCache{built:?}")
    }
}

/// A weight packed into `NR`-column panels (see the `gemm` module note).
#[derive(Clone)]
pub(super) struct Panels {
    pub(super) nr: usize,
    /// Columns and depth of the operand.
    pub(super) n: usize,
    pub(super) k: usize,
    /// K rounded up to a multiple of 4.
    pub(super) kp: usize,
    pub(super) data: Vec<i8>,
    /// `Σ_k w[c,k]` per column.
    pub(super) colsum: Vec<i32>,
}

impl Panels {
    pub(super) fn new(w: &GemmWeights, nr: usize) -> Panels {
        let (n, k) = (w.n, w.k);
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(nr);
        let mut data = vec![0i8; blocks * kp * nr];
        for c in 0..n {
            let (block, col) = (c / nr, c % nr);
            let row = &w.data[c * k..(c + 1) * k];
            for (kk, &v) in row.iter().enumerate() {
                data[block * kp * nr + (kk / 4) * nr * 4 + col * 4 + kk % 4] = v;
            }
        }
        let colsum = (0..n)
            .map(|c| w.data[c * k..(c + 1) * k].iter().map(|&v| v as i32).sum())
            .collect();
        Panels {
            nr,
            n,
            k,
            kp,
            data,
            colsum,
        }
    }

    /// Panels of the s8 operand `b[kk, c] − 128` for a u8 `b` stored k-major (`[k, n]`, the
    /// channels × positions layout of an NCHW activation): XOR 0x80 is that shift, bytewise.
    /// Four rows at a time are interleaved into the panels' 4-byte column groups (16 columns at
    /// a time by SSE2 unpacks on x86-64, one u32 per column otherwise and for the tails); rows
    /// past `k` read as zero weights.
    ///
    /// Compiled for the wider vectors of `tier` where it has them (the column sums' widening
    /// adds dominate the pass; the bytes and sums are the same on every tier).
    pub(super) fn from_kmajor_u8(tier: Isa, b: &[u8], n: usize, k: usize, nr: usize) -> Panels {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            fn avx2(b: &[u8], n: usize, k: usize, nr: usize) -> Panels {
                Panels::kmajor_body(b, n, k, nr)
            }
            #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
            fn avx512(b: &[u8], n: usize, k: usize, nr: usize) -> Panels {
                Panels::kmajor_body(b, n, k, nr)
            }
            if tier.is_available() {
                match tier {
                    // SAFETY (both): the host has the tier, which includes these features.
                    Isa::Avx2 | Isa::AvxVnni => return unsafe { avx2(b, n, k, nr) },
                    Isa::Avx512Vnni => return unsafe { avx512(b, n, k, nr) },
                    _ => {}
                }
            }
        }
        let _ = tier;
        Panels::kmajor_body(b, n, k, nr)
    }

    #[inline(always)]
    fn kmajor_body(b: &[u8], n: usize, k: usize, nr: usize) -> Panels {
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(nr);
        let mut data = vec![0i8; blocks * kp * nr];
        let mut colsum = vec![0i32; n];
        // A padding row: 0x80 flips to the zero weight.
        let pad = vec![0x80u8; n];
        for g in 0..kp / 4 {
            let rows: [&[u8]; 4] = std::array::from_fn(|q| {
                b.get((4 * g + q) * n..(4 * g + q + 1) * n)
                    .filter(|_| 4 * g + q < k)
                    .unwrap_or(&pad)
            });
            // One pass per group: a padding row adds 0x80 − 128 = 0.
            let [r0, r1, r2, r3] = rows;
            for ((((s, &x0), &x1), &x2), &x3) in colsum.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                *s += x0 as i32 + x1 as i32 + x2 as i32 + x3 as i32 - 512;
            }
            for block in 0..blocks {
                let c0 = block * nr;
                let cols = nr.min(n - c0);
                let dst = &mut data[block * kp * nr + g * nr * 4..][..cols * 4];
                let rows = rows.map(|r| &r[c0..c0 + cols]);
                #[cfg(target_arch = "x86_64")]
                let done = crate::kernels::x86::sse2_pack::interleave4(rows, dst);
                #[cfg(not(target_arch = "x86_64"))]
                let done = 0;
                let [r0, r1, r2, r3] = rows.map(|r| &r[done..]);
                for ((((d, &x0), &x1), &x2), &x3) in dst[done * 4..]
                    .chunks_exact_mut(4)
                    .zip(r0)
                    .zip(r1)
                    .zip(r2)
                    .zip(r3)
                {
                    let word = u32::from_le_bytes([x0, x1, x2, x3]) ^ 0x8080_8080;
                    d.copy_from_slice(&word.to_le_bytes().map(|v| v as i8));
                }
            }
        }
        Panels {
            nr,
            n,
            k,
            kp,
            data,
            colsum,
        }
    }
}
