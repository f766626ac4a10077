//! Calibration: running data through the prepared float model so every activation observer
//! sees the values it watches, batch by batch, exactly as PyTorch's forward passes would.

use super::{Prepared, WorkflowError};
use crate::graph::{self, Value};
use std::collections::HashMap;

impl Prepared {
    /// Runs one batch (one value per model input) and feeds every observer. Returns the float
    /// model's outputs. Non-finite values are counted, not recorded: the pre-convert check
    /// refuses to derive qparams from them.
    pub fn calibrate_batch(&mut self, inputs: Vec<Value>) -> Result<Vec<Value>, WorkflowError> {
        let batch = self.batches;
        let mut by_value: HashMap<String, Vec<usize>> = HashMap::new();
        for (k, o) in self.observers.iter().enumerate() {
            by_value.entry(o.value.clone()).or_default().push(k);
        }
        let observers = &mut self.observers;
        let mut failure = None;
        let outputs = graph::run(&self.graph, inputs, |node, outs| {
            for (name, value) in node.outputs.iter().zip(outs) {
                let (Some(ks), Value::F32(a)) = (by_value.get(name), value) else {
                    continue;
                };
                let a = a.as_standard_layout();
                let data = a.as_slice().expect("standard layout");
                let nonfinite = data.iter().filter(|v| !v.is_finite()).count() as u64;
                for &k in ks {
                    let obs = &mut observers[k];
                    obs.batches += 1;
                    obs.nonfinite += nonfinite;
                    if nonfinite > 0 || failure.is_some() {
                        continue;
                    }
                    for _ in 0..obs.passes {
                        if let Err(source) = obs.observer.forward(data, a.shape()) {
                            failure = Some(WorkflowError::Observer {
                                module: obs.owner.clone(),
                                source,
                            });
                            break;
                        }
                    }
                }
            }
        })
        .map_err(|source| WorkflowError::Calibration { batch, source })?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.batches += 1;
        Ok(outputs)
    }

    /// Runs every batch, calling `progress(done, total)` after each.
    pub fn calibrate(
        &mut self,
        batches: impl ExactSizeIterator<Item = Vec<Value>>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(), WorkflowError> {
        let total = batches.len();
        for (i, batch) in batches.enumerate() {
            self.calibrate_batch(batch)?;
            progress(i + 1, total);
        }
        Ok(())
    }
}
