//! The summation order of PyTorch's float convolution on x86 CPUs (oneDNN's AVX-512 f32
//! kernels), reproduced so that calibration observes the float activations PyTorch observes,
//! bit for bit, and derives the same qparams.
//!
//! Every output element is a chain of fused multiply-adds in a fixed order; what differs by
//! kernel is the order and where the bias enters (measured against PyTorch 2.15 on random
//! shapes, 0 mismatching elements in every case; the block sizes follow oneDNN's
//! `init_conf` heuristics):
//! * **depthwise** (one input and one output channel per group, `jit_dw`): the chain starts at
//!   the bias and runs over the taps in kernel order.
//! * **pointwise** (1×1, no padding, one group, `jit_1x1`; a strided one reads its input
//!   subsampled first): the input channels are cut
//!   into reduce blocks ([`pointwise_reduce_block`]); the first block's chain starts at the
//!   bias, every later block is a fresh chain added to the running sum.
//! * **everything else** (`jit` direct): input channels in blocks of 16; each block is a fresh
//!   chain over (tap, channel) in kernel order; the bias is added to the first block's sum and
//!   every later block's sum is added to the running total.
//!
//! The products are fused (one rounding per tap), so results do not depend on the vector width
//! or the ISA tier; they do depend on the block sizes, which are fixed here the way oneDNN
//! fixes them for a host with AVX-512 (the kernels PyTorch's x86 builds run on such hosts).

/// oneDNN's channel block for f32 on AVX-512.
pub(super) const SIMD: usize = 16;

/// oneDNN's `best_divider`: the divider of `value` in `[lo, hi]` wasting the least when
/// `value` is rounded up to a multiple of it (ties to the largest, scanning downwards).
fn best_divider(value: usize, lo: usize, hi: usize) -> usize {
    let hi = hi.min(value).max(1);
    let lo = lo.min(hi).max(1);
    let loss = |d: usize| {
        let up = value.div_ceil(d) * d;
        (up - value) as f32 / up as f32
    };
    let mut best = (f32::MAX, hi);
    for d in (lo..=hi).rev() {
        let l = loss(d);
        if l < best.0 {
            best = (l, d);
        }
    }
    best.1
}

/// The shape facts the pointwise kernel's blocking depends on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pointwise {
    /// Input and output channels (oneDNN pads both to 16).
    pub ic: usize,
    pub oc: usize,
    /// Output depth × height (oneDNN's "spatial" for the heuristics).
    pub spatial: usize,
    /// Output (= input) elements per channel.
    pub os: usize,
    /// Batch and the thread count the reference runs with.
    pub mb: usize,
    pub nthr: usize,
}

/// How many input channels one reduce block of the pointwise kernel sums (oneDNN's
/// `reduce_blocking` for forward f32 on AVX-512, blocked layout).
pub(super) fn pointwise_reduce_block(p: Pointwise) -> usize {
    const SMALL_SPATIAL: usize = 10;
    const BIG_SPATIAL: usize = 28;
    const BIG_REDUCE_DIM: usize = 1024;
    const BIG_LOAD_DIM: usize = 256;
    let ic = p.ic.div_ceil(SIMD) * SIMD;
    let oc = p.oc.div_ceil(SIMD) * SIMD;
    let mid_spatial = p.spatial > SMALL_SPATIAL && p.spatial < BIG_SPATIAL;
    // Explicit broadcast when every thread has at least an eighth of an image.
    let explicit = 8 * p.mb / p.nthr.max(1) >= 1;
    let (max_regs, min_regs) = match explicit {
        true if oc > 128 && oc < BIG_LOAD_DIM && mid_spatial => (6, 5),
        true => (9, 6),
        false => (30, 9),
    };
    let mut block = if explicit {
        if oc <= BIG_LOAD_DIM && mid_spatial {
            ic.min(80)
        } else if p.spatial > SMALL_SPATIAL {
            ic.min(512)
        } else {
            ic.min(256)
        }
    } else {
        let nb = ic / SIMD;
        let cap = match (p.spatial <= SMALL_SPATIAL, ic >= BIG_REDUCE_DIM) {
            (true, true) => 16,
            (false, true) => 8,
            _ => nb,
        };
        best_divider(nb, 1, cap) * SIMD
    };
    // The register blocking along the output positions, which the cache check below reads.
    const THRESHOLD: usize = 14;
    let divides = |u: usize| {
        (p.spatial >= THRESHOLD && p.spatial.is_multiple_of(u))
            || (p.spatial < THRESHOLD && p.os.is_multiple_of(u))
    };
    let ur = (min_regs..=max_regs)
        .rev()
        .find(|&u| divides(u))
        .unwrap_or_else(|| {
            let mut ur = max_regs.min(p.os);
            let mut tail = p.os % max_regs;
            for i in (min_regs..=max_regs).rev() {
                let t = p.os % i;
                if t > tail || t == 0 {
                    ur = i;
                    tail = t;
                    if t == 0 {
                        break;
                    }
                }
            }
            ur
        });
    // Cache-set aliasing of the input: shrink the block when too many of the rows one
    // register block reads map to the same set of a 64 KiB way.
    const WAY: usize = 64 * 1024 / 4;
    const MAX_HITS: usize = 7;
    let sp = p.os;
    if sp * block > WAY * MAX_HITS {
        let rows = block / SIMD;
        let step = WAY / SIMD;
        for start in 0..ur {
            let mut hits = 0;
            let mut off = start;
            while off < sp * rows {
                if off % sp < ur {
                    hits += 1;
                    if hits >= MAX_HITS {
                        block = block.min(SIMD * ((off + step) / sp).max(1));
                        break;
                    }
                }
                off += step;
            }
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(ic: usize, oc: usize, hw: usize) -> usize {
        pointwise_reduce_block(Pointwise {
            ic,
            oc,
            spatial: hw,
            os: hw * hw,
            mb: 4,
            nthr: 2,
        })
    }

    /// The reduce blocks measured against PyTorch 2.15 (2 threads, batch 2 and 4): 80 at
    /// 14×14 with at most 256 output channels, the whole input padded to 16 (up to 512) from 28
    /// rows up, 256 at 7×7.
    #[test]
    fn pointwise_blocks_match_the_measured_ones() {
        assert_eq!(pw(576, 96, 14), 80);
        assert_eq!(pw(240, 80, 14), 80);
        assert_eq!(pw(672, 112, 14), 80);
        assert_eq!(pw(240, 40, 28), 240);
        assert_eq!(pw(120, 40, 28), 128);
        assert_eq!(pw(960, 160, 7), 256);
        assert_eq!(pw(2048, 16, 7), 256);
        assert_eq!(pw(72, 24, 56), 80);
        assert_eq!(pw(24, 24, 28), 32);
    }

    #[test]
    fn best_divider_prefers_exact_then_large() {
        assert_eq!(best_divider(12, 1, 8), 6);
        assert_eq!(best_divider(7, 1, 16), 7);
        assert_eq!(best_divider(9, 1, 4), 3);
    }
}
