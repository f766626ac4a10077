//! Calibration: running data through the prepared float model so every activation observer
//! sees the values it watches, batch by batch, exactly as PyTorch's forward passes would; and
//! re-use of a calibration when only observer choices change ("collect once, re-derive").

use super::{ActivationObserver, Prepared, WorkflowError};
use crate::graph::{self, Value};
use crate::observer::{
    ObservedQParams, ObserverError, ObserverKind, ObserverSpec, qparams_from_stats,
};
use rayon::prelude::*;
use std::collections::HashMap;

impl ActivationObserver {
    /// The qparams for `spec`: the observer's own `calculate_qparams` when it is its spec,
    /// otherwise re-derived from its statistics.
    pub fn qparams(&self) -> Result<ObservedQParams, ObserverError> {
        if self.spec == *self.observer.spec() {
            self.observer.calculate_qparams()
        } else {
            qparams_from_stats(&self.observer.stats(), &self.spec)
        }
    }

    /// Whether the statistics this observer collected are exactly what an observer built from
    /// `spec` would have collected, so its qparams can be derived without new data.
    pub fn can_rederive(&self, spec: &ObserverSpec) -> bool {
        use ObserverKind::*;
        let have = self.observer.spec();
        let histogram = |k| matches!(k, Histogram | Percentile | Entropy | Mse);
        match (have.kind, spec.kind) {
            (a, b) if histogram(a) && histogram(b) => {
                have.bins == spec.bins && have.upsample_rate == spec.upsample_rate
            }
            // A histogram observer's min / max (whatever its calibrator) are the plain running
            // min / max.
            (a, MinMax) if histogram(a) => true,
            (MinMax, MinMax) => true,
            (MovingAverageMinMax, MovingAverageMinMax) => {
                have.averaging_constant == spec.averaging_constant
            }
            _ => false,
        }
    }
}

/// Non-finite elements of a batch activation, counted over fixed parallel chunks (u32 within
/// a chunk: twice the vector lanes of u64).
fn count_nonfinite(x: &[f32]) -> u64 {
    x.par_chunks(1 << 17)
        .map(|c| c.iter().map(|v| u32::from(!v.is_finite())).sum::<u32>() as u64)
        .sum()
}

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
                let nonfinite = count_nonfinite(data);
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

    /// Takes over the observers of `old` (the same model prepared with other qconfigs) when
    /// every one of their statistics serves the new observer choice; otherwise changes nothing
    /// and returns the owners that need new data (mixing old and new data would make a
    /// calibration no single run could give).
    pub fn adopt_calibration(&mut self, old: Prepared) -> Result<(), Vec<String>> {
        let mut old: HashMap<(String, String), ActivationObserver> = old
            .observers
            .into_iter()
            .map(|o| ((o.owner.clone(), o.value.clone()), o))
            .collect();
        let missing: Vec<String> = self
            .observers
            .iter()
            .filter(|obs| {
                !old.get(&(obs.owner.clone(), obs.value.clone()))
                    .is_some_and(|prev| prev.batches > 0 && prev.can_rederive(&obs.spec))
            })
            .map(|obs| obs.owner.clone())
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        for obs in &mut self.observers {
            let mut prev = old
                .remove(&(obs.owner.clone(), obs.value.clone()))
                .expect("checked above");
            prev.spec = obs.spec.clone();
            *obs = prev;
        }
        self.batches = self.observers.first().map_or(0, |o| o.batches);
        Ok(())
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
