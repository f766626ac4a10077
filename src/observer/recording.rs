//! RecordingObserver (NUMERICS §2.7): keeps a copy of every input, for inspection in the
//! workbench; it has no qparams.

use super::{Observer, ObserverError, ObserverKind, ObserverSpec};

/// One recorded input: its data and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

/// An observer that stores clones of its inputs.
#[derive(Debug, Clone)]
pub struct RecordingObserver {
    spec: ObserverSpec,
    tensors: Vec<Recorded>,
}

impl RecordingObserver {
    /// Builds from a `recording` spec (validated here).
    pub fn new(spec: &ObserverSpec) -> Result<RecordingObserver, ObserverError> {
        spec.validate()?;
        if spec.kind != ObserverKind::Recording {
            return Err(ObserverError::InvalidConfig(format!(
                "{} is not the recording kind",
                spec.kind
            )));
        }
        Ok(RecordingObserver {
            spec: spec.clone(),
            tensors: Vec::new(),
        })
    }

    /// Every input seen so far, in order (PyTorch's `get_tensor_value`).
    pub fn tensors(&self) -> &[Recorded] {
        &self.tensors
    }
}

impl Observer for RecordingObserver {
    fn forward(&mut self, x: &[f32], shape: &[usize]) -> Result<(), ObserverError> {
        self.tensors.push(Recorded {
            data: x.to_vec(),
            shape: shape.to_vec(),
        });
        Ok(())
    }

    fn spec(&self) -> &ObserverSpec {
        &self.spec
    }
}
