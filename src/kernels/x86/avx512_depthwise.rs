//! AVX-512 chunk kernels of the depthwise conv ([`crate::kernels::depthwise`]): 64 outputs per
//! chunk, for a channel whose weight zero point is 0 (every default qconfig's weights).
//!
//! Design note. A chunk's 64 outputs read 64 consecutive phase-plane bytes per tap, so one zmm
//! load per tap holds a whole chunk's activations. Interleaving the loads of consecutive taps
//! byte by byte (`vpunpck{l,h}bw`) puts each output's activations side by side, which is the
//! operand shape of the dot-product instructions:
//! - pair-saturating (fbgemm's depthwise contract): `vpmaddubsw` of a tap pair is exactly the
//!   reference's saturated i16 pair. It can only have saturated where it returns ±i16 bound, so
//!   the exact products are only formed (to count saturations) for chunks where a lane does;
//! - exact: `vpdpbusd` of four interleaved taps adds all four products to the i32 lane.
//!
//! The interleaves work within 128-bit lanes, so the accumulators hold the outputs permuted; the
//! permutation is undone once per chunk with `vshufi64x2` before the store.

use std::arch::x86_64::*;

/// The operands of one output channel: its phase planes, tap offsets and weights.
pub struct Chunks<'a> {
    pub planes: &'a [u8],
    pub taps: &'a [usize],
    pub w: &'a [i8],
    /// Added to every accumulator (the zero-point corrections).
    pub konst: i32,
}

impl Chunks<'_> {
    /// Panics unless every load of every chunk of `flat` stays within the planes.
    fn check(&self, flat: usize) {
        assert!(flat.is_multiple_of(64) && self.taps.len() == self.w.len());
        let last = self.taps.iter().max().map_or(0, |&t| t + flat);
        assert!(last <= self.planes.len(), "phase planes too short");
    }
}

/// Writes `flat[v]` = the saturated-pair sum of output position `v` plus `konst`, and `sat[v]`
/// = how many of its pairs saturated (taps paired in order, an odd last tap alone); returns
/// whether any pair saturated.
///
/// # Safety
/// The host must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn saturating(c: &Chunks, flat: &mut [i32], sat: &mut [i32]) -> bool {
    c.check(flat.len());
    let mut any = false;
    assert_eq!(sat.len(), flat.len());
    let (bound_hi, bound_lo) = (_mm512_set1_epi16(i16::MAX), _mm512_set1_epi16(i16::MIN));
    for (v, (out, sat)) in flat
        .chunks_exact_mut(64)
        .zip(sat.chunks_exact_mut(64))
        .enumerate()
    {
        let base = v * 64;
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut count = [_mm512_setzero_si512(); 4];
        for (t, w) in c.taps.chunks(2).zip(c.w.chunks(2)) {
            // SAFETY: `check` bounds every load; a lone tap pairs with itself at weight 0.
            let (a, b) = unsafe {
                (
                    load(c.planes, t[0] + base),
                    load(c.planes, t[t.len() - 1] + base),
                )
            };
            let (w0, w1) = (w[0], if t.len() == 2 { w[1] } else { 0 });
            let wp = _mm512_set1_epi16(i16::from_le_bytes([w0 as u8, w1 as u8]));
            for (half, x) in [_mm512_unpacklo_epi8(a, b), _mm512_unpackhi_epi8(a, b)]
                .into_iter()
                .enumerate()
            {
                let p = _mm512_maddubs_epi16(x, wp);
                let bound =
                    _mm512_cmpeq_epi16_mask(p, bound_hi) | _mm512_cmpeq_epi16_mask(p, bound_lo);
                if bound != 0 {
                    let s = saturated_lanes(x, w0, w1);
                    any |= s != 0;
                    let one = _mm512_set1_epi32(1);
                    for (k, part) in [s as u16, (s >> 16) as u16].into_iter().enumerate() {
                        let i = 2 * half + k;
                        count[i] = _mm512_mask_add_epi32(count[i], part, count[i], one);
                    }
                }
                acc[2 * half] = _mm512_add_epi32(acc[2 * half], widen(p, 0));
                acc[2 * half + 1] = _mm512_add_epi32(acc[2 * half + 1], widen(p, 1));
            }
        }
        let k = _mm512_set1_epi32(c.konst);
        for a in &mut acc {
            *a = _mm512_add_epi32(*a, k);
        }
        // SAFETY: both chunks hold 64 lanes.
        unsafe {
            store_pairs(out, acc);
            store_pairs(sat, count);
        }
    }
    any
}

