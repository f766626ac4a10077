//! AVX-512 chunk kernels of the depthwise conv ([`crate::kernels::conv::depthwise`]): 64 outputs
//! per chunk, for a channel whose weight zero point is 0 (every default qconfig's weights).
//!
//! Design note. A chunk's 64 outputs read 64 consecutive phase-plane bytes per tap, so one zmm
//! load per tap holds a whole chunk's activations. Interleaving the loads of four consecutive
//! taps byte by byte (`vpunpck{l,h}bw`, then `vpunpck{l,h}wd`) puts each output's four
//! activations in one i32 lane, the operand shape of the dot-product instructions:
//! - exact: `vpdpbusd` adds all four products to the lane;
//! - pair-saturating (fbgemm's depthwise contract, taps paired in order): `vpmaddubsw` gives the
//!   lane's two tap pairs exactly as the reference's saturated i16 pairs, and `vpdpwssd` with
//!   ones adds both to the i32 accumulator. A pair can only have saturated where it is an i16
//!   bound, so the exact products are only formed (to count saturations) where a lane is.
//!
//! A short last group repeats its first tap at weight 0, which adds exactly 0 and leaves an odd
//! last tap alone in its pair, as the reference does.
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
/// The host must support AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn saturating(c: &Chunks, flat: &mut [i32], sat: &mut [i32]) -> bool {
    c.check(flat.len());
    assert_eq!(sat.len(), flat.len());
    let mut any = false;
    let (bound_hi, bound_lo) = (_mm512_set1_epi16(i16::MAX), _mm512_set1_epi16(i16::MIN));
    let (ones, minus) = (_mm512_set1_epi16(1), _mm512_set1_epi16(-1));
    for (v, (out, sat)) in flat
        .chunks_exact_mut(64)
        .zip(sat.chunks_exact_mut(64))
        .enumerate()
    {
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut count = [_mm512_setzero_si512(); 4];
        for (t, w) in c.taps.chunks(4).zip(c.w.chunks(4)) {
            // SAFETY: `check` bounds every load.
            let (x, wq) = unsafe { quads(c.planes, t, w, v * 64) };
            let wv = _mm512_set1_epi32(i32::from_le_bytes(wq.map(|b| b as u8)));
            for q in 0..4 {
                let p = _mm512_maddubs_epi16(x[q], wv);
                let bound =
                    _mm512_cmpeq_epi16_mask(p, bound_hi) | _mm512_cmpeq_epi16_mask(p, bound_lo);
                if bound != 0 {
                    let s = saturated_lanes(x[q], wq);
                    any |= s != 0;
                    // −1 in each saturated i16 lane; `vpmaddwd` by −1 counts them per i32 lane.
                    let flags = _mm512_movm_epi16(s);
                    count[q] = _mm512_add_epi32(count[q], _mm512_madd_epi16(flags, minus));
                }
                acc[q] = _mm512_dpwssd_epi32(acc[q], p, ones);
            }
        }
        let k = _mm512_set1_epi32(c.konst);
        for a in &mut acc {
            *a = _mm512_add_epi32(*a, k);
        }
        // SAFETY: both chunks hold 64 lanes.
        unsafe {
            store_quads(out, acc);
            store_quads(sat, count);
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
        let mut acc = [_mm512_setzero_si512(); 4];
        for (t, w) in c.taps.chunks(4).zip(c.w.chunks(4)) {
            // SAFETY: `check` bounds every load.
            let (x, wq) = unsafe { quads(c.planes, t, w, v * 64) };
            let wv = _mm512_set1_epi32(i32::from_le_bytes(wq.map(|b| b as u8)));
            for q in 0..4 {
                acc[q] = _mm512_dpbusd_epi32(acc[q], x[q], wv);
            }
        }
        let k = _mm512_set1_epi32(c.konst);
        for a in &mut acc {
            *a = _mm512_add_epi32(*a, k);
        }
        // SAFETY: `out` holds 64 lanes.
        unsafe { store_quads(out, acc) };
    }
}

