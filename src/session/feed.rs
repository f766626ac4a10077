//! How a dataset is fed to a model. Every command that runs data through a model — float or
//! quantized: outputs for `eval` / `predict` / `expect`, calibration, per-layer errors, engine
//! comparison, sensitivity — asks [`Workbench::runs`] for the sample ranges to run, so the rules
//! live in one place:
//!
//! - the data is checked against the model first (rank and fixed dims, a whole number of runs,
//!   token ids inside the embedding table the first input indexes);
//! - data is taken in batches (the user's `batch=` / `batches=`, or memory-bounded batches of
//!   [`RUN_BATCH`] when the batching is not part of the command);
//! - a model whose first input pins its leading dim to `B` (an export with the batch baked in)
//!   cannot take any other batch, so each batch is split into runs of `B` samples, run one by one
//!   in order; outputs are concatenated by the caller as for batches. The sample count must be a
//!   multiple of `B` ([`Dataset::check_fits`]): a last, shorter run could not run at all. A user
//!   batch that is not a multiple of `B` is refused rather than silently regrouped, because the
//!   batching of a calibration is part of its recorded meaning.
//!
//! A pinned batch is said once per command and model input, as a note [`Workbench::apply`]
//! appends to the command's output.
//!
//! [`Dataset::check_fits`]: crate::import::Dataset::check_fits

use super::command::Batching;
use super::workbench::RUN_BATCH;
use super::{Output, SessionError, Workbench};
use crate::graph::Graph;
use crate::import::DatasetError;
use std::ops::Range;

/// The sample ranges a dataset is run in.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Runs {
    /// One forward pass each, in dataset order.
    pub ranges: Vec<Range<usize>>,
    /// How many batches they were split from.
    pub batches: usize,
}

impl Runs {
    /// Samples covered.
    pub fn samples(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }
}

/// The name of `graph`'s first input and the leading dim it fixes, when it fixes one.
pub(super) fn pinned_batch(graph: &Graph) -> Option<(&str, usize)> {
    let input = graph.inputs.first()?;
    match input.shape.first() {
        Some(&Some(b)) => Some((input.name.as_str(), b)),
        _ => None,
    }
}

impl Workbench {
    /// Checks `data` against `graph` and splits it into the ranges to run: batches of
    /// `batching` (all of `data` in [`RUN_BATCH`]-sample batches when `None`), each split into
    /// runs of the batch `graph` pins, if it pins one.
    pub(super) fn runs(
        &self,
        graph: &Graph,
        data: &str,
        batching: Option<Batching>,
    ) -> Result<Runs, SessionError> {
        let d = self.dataset(data)?;
        d.check_model(graph)?;
        let pin = pinned_batch(graph);
        let batch = match (batching, pin) {
            (None, None) => RUN_BATCH,
            // The largest multiple of B within the memory bound (B itself when B is larger).
            (None, Some((_, b))) => (RUN_BATCH / b).max(1) * b,
            (Some(u), Some((input, b))) if !u.batch.is_multiple_of(b) => {
                return Err(DatasetError::InputMismatch {
                    dataset: data.into(),
                    input: input.into(),
                    detail: format!(
                        "the model input pins batch {b}, so batch={} cannot be split into runs of {b} (use a multiple of {b})",
                        u.batch
                    ),
                }
                .into());
            }
            (Some(u), _) => u.batch,
        };
        let limit = batching.and_then(|b| b.batches).unwrap_or(usize::MAX);
        let batches: Vec<Range<usize>> = d.batch_ranges(batch).take(limit).collect();
        let Some((input, b)) = pin else {
            return Ok(Runs {
                batches: batches.len(),
                ranges: batches,
            });
        };
        // check_model refused B = 0 and a sample count that leaves a partial run.
        let ranges = batches
            .iter()
            .flat_map(|r| r.clone().step_by(b).map(move |s| s..(s + b).min(r.end)))
            .collect();
        self.note(
            input,
            match batching {
                Some(u) => format!(
                    "model input '{input}' pins batch {b}: running batches of {} as runs of {b}",
                    u.batch
                ),
                None => {
                    format!("model input '{input}' pins batch {b}: running {data} in runs of {b}")
                }
            },
        );
        Ok(Runs {
            ranges,
            batches: batches.len(),
        })
    }

    /// Records `text` for the command's output, unless `input` already has a note.
    fn note(&self, input: &str, text: String) {
        // A poisoned lock only means a panic elsewhere; the notes themselves are still whole.
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if !notes.iter().any(|(i, _)| i == input) {
            notes.push((input.to_string(), text));
        }
    }

    /// Drops the notes of an earlier command (one that failed leaves its notes behind).
    pub(super) fn clear_notes(&mut self) {
        self.notes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `out` with the notes of this command appended: a line of text, or the table title's end.
    pub(super) fn with_notes(&mut self, out: Output) -> Output {
        let notes: Vec<String> =
            std::mem::take(self.notes.get_mut().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|(_, text)| text)
                .collect();
        if notes.is_empty() {
            return out;
        }
        match out {
            Output::None => Output::Text(notes.join("\n")),
            Output::Text(t) => Output::Text(format!("{t}\n{}", notes.join("\n"))),
            Output::Table { title, table } => Output::Table {
                title: format!("{title}; {}", notes.join("; ")),
                table,
            },
        }
    }
}
