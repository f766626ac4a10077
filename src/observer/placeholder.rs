//! PlaceholderObserver and NoopObserver (NUMERICS §2.7): identity observers that only carry a
//! dtype (float16 weights, dynamic activations) and refuse to produce qparams.
//!
//! They are one type because they differ only in their default dtype and in the name the
//! `NoQParams` error reports.

use super::{Observer, ObserverError, ObserverKind, ObserverSpec};

/// An observer that records nothing.
#[derive(Debug, Clone)]
pub struct PlaceholderObserver {
    spec: ObserverSpec,
}

/// `NoopObserver` is the same type built from a `noop` spec.
pub type NoopObserver = PlaceholderObserver;

impl PlaceholderObserver {
    /// Builds from a `placeholder` or `noop` spec (validated here).
    pub fn new(spec: &ObserverSpec) -> Result<PlaceholderObserver, ObserverError> {
        spec.validate()?;
        match spec.kind {
            ObserverKind::Placeholder | ObserverKind::Noop => {
                Ok(PlaceholderObserver { spec: spec.clone() })
            }
            other => Err(ObserverError::InvalidConfig(format!(
                "{other} is not a placeholder kind"
            ))),
        }
    }
}

/// The class name PyTorch's error message uses for a passthrough kind.
pub(crate) fn class_name(kind: ObserverKind) -> &'static str {
    match kind {
        ObserverKind::Noop => "NoopObserver",
        ObserverKind::Recording => "RecordingObserver",
        _ => "PlaceholderObserver",
    }
}

impl Observer for PlaceholderObserver {
    fn forward(&mut self, _x: &[f32], _shape: &[usize]) -> Result<(), ObserverError> {
        Ok(())
    }

    fn spec(&self) -> &ObserverSpec {
        &self.spec
    }
}
