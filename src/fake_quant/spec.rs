//! `FakeQuantizeSpec`: a fake-quant's configuration as a value (kind + observer spec + text).
//!
//! QConfig presets and the session language pass specs around; modules are only built from a
//! validated spec. The text form wraps the observer's own text:
//! `fake_quant(moving_average_minmax(reduce_range=true, quant_min=0, quant_max=255))`.

use super::{FakeQuantError, FakeQuantize};
use crate::observer::{ObserverKind, ObserverSpec};
use std::fmt;
use std::str::FromStr;

/// Which PyTorch fake-quant module a spec builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeQuantKind {
    /// `FakeQuantize`: any observer, Python qparams (NUMERICS §2.2).
    Plain,
    /// `FusedMovingAvgObsFakeQuantize`: moving-average statistics, C++ qparams (NUMERICS §2.8).
    Fused,
}

impl FakeQuantKind {
    /// The name used in spec text.
    pub const fn name(self) -> &'static str {
        match self {
            FakeQuantKind::Plain => "fake_quant",
            FakeQuantKind::Fused => "fused_fake_quant",
        }
    }
}

/// A complete fake-quant configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeQuantizeSpec {
    pub kind: FakeQuantKind,
    /// The observer, with the fake-quant's quant_min / quant_max already passed into it (2.x).
    pub observer: ObserverSpec,
}

impl FakeQuantizeSpec {
    /// A plain `FakeQuantize` around `observer`.
    pub fn plain(observer: ObserverSpec) -> FakeQuantizeSpec {
        FakeQuantizeSpec {
            kind: FakeQuantKind::Plain,
            observer,
        }
    }

    /// A `FusedMovingAvgObsFakeQuantize` whose statistics follow `observer`.
    pub fn fused(observer: ObserverSpec) -> FakeQuantizeSpec {
        FakeQuantizeSpec {
            kind: FakeQuantKind::Fused,
            observer,
        }
    }

    /// Checks everything PyTorch checks when building (and running) the module.
    pub fn validate(&self) -> Result<(), FakeQuantError> {
        let obs = &self.observer;
        obs.validate()?;
        if !obs.kind.computes_qparams() {
            return Err(FakeQuantError::InvalidConfig(format!(
                "observer: {} computes no qparams, so it cannot drive a fake-quant",
                obs.kind
            )));
        }
        if self.kind == FakeQuantKind::Fused {
            if !matches!(
                obs.kind,
                ObserverKind::MovingAverageMinMax | ObserverKind::MovingAveragePerChannelMinMax
            ) {
                return Err(FakeQuantError::InvalidConfig(format!(
                    "observer: the fused fake-quant keeps moving-average statistics, not {}",
                    obs.kind
                )));
            }
            if obs.kind.is_per_channel() && obs.ch_axis != 0 {
                return Err(FakeQuantError::InvalidConfig(format!(
                    "ch_axis: the fused per-channel fake-quant only supports axis 0, got {}",
                    obs.ch_axis
                )));
            }
        }
        Ok(())
    }

    /// Validates and builds the module.
    pub fn build(&self) -> Result<FakeQuantize, FakeQuantError> {
        FakeQuantize::new(self)
    }
}

impl fmt::Display for FakeQuantizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.kind.name(), self.observer)
    }
}

impl FromStr for FakeQuantizeSpec {
    type Err = FakeQuantError;

    /// Parses `fake_quant(<observer>)` or `fused_fake_quant(<observer>)`; not validated.
    fn from_str(text: &str) -> Result<FakeQuantizeSpec, FakeQuantError> {
        let fail = |why: String| FakeQuantError::Parse {
            text: text.to_string(),
            why,
        };
        let t = text.trim();
        let (name, rest) = t
            .split_once('(')
            .ok_or_else(|| fail("expected fake_quant(<observer>)".into()))?;
        let kind = [FakeQuantKind::Plain, FakeQuantKind::Fused]
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| {
                fail(format!(
                    "unknown fake-quant '{}' (accepted: fake_quant, fused_fake_quant)",
                    name.trim()
                ))
            })?;
        let inner = rest
            .strip_suffix(')')
            .ok_or_else(|| fail("missing closing ')'".into()))?;
        Ok(FakeQuantizeSpec {
            kind,
            observer: inner.parse()?,
        })
    }
}
