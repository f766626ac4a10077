//! AVX-512 and AVX2 tiers of [`crate::kernels::fchain`]: register tiles of `ROWS` output rows
//! by `VECTORS` vectors of positions, each lane one element's fused multiply-add chain over
//! `ks` (so the lanes reproduce [`crate::kernels::fchain::chain_scalar`] exactly). Per `k` a
//! tile loads `VECTORS` vectors of `x`, broadcasts `ROWS` weights and issues `ROWS·VECTORS`
//! FMAs, enough independent chains to cover the FMA latency on both tiers. The last vector of a
//! row's positions is loaded and stored masked, so no position needs scalar code. Positions
//! run in column blocks whose `x` rows stay in cache while every row tile passes over them.
//!
//! Both tiers are one body (`fchain_tier!`) over a few per-tier primitives.

macro_rules! fchain_tier {
    (
        $(#[$doc:meta])*
        mod $tier:ident {
            features: $feat:literal,
            lanes: $lanes:literal,
            rows: $rows:literal [$($r:literal),*],
            vectors: $vectors:literal [$($v:literal),*],
            $($prims:item)*
        }
    ) => {
        $(#[$doc])*
        pub mod $tier {
            use crate::kernels::fchain::{Chains, Finish};
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;
            const ROWS: usize = $rows;
            const VECTORS: usize = $vectors;
            /// Bytes of packed `x` a column block aims at: what L1 holds beside the weights.
            const PACKED_BYTES: usize = 32 * 1024;

            $($prims)*

            /// [`crate::kernels::fchain::chain_scalar`] on this tier.
            ///
            /// # Safety
            /// The host must have this tier's features, and `c` must have passed
            /// `Chains::check` for `out` (every index it reads in bounds).
            #[target_feature(enable = $feat)]
            pub unsafe fn chain(out: &mut [f32], c: &Chains) {
                let n = c.n;
                let rows = out.len() / n.max(1);
                let dst = out.as_mut_ptr();
                let tile_width = VECTORS * LANES;
                // Columns per block: whole tiles whose packed rows fit the L1 budget (at
                // least one tile: long reductions then stream from L2, sequentially).
                let block = (PACKED_BYTES / (4 * c.ks.len().max(1)) / tile_width).max(1)
                    * tile_width;
                let mut packed = crate::kernels::fchain::scratch(c.ks.len() * block);
                for c0 in (0..n).step_by(block) {
                    let width = block.min(n - c0);
                    // The block's `x` rows, in `ks` order, contiguous: every row tile then
                    // reads one sequential stream instead of |ks| rows scattered `n` apart.
                    c.x.pack(c.ks, c.p0 + c0, width, &mut packed, block);
                    let mut o0 = 0;
                    while o0 < rows {
                        let r = (rows - o0).min(ROWS);
                        let mut p = 0;
                        while p < width {
                            let take = (width - p).min(tile_width);
                            let v = take.div_ceil(LANES);
                            let last = mask_of(take - (v - 1) * LANES);
                            let at = Tile {
                                dst,
                                o0,
                                p: c0 + p,
                                x: packed[p..].as_ptr(),
                                x_stride: block,
                                last,
                            };
                            // SAFETY: rows `o0..o0 + r` and positions `c0 + p..c0 + p + take`
                            // are in `out`; packed rows hold `take` columns from `p`; the
                            // caller's check covers `w`.
                            unsafe {
                                match r {
                                    $($r => tile_rows::<$r>(v, c, at),)*
                                    _ => tile_rows::<ROWS>(v, c, at),
                                }
                            }
                            p += take;
                        }
                        o0 += r;
                    }
                }
                crate::kernels::fchain::return_scratch(packed);
            }

            /// Where a tile reads and lands: `out`'s base, its first row and position, its
            /// packed `x` (row `i` of `ks` at `x + i·x_stride`) and the mask of its last vector.
            #[derive(Clone, Copy)]
            struct Tile {
                dst: *mut f32,
                o0: usize,
                p: usize,
                x: *const f32,
                x_stride: usize,
                last: Mask,
            }

            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn tile_rows<const R: usize>(v: usize, c: &Chains, at: Tile) {
                // SAFETY: forwarded from `chain`.
                unsafe {
                    match v {
                        $($v => tile::<R, $v>(c, at),)*
                        _ => tile::<R, VECTORS>(c, at),
                    }
                }
            }

            /// One register tile: rows `o0..o0 + R` by `V` vectors of positions from `p`.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn tile<const R: usize, const V: usize>(c: &Chains, at: Tile) {
                let Tile { dst, o0, p, x, x_stride, last } = at;
                let n = c.n;
                let mask = |j: usize| if j + 1 == V { last } else { mask_of(LANES) };
                let mut acc: [[Vector; V]; R] = std::array::from_fn(|i| [splat(c.init(o0 + i)); V]);
                // SAFETY: the packed rows hold the tile's columns, `Chains::check` bounds
                // every weight `(o0 + i)·w_stride + k`; masked-off lanes are neither read nor
                // written.
                unsafe {
                    let w = c.w.as_ptr().add(o0 * c.w_stride);
                    for (ki, &k) in c.ks.iter().enumerate() {
                        let row = x.add(ki * x_stride);
                        let mut xv = [zero(); V];
                        for (j, v) in xv.iter_mut().enumerate() {
                            *v = load(row.add(j * LANES), mask(j));
                        }
                        for (i, acc_row) in acc.iter_mut().enumerate() {
                            let wv = splat(*w.add(i * c.w_stride + k));
                            for (a, &xj) in acc_row.iter_mut().zip(&xv) {
                                *a = fma(wv, xj, *a);
                            }
                        }
                    }
                    // A copy for the finishing loop, which indexes it at run time: `acc` itself
                    // then stays in registers through the k loop instead of being written
                    // back to the stack on every step.
                    let done = acc;
                    for (i, acc_row) in done.iter().enumerate() {
                        let o = o0 + i;
                        let out = dst.add(o * n + p);
                        for (j, &a) in acc_row.iter().enumerate() {
                            let m = mask(j);
                            let value = match c.finish {
                                Finish::Store => a,
                                Finish::AddRow(add) => sum(a, splat(add[o])),
                                Finish::Accumulate => sum(load(out.add(j * LANES), m), a),
                            };
                            store(out.add(j * LANES), m, value);
                        }
                    }
                }
            }
        }
    };
}

fchain_tier! {
    /// AVX-512F: 6 rows by 4 zmm (64 positions), 24 accumulators of the 32 registers, 4 `x`
    /// vectors and the broadcast weights in the rest. Chosen by editing `rows` / `vectors` and
    /// running `cargo bench --bench float_conv -- fchain` (development host, 2026-12-07): 8 by
    /// 3 spilled registers and ran 104 GFLOPS against this tile's 116.
    mod avx512 {
        features: "avx512f",
        lanes: 16,
        rows: 6 [1, 2, 3, 4, 5],
        vectors: 4 [1, 2, 3],

        type Mask = __mmask16;
        type Vector = __m512;

        #[inline(always)]
        fn mask_of(lanes: usize) -> Mask {
            if lanes >= 16 { !0 } else { (1u16 << lanes) - 1 }
        }

        #[target_feature(enable = "avx512f")]
        #[inline]
        fn zero() -> __m512 {
            _mm512_setzero_ps()
        }

        #[target_feature(enable = "avx512f")]
        #[inline]
        fn splat(v: f32) -> __m512 {
            _mm512_set1_ps(v)
        }

        #[target_feature(enable = "avx512f")]
        #[inline]
        fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }

        #[target_feature(enable = "avx512f")]
        #[inline]
        fn sum(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }

        /// # Safety
        /// The enabled lanes of `p` must be readable.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn load(p: *const f32, m: Mask) -> __m512 {
            // SAFETY: the caller's contract.
            unsafe { _mm512_maskz_loadu_ps(m, p) }
        }

        /// # Safety
        /// The enabled lanes of `p` must be writable.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn store(p: *mut f32, m: Mask, v: __m512) {
            // SAFETY: the caller's contract.
            unsafe { _mm512_mask_storeu_ps(p, m, v) }
        }
    }
}