/// The activations of up to four taps `t` (weights `w`) for the chunk at `base`, interleaved so
/// that i32 lane `j` of `x[q]`, in 128-bit lane `l`, holds output `16l + 4q + j`'s four bytes;
/// and the four weights, 0 past a short group (whose missing taps repeat its first).
///
/// # Safety
/// Every `t + base + 64` is within `planes`; the caller has AVX-512 F/BW enabled.
#[inline(always)]
unsafe fn quads(planes: &[u8], t: &[usize], w: &[i8], base: usize) -> ([__m512i; 4], [i8; 4]) {
    // Loops, not closures: a closure would not inherit the caller's target features.
    // SAFETY: AVX-512 F by the contract.
    let (mut b, mut wq) = (unsafe { [_mm512_setzero_si512(); 4] }, [0i8; 4]);
    for i in 0..4 {
        // SAFETY: forwarded from the contract.
        b[i] = unsafe { load(planes, t.get(i).copied().unwrap_or(t[0]) + base) };
        wq[i] = w.get(i).copied().unwrap_or(0);
    }
    // SAFETY: AVX-512 BW by the contract.
    unsafe {
        let ab = [
            _mm512_unpacklo_epi8(b[0], b[1]),
            _mm512_unpackhi_epi8(b[0], b[1]),
        ];
        let cd = [
            _mm512_unpacklo_epi8(b[2], b[3]),
            _mm512_unpackhi_epi8(b[2], b[3]),
        ];
        let x = [
            _mm512_unpacklo_epi16(ab[0], cd[0]),
            _mm512_unpackhi_epi16(ab[0], cd[0]),
            _mm512_unpacklo_epi16(ab[1], cd[1]),
            _mm512_unpackhi_epi16(ab[1], cd[1]),
        ];
        (x, wq)
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

/// Which i16 lanes of the interleaved quads `x` saturate their pair: even lanes hold the bytes
/// of taps 0 and 1 (weights `w[0]`, `w[1]`), odd lanes those of taps 2 and 3. Each product fits
/// i16, so a pair saturated exactly where the saturating and wrapping sums differ.
#[inline(always)]
fn saturated_lanes(x: __m512i, w: [i8; 4]) -> u32 {
    let pattern = |even: i8, odd: i8| (even as i16 as u16 as i32) | ((odd as i16 as i32) << 16);
    // SAFETY: the caller runs with AVX-512 F/BW enabled.
    unsafe {
        let a = _mm512_and_si512(x, _mm512_set1_epi16(0xFF));
        let b = _mm512_srli_epi16(x, 8);
        let pa = _mm512_mullo_epi16(a, _mm512_set1_epi32(pattern(w[0], w[2])));
        let pb = _mm512_mullo_epi16(b, _mm512_set1_epi32(pattern(w[1], w[3])));
        _mm512_cmpneq_epi16_mask(_mm512_adds_epi16(pa, pb), _mm512_add_epi16(pa, pb))
    }
}

/// Stores a chunk's four quad accumulators in output order: `acc[q]` holds outputs
/// `16l + 4q .. 16l + 4q + 3` in its 128-bit lane `l`, so a 4×4 transpose of 128-bit blocks
/// restores the order.
///
/// # Safety
/// `out` holds at least 64 i32; the caller has AVX-512 F enabled.
#[inline(always)]
unsafe fn store_quads(out: &mut [i32], acc: [__m512i; 4]) {
    assert!(out.len() >= 64);
    let [q0, q1, q2, q3] = acc;
    // SAFETY: 64 lanes checked above; AVX-512 F by the contract.
    unsafe {
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
        for (i, r) in rows.into_iter().enumerate() {
            _mm512_storeu_si512(out.as_mut_ptr().add(16 * i).cast(), r);
        }
    }
}
