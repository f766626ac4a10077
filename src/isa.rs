//! Which instruction-set tier the fast paths use: detected once, overridable for tests.
//!
//! `QLAB_ISA=scalar|avx2|avxvnni|avx512vnni|neon|dotprod` pins the process's tier at start-up so
//! every tier can be checked against the scalar reference on one machine; after start-up a tier
//! is a value (`engine::Numerics::isa`, the `_on(tier)` kernels), never a global to flip. Asking for a tier the host
//! lacks is an error that names what is missing, never a silent fallback.

use std::fmt;
use std::sync::OnceLock;
use thiserror::Error;

/// An instruction-set tier, from the portable reference up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust: the reference every other tier must match bit for bit.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX2 plus AVX-VNNI (ymm `vpdpbusd`).
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL plus AVX-512 VNNI.
    Avx512Vnni,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the dot-product extension.
    Dotprod,
}

/// Every tier, in the order `qlab bench` and the test batteries walk them.
pub const ALL: [Isa; 6] = [
    Isa::Scalar,
    Isa::Avx2,
    Isa::AvxVnni,
    Isa::Avx512Vnni,
    Isa::Neon,
    Isa::Dotprod,
];

/// A requested tier that cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IsaError {
    /// The name is not a tier.
    #[error(
        "unknown ISA tier '{0}' (expected auto, scalar, avx2, avxvnni, avx512vnni, neon or dotprod)"
    )]
    Unknown(String),
    /// The host CPU lacks the features of the tier.
    #[error("ISA tier {tier} is not available on this host: {missing}")]
    Unavailable { tier: Isa, missing: String },
}

impl Isa {
    /// The name used by `QLAB_ISA` and the `isa` verb.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
        }
    }

    /// Parses a tier name.
    pub fn parse(s: &str) -> Result<Isa, IsaError> {
        ALL.into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| IsaError::Unknown(s.to_string()))
    }

    /// The CPU features this tier needs.
    fn needed(self) -> &'static [&'static str] {
        match self {
            Isa::Scalar => &[],
            Isa::Avx2 => &["avx2", "fma", "f16c"],
            Isa::AvxVnni => &["avx2", "fma", "f16c", "avxvnni"],
            Isa::Avx512Vnni => &[
                "avx2",
                "fma",
                "f16c",
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
            ],
            Isa::Neon => &["neon"],
            Isa::Dotprod => &["neon", "dotprod"],
        }
    }

    /// The CPU features this tier needs that the host lacks (empty when usable).
    pub fn missing_features(self) -> Vec<&'static str> {
        self.needed()
            .iter()
            .copied()
            .filter(|f| !host_has(f))
            .collect()
    }

    /// True when the host can run this tier: one load from a table filled on first use (every
    /// kernel entry asks, some once per channel plane).
    pub fn is_available(self) -> bool {
        static AVAILABLE: OnceLock<[bool; ALL.len()]> = OnceLock::new();
        let table = AVAILABLE.get_or_init(|| ALL.map(|t| t.needed().iter().all(|f| host_has(f))));
        // Discriminants follow `ALL`'s order (`all_lists_the_tiers_in_declaration_order`).
        table[self as usize]
    }

    /// Whether this is an x86 SIMD tier (all of which include AVX2 and FMA): the condition for
    /// the element-wise loops compiled with those features.
    pub fn is_x86_simd(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni)
    }

    /// Ok when usable, otherwise the error that names the missing features.
    pub fn check(self) -> Result<Isa, IsaError> {
        if self.is_available() {
            return Ok(self);
        }
        let missing = self.missing_features();
        if missing.is_empty() {
            Ok(self)
        } else {
            Err(IsaError::Unavailable {
                tier: self,
                missing: missing.join(", "),
            })
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn host_has(feature: &str) -> bool {
    match feature {
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "fma" => std::arch::is_x86_feature_detected!("fma"),
        "f16c" => std::arch::is_x86_feature_detected!("f16c"),
        "avxvnni" => std::arch::is_x86_feature_detected!("avxvnni"),
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
        "avx512vnni" => std::arch::is_x86_feature_detected!("avx512vnni"),
        _ => false,
    }
}

#[cfg(target_arch = "aarch64")]
fn host_has(feature: &str) -> bool {
    match feature {
        "neon" => std::arch::is_aarch64_feature_detected!("neon"),
        "dotprod" => std::arch::is_aarch64_feature_detected!("dotprod"),
        _ => false,
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn host_has(_feature: &str) -> bool {
    false
}

/// The best tier the host supports.
pub fn best_available() -> Isa {
    ALL.into_iter()
        .rev()
        .find(|t| t.is_available())
        .unwrap_or(Isa::Scalar)
}

/// The start-up tier, chosen on first use and never changed afterwards.
static SELECTED: OnceLock<Isa> = OnceLock::new();

/// The process's tier: `QLAB_ISA` if set, else the best available, fixed at first use.
///
/// It is the default of [`crate::engine::Numerics`] (which carries the tier a quantized model
/// runs on, so benchmarks and latency tables time other tiers by value, not by mutating this),
/// and the tier of the float paths, observers and element-wise loops. An unusable `QLAB_ISA`
/// value is reported on stderr once and the best tier is used, because this runs deep inside
/// kernels that cannot return an error; front ends validate the variable up front with
/// [`from_env`].
pub fn selected() -> Isa {
    *SELECTED.get_or_init(|| match from_env() {
        Ok(Some(t)) => t,
        Ok(None) => best_available(),
        Err(e) => {
            eprintln!("qlab: ignoring QLAB_ISA: {e}");
            best_available()
        }
    })
}

/// Reads `QLAB_ISA`: `None` when unset or `auto`, an error when unknown or unavailable.
pub fn from_env() -> Result<Option<Isa>, IsaError> {
    match std::env::var("QLAB_ISA") {
        Ok(v) if !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("auto") => {
            Isa::parse(&v)?.check().map(Some)
        }
        _ => Ok(None),
    }
}

/// Defines a safe function whose body also runs compiled with AVX2 + FMA: on x86-64, when
/// `when` holds, the same Rust built for those features (wider vectors, the same IEEE
/// operations unless the body asks for `mul_add`); otherwise the portable build. `when` must
/// imply that the host has AVX2 and FMA. One definition replaces the dispatcher and its
/// `#[target_feature]` twin that would otherwise repeat the signature.
macro_rules! avx2_fma_twin {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) when $when:expr => $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if $when {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn compiled($($arg: $ty),*) $body
                // SAFETY: `when` holds, so the host has AVX2 and FMA.
                return unsafe { compiled($($arg),*) };
            }
            $body
        }
    };
}
pub(crate) use avx2_fma_twin;

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_available` indexes its table by discriminant, so `ALL` must list the tiers in
    /// declaration order; and the cached answer is the feature check's.
    #[test]
    fn all_lists_the_tiers_in_declaration_order() {
        for (i, t) in ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i, "{t}");
            assert_eq!(t.is_available(), t.missing_features().is_empty(), "{t}");
            assert_eq!(t.check().is_ok(), t.is_available(), "{t}");
        }
    }
}
