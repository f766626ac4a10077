//! An `Engine` names a numerics contract: which of PyTorch's quantized backends qlab reproduces
//! (fbgemm, x86, qnnpack), and on which kind of host (`HostProfile`), because fbgemm's integers
//! depend on the CPU it ran on (NUMERICS §8). Kernels consult the contract; they never guess.

use crate::isa::{self, Isa, IsaError};
use std::fmt;
use thiserror::Error;

/// PyTorch's `torch.backends.quantized.engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// fbgemm: float bias and a single float multiplier at requantization (§6.2); float add.
    Fbgemm,
    /// x86: fbgemm's numerics, except that depthwise convs go to oneDNN and are exact.
    X86,
    /// qnnpack: int32 bias and a reciprocal requant scale (§6.3); fixed-point add.
    Qnnpack,
}

/// The host PyTorch's fbgemm ran on, which decides where int16 pair saturation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HostProfile {
    /// An AVX-512 VNNI host (the golden recording host): exact GEMMs, but fbgemm's depthwise
    /// fast path still sums tap pairs in saturating int16.
    #[default]
    Vnni,
    /// An AVX2-only host (or AVX-512 without VNNI): every fbgemm u8×s8 pair sum saturates.
    Avx2,
    /// No saturation anywhere: exact integer accumulation (the mathematically exact answer).
    Exact,
}

/// An unknown engine or profile name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    #[error("unknown engine '{0}' (expected fbgemm, x86 or qnnpack)")]
    UnknownEngine(String),
    #[error("unknown host profile '{0}' (expected vnni, avx2 or exact)")]
    UnknownProfile(String),
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Fbgemm, Engine::X86, Engine::Qnnpack];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Fbgemm => "fbgemm",
            Engine::X86 => "x86",
            Engine::Qnnpack => "qnnpack",
        }
    }

    pub fn parse(s: &str) -> Result<Engine, EngineError> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| EngineError::UnknownEngine(s.into()))
    }

    /// True for the engines that requantize with a float bias and one float multiplier.
    pub fn float_requant(self) -> bool {
        !matches!(self, Engine::Qnnpack)
    }

    /// The activation range dynamic ops quantize inputs to (§7.1): fbgemm/x86 reduce it.
    pub fn dynamic_activation_qmax(self) -> i32 {
        if self.float_requant() { 127 } else { 255 }
    }
}

impl HostProfile {
    pub fn name(self) -> &'static str {
        match self {
            HostProfile::Vnni => "vnni",
            HostProfile::Avx2 => "avx2",
            HostProfile::Exact => "exact",
        }
    }

    pub fn parse(s: &str) -> Result<HostProfile, EngineError> {
        [HostProfile::Vnni, HostProfile::Avx2, HostProfile::Exact]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| EngineError::UnknownProfile(s.into()))
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for HostProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A complete numerics contract: engine plus host profile (default: fbgemm as recorded on a
/// VNNI host), and the instruction-set tier its kernels run on.
///
/// The tier never changes the integers (every tier matches the scalar reference bit for bit);
/// it is carried here so that a converted model runs on the tier it was built for, and a
/// benchmark or latency table can time several tiers side by side without a process-wide switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Numerics {
    pub engine: Engine,
    pub profile: HostProfile,
    /// Always a tier the host has: set from [`isa::selected`] or checked by [`Numerics::on`].
    isa: Isa,
}

impl Default for Numerics {
    fn default() -> Self {
        Numerics::new(Engine::Fbgemm, HostProfile::default())
    }
}

impl Numerics {
    /// The contract on the process's tier ([`isa::selected`]).
    pub fn new(engine: Engine, profile: HostProfile) -> Self {
        Numerics {
            engine,
            profile,
            isa: isa::selected(),
        }
    }

    /// The same contract on another tier; an error when the host lacks it.
    pub fn on(self, tier: Isa) -> Result<Self, IsaError> {
        Ok(Numerics {
            isa: tier.check()?,
            ..self
        })
    }

    /// The tier the kernels of this contract run on (one the host supports).
    pub fn isa(self) -> Isa {
        self.isa
    }

    /// Whether u8×s8 GEMM pair sums saturate to int16 (fbgemm/x86 GEMMs on an AVX2 host).
    pub fn gemm_pairs_saturate(self) -> bool {
        self.engine.float_requant() && self.profile == HostProfile::Avx2
    }
}
