//! What the tier batteries (`props_gemm`, `props_depthwise`) share: the tier list with its
//! one-time report, and a cheap stream of random operand bytes.

use qlab::isa::{ALL, Isa};
use std::sync::Once;

/// The tiers the host has. The first call prints `testing <tier>: <what(tier)>` for each of them
/// and `skipped <tier>: <reason>` for the others.
pub fn tiers(what: impl Fn(Isa) -> String) -> Vec<Isa> {
    static REPORT: Once = Once::new();
    REPORT.call_once(|| {
        for isa in ALL {
            match isa.check() {
                Ok(_) => println!("testing {isa}: {}", what(isa)),
                Err(e) => println!("skipped {isa}: {e}"),
            }
        }
    });
    ALL.into_iter().filter(|t| t.is_available()).collect()
}

/// A xorshift stream: values are drawn in bulk from a seed, which keeps cases cheap.
pub struct Stream(pub u64);

impl Stream {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A byte that is an extreme (`lo` or `hi`) with probability `extreme`/8, else uniform.
    pub fn byte(&mut self, extreme: u64, lo: u8, hi: u8) -> u8 {
        let r = self.next();
        match r % 8 {
            v if v < extreme => [lo, hi][(r >> 8) as usize % 2],
            _ => (r >> 16) as u8,
        }
    }
}
