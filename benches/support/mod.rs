//! What several benches share: the tiers a host runs (the others reported as skipped) and a
//! deterministic xorshift stream for inputs (no rand dependency).

use qlab::isa::Isa;

/// Those of `tiers` this host runs; each other one is printed as `skipped <tier>: <reason>`.
pub fn available(tiers: &[Isa]) -> Vec<Isa> {
    tiers
        .iter()
        .copied()
        .filter(|t| match t.check() {
            Ok(_) => true,
            Err(e) => {
                println!("skipped {t}: {e}");
                false
            }
        })
        .collect()
}

/// `n` draws of a xorshift64 stream from `seed` (any seed; 0 is replaced).
pub fn xorshift(n: usize, seed: u64) -> impl Iterator<Item = u64> {
    let mut s = if seed == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        seed
    };
    (0..n).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    })
}