/// Writes `flat[v]` = the exact sum of output position `v`'s products plus `konst`.
///
/// # Safety
/// The host must support AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn exact(c: &Chunks, flat: &mut [i32]) {
    c.check(flat.len());
    for (v, out) in flat.chunks_exact_mut(64).enumerate() {
        let base = v * 64;
        let mut acc = [_mm512_setzero_si512(); 4];
        for (t, w) in c.taps.chunks(4).zip(c.w.chunks(4)) {
            // A short last group repeats its first tap at weight 0. (Loops, not closures: a
            // closure would not inherit this function's target features.)
            let (mut x, mut wq) = ([_mm512_setzero_si512(); 4], [0u8; 4]);
            for i in 0..4 {
                // SAFETY: `check` bounds every load.
                x[i] = unsafe { load(c.planes, t.get(i).copied().unwrap_or(t[0]) + base) };
                wq[i] = w.get(i).copied().unwrap_or(0) as u8;
            }
            let wq = _mm512_set1_epi32(i32::from_le_bytes(wq));
            let ab = [
                _mm512_unpacklo_epi8(x[0], x[1]),
                _mm512_unpackhi_epi8(x[0], x[1]),
            ];
            let cd = [
                _mm512_unpacklo_epi8(x[2], x[3]),
                _mm512_unpackhi_epi8(x[2], x[3]),
            ];
            for h in 0..2 {
                let lo = _mm512_unpacklo_epi16(ab[h], cd[h]);
                let hi = _mm512_unpackhi_epi16(ab[h], cd[h]);
                acc[2 * h] = _mm512_dpbusd_epi32(acc[2 * h], lo, wq);
                acc[2 * h + 1] = _mm512_dpbusd_epi32(acc[2 * h + 1], hi, wq);
            }
        }
        let k = _mm512_set1_epi32(c.konst);
        for a in &mut acc {
            *a = _mm512_add_epi32(*a, k);
        }
        let [q0, q1, q2, q3] = acc;
        // acc[q] holds outputs 16j + 4q .. 16j + 4q + 3 in its 128-bit lane j: a 4×4 transpose
        // of 128-bit blocks restores the order.
        let (t0, t1) = (
            _mm512_shuffle_i64x2(q0, q1, 0x44),
            _mm512_shuffle_i64x2(q2, q3, 0x44),
        );
        let (t2, t3) = (
            _mm512_shuffle_i64x2(q0, q1, 0xEE),
            _mm512_shuffle_i64x2(q2, q3, 0xEE),
        );
        let rows = [
            _mm512_shuffle_i64x2(t0, t1, 0x88),
            _mm512_shuffle_i64x2(t0, t1, 0xDD),
            _mm512_shuffle_i64x2(t2, t3, 0x88),
            _mm512_shuffle_i64x2(t2, t3, 0xDD),
        ];
        for (o, r) in out.chunks_exact_mut(16).zip(rows) {
            // SAFETY: `o` holds 16 i32.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), r) };
        }
    }
}

/// 64 bytes of `planes` from `at`.
///
/// # Safety
/// `at + 64 <= planes.len()`.
#[inline(always)]
unsafe fn load(planes: &[u8], at: usize) -> __m512i {
    debug_assert!(at + 64 <= planes.len());
    // SAFETY: forwarded from the contract.
    unsafe { _mm512_loadu_si512(planes.as_ptr().add(at).cast()) }
}

/// The i16 lanes of `p` from 256-bit half `half`, sign-extended to i32.
#[inline(always)]
fn widen(p: __m512i, half: i32) -> __m512i {
    // SAFETY (both arms): the caller runs with AVX-512 F/BW enabled.
    unsafe {
        if half == 0 {
            _mm512_cvtepi16_epi32(_mm512_castsi512_si256(p))
        } else {
            _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(p, 1))
        }
    }
}

/// Which i16 lanes of the interleaved byte pairs `x` saturate `x.lo·w0 + x.hi·w1`: each product
/// fits i16, so the pair saturated exactly where the saturating and wrapping sums differ.
#[inline(always)]
fn saturated_lanes(x: __m512i, w0: i8, w1: i8) -> u32 {
    // SAFETY: the caller runs with AVX-512 F/BW enabled.
    unsafe {
        let a = _mm512_and_si512(x, _mm512_set1_epi16(0xFF));
        let b = _mm512_srli_epi16(x, 8);
        let pa = _mm512_mullo_epi16(a, _mm512_set1_epi16(w0 as i16));
        let pb = _mm512_mullo_epi16(b, _mm512_set1_epi16(w1 as i16));
        _mm512_cmpneq_epi16_mask(_mm512_adds_epi16(pa, pb), _mm512_add_epi16(pa, pb))
    }
}

/// Stores the four pair accumulators of a chunk in output order: `acc[2h + k]` holds the i16
/// lanes of 256-bit half `k` of the `vpunpck{l,h}bw` half `h` (`h` = 0: low), i.e. outputs
/// `32k + 16j + 8h .. +7` in its 128-bit lanes `2j, 2j + 1`.
///
/// # Safety
/// `out` holds at least 64 i32.
#[inline(always)]
unsafe fn store_pairs(out: &mut [i32], acc: [__m512i; 4]) {
    assert!(out.len() >= 64);
    let [l0, l1, h0, h1] = acc;
    // SAFETY: 64 lanes checked above; AVX-512 F enabled by the caller.
    unsafe {
        let rows = [
            _mm512_shuffle_i64x2(l0, h0, 0x44),
            _mm512_shuffle_i64x2(l0, h0, 0xEE),
            _mm512_shuffle_i64x2(l1, h1, 0x44),
            _mm512_shuffle_i64x2(l1, h1, 0xEE),
        ];
        for (i, r) in rows.into_iter().enumerate() {
            _mm512_storeu_si512(out.as_mut_ptr().add(16 * i).cast(), r);
        }
    }
}
