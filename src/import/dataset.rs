//! Datasets: model inputs from `.npy` with optional integer labels, checked once at load and
//! against the model they will feed.
//!
//! A dataset keeps its element type: float files (f32, f64, u8) become f32 inputs, integer
//! files (i64, i32, i8) stay int64, because they are token ids that index an embedding table —
//! as floats they would lose exactness above 2^24 and reach a Gather as the wrong type.
//! Non-finite floats are reported with their position at load; ids outside an embedding table
//! the model's first input indexes are reported with their sample and position when the data
//! is checked against that model ([`Dataset::check_model`]).

use super::npy::{NpyError, read_npy};
use crate::graph::{Graph, GraphInput, Op, Value};
use ndarray::{ArrayD, Axis, Dimension, Slice};
use std::path::Path;
use thiserror::Error;

/// What can go wrong loading or using a dataset.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The `.npy` file could not be read.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// An input value is NaN or infinite.
    #[error("{origin}: non-finite value {value} at index {index:?}")]
    NonFinite {
        origin: String,
        index: Vec<usize>,
        value: f32,
    },
    /// Labels that are not integers or not one per sample.
    #[error("{origin}: {detail}")]
    Labels { origin: String, detail: String },
    /// A label that is not one of the model's output classes.
    #[error(
        "dataset '{dataset}': label {label} of sample {sample} is not one of the model's {classes} classes (0..{classes})"
    )]
    LabelOutOfRange {
        dataset: String,
        sample: usize,
        label: i64,
        classes: usize,
    },
    /// The inputs do not fit the model's input.
    #[error("dataset '{dataset}' does not fit model input '{input}': {detail}")]
    InputMismatch {
        dataset: String,
        input: String,
        detail: String,
    },
    /// Inputs without a sample dimension.
    #[error("{origin}: inputs need a leading sample dimension, got a 0-d array")]
    Scalar { origin: String },
    /// A token id outside the embedding table the model's first input indexes.
    #[error(
        "dataset '{dataset}': id {id} in sample {sample} at position {position:?} is outside the embedding table '{table}' (ids 0..{rows})"
    )]
    IdOutOfRange {
        dataset: String,
        sample: usize,
        /// The id's index within its sample (the sample dimension left out).
        position: Vec<usize>,
        id: i64,
        table: String,
        rows: usize,
    },
    /// Integer inputs where only float inputs make sense (training).
    #[error("dataset '{dataset}' holds {dtype} inputs; {what} needs float inputs")]
    NotFloat {
        dataset: String,
        dtype: &'static str,
        what: String,
    },
}

/// Inputs (samples along dim 0) and optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// f32 for float files, int64 for integer files (token ids).
    pub inputs: Value,
    pub labels: Option<Vec<i64>>,
}

impl Dataset {
    /// Loads inputs (and labels) from `.npy` files.
    pub fn from_npy(
        name: &str,
        inputs: &Path,
        labels: Option<&Path>,
    ) -> Result<Dataset, DatasetError> {
        let x = read_npy(inputs)?;
        let (y, from) = match labels {
            Some(path) => (Some(read_npy(path)?), path.display().to_string()),
            None => (None, String::new()),
        };
        let y = y.map(|v| (v, from.as_str()));
        Dataset::from_values(name, x, y, &inputs.display().to_string())
    }

