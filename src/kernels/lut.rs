//! Byte-to-byte table lookup, `dst[i] = table[src[i]]`: how an 8-bit per-tensor input is
//! requantized when it only moves (a quantized `cat`), since dequantize-then-quantize is a
//! function of the stored byte alone.
//!
//! Design note. The portable loop is one load per byte. On the AVX-512 tier of a host that also
//! has VBMI, 64 bytes take two 128-entry `vpermi2b` lookups (the table's halves) and one blend on
//! each byte's top bit; an identity table is a plain copy on every tier. All paths give the
//! portable loop's bytes (`tiers_equal_the_portable_lookup`).

/// `dst[i] = table[src[i]]` for every `i`, on the fastest path the selected tier allows.
pub fn map_bytes(src: &[u8], table: &[u8; 256], dst: &mut [u8]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "lookup source and destination differ in length"
    );
    if table.iter().enumerate().all(|(i, &v)| v as usize == i) {
        dst.copy_from_slice(src);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if vbmi_lookup() {
        // SAFETY: `vbmi_lookup` confirmed AVX-512 F/BW and VBMI; the lengths are equal.
        unsafe { super::x86::avx512_lut::map_bytes(src, table, dst) };
        return;
    }
    map_bytes_portable(src, table, dst);
}

/// The portable twin: one table load per byte.
pub fn map_bytes_portable(src: &[u8], table: &[u8; 256], dst: &mut [u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = table[s as usize];
    }
}

/// Whether the AVX-512 VBMI lookup runs: the selected tier is AVX-512 and the host has VBMI
/// (which that tier does not itself require).
#[cfg(target_arch = "x86_64")]
pub fn vbmi_lookup() -> bool {
    crate::isa::selected() == crate::isa::Isa::Avx512Vnni
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, scattered (a multiplicative hash of the index; no RNG needed).
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        (0..len as u64)
            .map(|i| ((i + seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect()
    }

    /// Every path (the dispatcher, the VBMI kernel where the host has it) gives the portable
    /// loop's bytes, for lengths around the 64-byte step and every byte value, with a table
    /// whose halves and top-bit blend all matter; an identity table copies.
    #[test]
    fn tiers_equal_the_portable_lookup() {
        let table: [u8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let identity: [u8; 256] = std::array::from_fn(|i| i as u8);
        for len in [0, 1, 63, 64, 65, 127, 256, 1000] {
            let src = bytes(len, len as u64 + 3);
            let mut want = vec![0u8; len];
            map_bytes_portable(&src, &table, &mut want);
            let mut got = vec![0u8; len];
            map_bytes(&src, &table, &mut got);
            assert_eq!(got, want, "dispatch, {len} bytes");
            map_bytes(&src, &identity, &mut got);
            assert_eq!(got, src, "identity, {len} bytes");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512vbmi") {
                let mut got = vec![0u8; len];
                // SAFETY: the host has AVX-512 VBMI (and so F/BW); equal lengths.
                unsafe { crate::kernels::x86::avx512_lut::map_bytes(&src, &table, &mut got) };
                assert_eq!(got, want, "vbmi, {len} bytes");
            } else {
                eprintln!("SKIPPED avx512vbmi lookup: the host lacks AVX-512 VBMI");
            }
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut got = vec![0u8; 256];
        map_bytes(&all, &table, &mut got);
        assert_eq!(&got[..], &table[..]);
    }
}