fchain_tier! {
    /// AVX2 + FMA: 4 rows by 2 ymm (16 positions), 8 accumulators, 2 `x` vectors and 4
    /// broadcast weights within the 16 registers. Chosen the same way: 77 GFLOPS against 64
    /// for 4 by 3 and 69 for 2 by 4.
    mod avx2 {
        features: "avx2,fma",
        lanes: 8,
        rows: 4 [1, 2, 3],
        vectors: 2 [1],

        /// Lanes `0..n` enabled: `n` itself, turned into a lane mask where it is used (a
        /// `__m256i` cannot be built outside a `target_feature` function).
        type Mask = usize;
        type Vector = __m256;

        #[inline(always)]
        fn mask_of(lanes: usize) -> Mask {
            lanes.min(8)
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn lanes(m: Mask) -> __m256i {
            _mm256_cmpgt_epi32(_mm256_set1_epi32(m as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn zero() -> __m256 {
            _mm256_setzero_ps()
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn splat(v: f32) -> __m256 {
            _mm256_set1_ps(v)
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn sum(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }

        /// # Safety
        /// The enabled lanes of `p` must be readable.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn load(p: *const f32, m: Mask) -> __m256 {
            // SAFETY: the caller's contract; a whole vector needs no mask.
            unsafe {
                if m == 8 {
                    _mm256_loadu_ps(p)
                } else {
                    _mm256_maskload_ps(p, lanes(m))
                }
            }
        }

        /// # Safety
        /// The enabled lanes of `p` must be writable.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn store(p: *mut f32, m: Mask, v: __m256) {
            // SAFETY: the caller's contract.
            unsafe {
                if m == 8 {
                    _mm256_storeu_ps(p, v)
                } else {
                    _mm256_maskstore_ps(p, lanes(m), v)
                }
            }
        }
    }
}