    /// Builds a dataset from decoded arrays; `origin` names the inputs' source in errors, and
    /// each label array comes with its own.
    pub fn from_values(
        name: &str,
        inputs: Value,
        labels: Option<(Value, &str)>,
        origin: &str,
    ) -> Result<Dataset, DatasetError> {
        if inputs.shape().is_empty() {
            return Err(DatasetError::Scalar {
                origin: origin.into(),
            });
        }
        // A flat scan first: the indexed walk that names the element is slow on large data.
        if let Value::F32(x) = &inputs
            && !x.iter().all(|v| v.is_finite())
            && let Some((index, &value)) = x.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(DatasetError::NonFinite {
                origin: origin.into(),
                index: index.slice().to_vec(),
                value,
            });
        }
        let samples = inputs.shape()[0];
        let labels = match labels {
            None => None,
            Some((Value::F32(_), from)) => {
                return Err(DatasetError::Labels {
                    origin: from.into(),
                    detail: "labels must be integers (class indices)".into(),
                });
            }
            Some((Value::I64(l), from)) => {
                let bad = |detail: String| DatasetError::Labels {
                    origin: from.into(),
                    detail,
                };
                if l.ndim() != 1 || l.len() != samples {
                    return Err(bad(format!(
                        "labels of shape {:?} for {samples} samples of {origin}",
                        l.shape()
                    )));
                }
                if let Some((i, label)) = l.iter().enumerate().find(|(_, l)| **l < 0) {
                    return Err(bad(format!(
                        "label {label} of sample {i} is negative (labels are class indices)"
                    )));
                }
                Some(l.iter().copied().collect())
            }
        };
        Ok(Dataset {
            name: name.into(),
            inputs,
            labels,
        })
    }

    /// Checks every label against a model with `classes` outputs per sample.
    pub fn check_labels(&self, classes: usize) -> Result<(), DatasetError> {
        let labels = self.labels.as_deref().unwrap_or_default();
        match labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as u64 >= classes as u64)
        {
            Some((sample, &label)) => Err(DatasetError::LabelOutOfRange {
                dataset: self.name.clone(),
                sample,
                label,
                classes,
            }),
            None => Ok(()),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.shape()[0]
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one sample (the inputs' shape without the sample dimension).
    pub fn sample_shape(&self) -> &[usize] {
        &self.inputs.shape()[1..]
    }

    /// Checks that samples fit `input`: its rank and every fixed dim except the batch. A fixed
    /// batch `B` (an export with the batch baked in) is run in runs of `B` samples, so the
    /// sample count must be a multiple of `B` — a last, shorter run could not run at all.
    pub fn check_fits(&self, input: &GraphInput) -> Result<(), DatasetError> {
        let shape = self.inputs.shape();
        let mismatch = |detail: String| DatasetError::InputMismatch {
            dataset: self.name.clone(),
            input: input.name.clone(),
            detail,
        };
        if shape.len() != input.shape.len() {
            return Err(mismatch(format!(
                "samples have rank {} ({shape:?}), the model expects rank {}",
                shape.len(),
                input.shape.len()
            )));
        }
        for (d, (want, &got)) in input.shape.iter().zip(shape).enumerate().skip(1) {
            if want.is_some_and(|w| w != got) {
                return Err(mismatch(format!(
                    "dim {d} is {got}, the model expects {}",
                    want.unwrap_or(0)
                )));
            }
        }
        if let Some(Some(b)) = input.shape.first()
            && (*b == 0 || !self.len().is_multiple_of(*b))
        {
            return Err(mismatch(format!(
                "the model input pins batch {b}, so samples run in runs of {b}, and {} samples leave a last run of {} (use a multiple of {b} samples)",
                self.len(),
                self.len() % (*b).max(1)
            )));
        }
        Ok(())
    }

    /// Checks the samples against `graph`'s first input ([`Dataset::check_fits`]) and, when
    /// that input indexes a constant embedding table (a `Gather` on axis 0), that every id is
    /// a row of the table.
    pub fn check_model(&self, graph: &Graph) -> Result<(), DatasetError> {
        let Some(input) = graph.inputs.first() else {
            return Ok(());
        };
        self.check_fits(input)?;
        let Value::I64(ids) = &self.inputs else {
            return Ok(());
        };
        let Some((table, rows)) = embedding_table(graph, &input.name) else {
            return Ok(());
        };
        // A flat scan first, as for non-finite floats: naming the position is the slow walk.
        let outside = |id: i64| id < 0 || id as u64 >= rows as u64;
        if ids.iter().any(|&id| outside(id))
            && let Some((index, &id)) = ids.indexed_iter().find(|(_, id)| outside(**id))
        {
            let index = index.slice();
            return Err(DatasetError::IdOutOfRange {
                dataset: self.name.clone(),
                sample: index[0],
                position: index[1..].to_vec(),
                id,
                table: table.to_string(),
                rows,
            });
        }
        Ok(())
    }

    /// A typed error unless the inputs are float; `what` names the use that needs them.
    pub fn float_inputs(&self, what: &str) -> Result<&ArrayD<f32>, DatasetError> {
        match &self.inputs {
            Value::F32(x) => Ok(x),
            other => Err(DatasetError::NotFloat {
                dataset: self.name.clone(),
                dtype: other.dtype_name(),
                what: what.into(),
            }),
        }
    }

    /// The samples at `indices`, in that order, with their labels.
    pub fn batch(&self, indices: &[usize]) -> (Value, Option<Vec<i64>>) {
        let x = match &self.inputs {
            Value::F32(a) => Value::F32(a.select(Axis(0), indices)),
            Value::I64(a) => Value::I64(a.select(Axis(0), indices)),
        };
        let y = self
            .labels
            .as_ref()
            .map(|l| indices.iter().map(|&i| l[i]).collect());
        (x, y)
    }

    /// Every sample index in a seeded random order (the same seed gives the same order).
    pub fn shuffled_order(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        crate::graph::train::Rng::new(seed).shuffle(&mut order);
        order
    }

    /// The samples in `range`, in order (one batch of [`Dataset::batch_ranges`]).
    pub fn rows(&self, range: std::ops::Range<usize>) -> Value {
        let s = Slice::from(range);
        match &self.inputs {
            Value::F32(a) => Value::F32(a.slice_axis(Axis(0), s).to_owned()),
            Value::I64(a) => Value::I64(a.slice_axis(Axis(0), s).to_owned()),
        }
    }

    /// Consecutive index ranges of at most `size` samples covering the dataset in order.
    pub fn batch_ranges(&self, size: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let size = size.max(1);
        (0..self.len())
            .step_by(size)
            .map(move |s| s..(s + size).min(self.len()))
    }
}

/// The constant table (name, rows) that graph input `input` indexes through a `Gather` on
/// axis 0, if there is one.
fn embedding_table<'g>(graph: &'g Graph, input: &str) -> Option<(&'g str, usize)> {
    graph
        .nodes
        .iter()
        .find_map(|n| match (&n.op, n.inputs.as_slice()) {
            (Op::Gather { axis: 0 }, [table, ids, ..]) if ids == input => graph
                .constants
                .get(table)
                .and_then(|t| t.shape().first().map(|&rows| (table.as_str(), rows))),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn non_finite_values_are_reported_with_position() {
        let mut x = ArrayD::<f32>::zeros(IxDyn(&[2, 3]));
        x[[1, 2]] = f32::NAN;
        let err = Dataset::from_values("d", Value::F32(x), None, "x.npy").unwrap_err();
        assert!(
            matches!(err, DatasetError::NonFinite { ref index, .. } if index == &vec![1, 2]),
            "{err}"
        );
    }

    #[test]
    fn labels_must_match_samples_and_name_their_file() {
        let x = || Value::F32(ArrayD::zeros(IxDyn(&[3, 2])));
        let labels =
            |v: Vec<i64>| Value::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).unwrap());
        for (y, want) in [
            (
                labels(vec![0, 1]),
                "labels of shape [2] for 3 samples of x.npy",
            ),
            (labels(vec![0, -4, 1]), "label -4 of sample 1 is negative"),
            (Value::F32(ArrayD::zeros(IxDyn(&[3]))), "must be integers"),
        ] {
            let err = Dataset::from_values("d", x(), Some((y, "y.npy")), "x.npy").unwrap_err();
            assert!(matches!(err, DatasetError::Labels { .. }), "{err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with("y.npy: ") && shown.contains(want),
                "{shown}"
            );
        }
        let d = Dataset::from_values("d", x(), Some((labels(vec![0, 9, 2]), "y.npy")), "x.npy")
            .unwrap();
        d.check_labels(10).unwrap();
        let err = d.check_labels(9).unwrap_err().to_string();
        assert!(
            err.contains("label 9 of sample 1") && err.contains("9 classes"),
            "{err}"
        );
    }

    #[test]
    fn fits_and_batches() {
        let x = Value::I64(ArrayD::from_shape_fn(IxDyn(&[5, 2]), |i| {
            (i[0] * 2 + i[1]) as i64
        }));
        let d = Dataset::from_values(
            "d",
            x,
            Some((
                Value::I64(ArrayD::from_shape_vec(IxDyn(&[5]), vec![0, 1, 2, 3, 4]).unwrap()),
                "y.npy",
            )),
            "o",
        )
        .unwrap();
        let input = GraphInput {
            name: "input".into(),
            shape: vec![None, Some(2)],
        };
        d.check_fits(&input).unwrap();
        let wrong = GraphInput {
            name: "input".into(),
            shape: vec![None, Some(3)],
        };
        assert!(matches!(
            d.check_fits(&wrong),
            Err(DatasetError::InputMismatch { .. })
        ));
        assert_eq!(
            d.batch_ranges(2).collect::<Vec<_>>(),
            vec![0..2, 2..4, 4..5]
        );
        let order = d.shuffled_order(7);
        assert_eq!(order, d.shuffled_order(7), "seeded");
        assert_ne!(order, d.shuffled_order(8));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        let (bx, by) = d.batch(&[4, 0]);
        let Value::I64(bx) = bx else {
            panic!("integer inputs stay int64, got {}", bx.dtype_name());
        };
        assert_eq!(bx.as_slice().unwrap(), &[8, 9, 0, 1]);
        assert_eq!(by.unwrap(), vec![4, 0]);
    }

    /// A graph whose input `ids` [N, 3] indexes a 5-row embedding table.
    fn embedding_graph(batch: Option<usize>) -> Graph {
        let mut g = Graph {
            inputs: vec![GraphInput {
                name: "ids".into(),
                shape: vec![batch, Some(3)],
            }],
            outputs: vec!["e".into()],
            ..Graph::default()
        };
        g.constants
            .insert("table".into(), Value::F32(ArrayD::zeros(IxDyn(&[5, 2]))));
        g.nodes.push(crate::graph::Node {
            name: "embed".into(),
            op: Op::Gather { axis: 0 },
            inputs: vec!["table".into(), "ids".into()],
            outputs: vec!["e".into()],
        });
        g
    }

    /// Ids above 2^24 (where f32 stops being exact) survive loading, slicing and batching.
    #[test]
    fn integer_ids_stay_exact() {
        let big = (1i64 << 24) + 1;
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![big, 3, 7, big + 2]).unwrap();
        let d = Dataset::from_values("ids", Value::I64(x.clone()), None, "o").unwrap();
        assert_eq!(d.inputs, Value::I64(x));
        assert_eq!(
            d.rows(1..2),
            Value::I64(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![7, big + 2]).unwrap())
        );
        let Value::I64(b) = d.batch(&[0]).0 else {
            panic!("int64 batch");
        };
        assert_eq!(b[[0, 0]], 16_777_217);
        assert!(matches!(
            d.float_inputs("training"),
            Err(DatasetError::NotFloat { dtype: "int64", .. })
        ));
    }

    #[test]
    fn ids_outside_the_embedding_table_name_sample_and_position() {
        let ok = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0, 1, 2, 3, 4, 4]).unwrap();
        let d = Dataset::from_values("ids", Value::I64(ok), None, "o").unwrap();
        d.check_model(&embedding_graph(None)).unwrap();
        let bad = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0, 1, 2, 3, 5, 4]).unwrap();
        let d = Dataset::from_values("ids", Value::I64(bad), None, "o").unwrap();
        let err = d.check_model(&embedding_graph(None)).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::IdOutOfRange { sample: 1, ref position, id: 5, rows: 5, .. }
                    if position == &vec![1]
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("sample 1") && text.contains("[1]"), "{text}");
        let negative = ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![0, -1, 2]).unwrap();
        let d = Dataset::from_values("ids", Value::I64(negative), None, "o").unwrap();
        assert!(matches!(
            d.check_model(&embedding_graph(None)),
            Err(DatasetError::IdOutOfRange {
                sample: 0,
                id: -1,
                ..
            })
        ));
    }

    /// A pinned batch B accepts any multiple of B samples and names a last partial run.
    #[test]
    fn a_pinned_batch_needs_whole_runs() {
        let x = Value::I64(ArrayD::zeros(IxDyn(&[6, 3])));
        let d = Dataset::from_values("ids", x, None, "o").unwrap();
        d.check_model(&embedding_graph(Some(1))).unwrap();
        d.check_model(&embedding_graph(Some(3))).unwrap();
        let err = d.check_model(&embedding_graph(Some(4))).unwrap_err();
        assert!(
            matches!(err, DatasetError::InputMismatch { .. })
                && err.to_string().contains("pins batch 4"),
            "{err}"
        );
    }
}
