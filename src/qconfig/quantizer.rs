//! `QuantizerSpec`: what a QConfig field holds — an observer (post-training quantization) or a
//! fake-quant (QAT) — as one value with one text form.

use crate::fake_quant::{FakeQuantError, FakeQuantizeSpec};
use crate::observer::{ObserverError, ObserverSpec};
use std::fmt;
use std::str::FromStr;

/// An observer or a fake-quant configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantizerSpec {
    Observer(ObserverSpec),
    FakeQuantize(FakeQuantizeSpec),
}

impl QuantizerSpec {
    /// The observer spec (the fake-quant's inner one for QAT).
    pub fn observer(&self) -> &ObserverSpec {
        match self {
            QuantizerSpec::Observer(o) => o,
            QuantizerSpec::FakeQuantize(f) => &f.observer,
        }
    }

    /// Checks the spec as its PyTorch constructor would.
    pub fn validate(&self) -> Result<(), FakeQuantError> {
        match self {
            QuantizerSpec::Observer(o) => Ok(o.validate()?),
            QuantizerSpec::FakeQuantize(f) => f.validate(),
        }
    }
}

impl From<ObserverSpec> for QuantizerSpec {
    fn from(o: ObserverSpec) -> QuantizerSpec {
        QuantizerSpec::Observer(o)
    }
}

impl From<FakeQuantizeSpec> for QuantizerSpec {
    fn from(f: FakeQuantizeSpec) -> QuantizerSpec {
        QuantizerSpec::FakeQuantize(f)
    }
}

impl fmt::Display for QuantizerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizerSpec::Observer(o) => o.fmt(f),
            QuantizerSpec::FakeQuantize(q) => q.fmt(f),
        }
    }
}

impl FromStr for QuantizerSpec {
    type Err = FakeQuantError;

    /// A fake-quant text (`fake_quant(...)`, `fused_fake_quant(...)`) or an observer text.
    fn from_str(text: &str) -> Result<QuantizerSpec, FakeQuantError> {
        let name = text.trim().split('(').next().unwrap_or("").trim();
        if name.ends_with("fake_quant") {
            Ok(QuantizerSpec::FakeQuantize(text.parse()?))
        } else {
            Ok(QuantizerSpec::Observer(
                text.parse::<ObserverSpec>()
                    .map_err(|e: ObserverError| FakeQuantError::from(e))?,
            ))
        }
    }
}
