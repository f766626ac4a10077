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
