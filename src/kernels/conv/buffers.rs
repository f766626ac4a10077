//! Buffer helpers the conv kernels share: growing reused per-thread scratch to size, and
//! strided byte gathers specialised for the common strides. Kept out of the reference conv so
//! the fast kernels do not depend on it for plumbing.

/// The first `len` elements of `v`, grown if needed.
pub(super) fn sized<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

/// `dst[j] = src[j·s]` for every `j` of `dst`.
#[inline(always)]
pub(super) fn gather(dst: &mut [u8], src: &[u8], s: usize) {
    // A constant stride lets the compiler vectorise the gather as loads and byte shuffles: with
    // a strided iterator, MobileNet's stride-2 convs spent more time gathering than in their taps
    // (depthwise phase planes and the k-major im2col of its stem conv alike).
    match s {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        2 => strided::<2>(dst, src),
        3 => strided::<3>(dst, src),
        _ => {
            for (d, &v) in dst.iter_mut().zip(src.iter().step_by(s)) {
                *d = v;
            }
        }
    }
}

/// [`gather`] on a host with AVX-512 BW: stride 2 keeps the low byte of each 16-bit lane of 64
/// loaded bytes (`vpmovwb`), 32 bytes per step where the compiler's vectorisation of
/// [`strided`] moves 8 (a stride-2 depthwise conv's phase planes spent twice its taps' time
/// being gathered); the tail and the other strides as [`gather`].
///
/// # Safety
/// The host must support AVX-512 F, BW and VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn gather_avx512(dst: &mut [u8], src: &[u8], s: usize) {
    use std::arch::x86_64::*;
    if s != 2 {
        return gather(dst, src, s);
    }
    // `dst[j] = src[2j]` needs 2·len − 1 source bytes; the caller's rows have them.
    assert!(dst.is_empty() || 2 * dst.len() - 1 <= src.len());
    for j in (0..dst.len()).step_by(32) {
        let out = (dst.len() - j).min(32);
        let read = (src.len() - 2 * j).min(64);
        // SAFETY: the masks keep the 64-byte load inside `src` and the 32-byte store inside
        // `dst`; masked-off bytes are neither read nor written.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(lanes(read), src.as_ptr().add(2 * j).cast());
            let bytes = _mm512_cvtepi16_epi8(v);
            _mm256_mask_storeu_epi8(dst.as_mut_ptr().add(j).cast(), lanes(out) as u32, bytes);
        }
    }
}

/// A mask of the low `n` (at most 64) lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lanes(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// [`gather`] with the stride `S` known at compile time.
#[inline(always)]
fn strided<const S: usize>(dst: &mut [u8], src: &[u8]) {
    let whole = dst.len().min(src.len() / S);
    for (d, c) in dst[..whole].iter_mut().zip(src.chunks_exact(S)) {
        *d = c[0];
    }
    // The last byte may have fewer than S − 1 bytes after it.
    if let (Some(d), Some(&v)) = (dst.get_mut(whole), src.get(whole * S)) {
        *d = v;
    }
}
