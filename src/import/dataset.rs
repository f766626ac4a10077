//! Datasets: model inputs from `.npy` (f32, f64, u8, i64 — converted to f32 explicitly) with
//! optional integer labels, checked once at load (non-finite values are reported with their
//! position) and against the model input they will feed.

use super::npy::{NpyError, read_npy};
use crate::graph::{GraphInput, Value};
use ndarray::{ArrayD, Axis, Dimension};
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
}

/// Inputs (samples along dim 0) and optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub inputs: ArrayD<f32>,
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
        let y = labels.map(read_npy).transpose()?;
        Dataset::from_values(name, x, y, &inputs.display().to_string())
    }

    /// Builds a dataset from decoded arrays; `origin` names the source in errors.
    pub fn from_values(
        name: &str,
        inputs: Value,
        labels: Option<Value>,
        origin: &str,
    ) -> Result<Dataset, DatasetError> {
        let inputs = match inputs {
            Value::F32(a) => a,
            Value::I64(a) => a.mapv(|v| v as f32),
        };
        if inputs.ndim() == 0 {
            return Err(DatasetError::Scalar {
                origin: origin.into(),
            });
        }
        // A flat scan first: the indexed walk that names the element is slow on large data.
        if !inputs.iter().all(|v| v.is_finite())
            && let Some((index, &value)) = inputs.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(DatasetError::NonFinite {
                origin: origin.into(),
                index: (0..index.ndim()).map(|d| index[d]).collect(),
                value,
            });
        }
        let labels = match labels {
            None => None,
            Some(Value::F32(_)) => {
                return Err(DatasetError::Labels {
                    origin: origin.into(),
                    detail: "labels must be integers (class indices)".into(),
                });
            }
            Some(Value::I64(l)) => {
                if l.ndim() != 1 || l.len() != inputs.shape()[0] {
                    return Err(DatasetError::Labels {
                        origin: origin.into(),
                        detail: format!(
                            "{} samples but labels of shape {:?}",
                            inputs.shape()[0],
                            l.shape()
                        ),
                    });
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

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.shape()[0]
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that samples fit `input` (rank and every fixed dim except the batch).
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
        Ok(())
    }

    /// The samples at `indices`, in that order, with their labels.
    pub fn batch(&self, indices: &[usize]) -> (ArrayD<f32>, Option<Vec<i64>>) {
        let x = self.inputs.select(Axis(0), indices);
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
    pub fn rows(&self, range: std::ops::Range<usize>) -> ArrayD<f32> {
        self.inputs
            .slice_axis(Axis(0), ndarray::Slice::from(range))
            .to_owned()
    }

    /// Consecutive index ranges of at most `size` samples covering the dataset in order.
    pub fn batch_ranges(&self, size: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let size = size.max(1);
        (0..self.len())
            .step_by(size)
            .map(move |s| s..(s + size).min(self.len()))
    }
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
    fn labels_must_match_samples() {
        let x = Value::F32(ArrayD::zeros(IxDyn(&[3, 2])));
        let y = Value::I64(ArrayD::zeros(IxDyn(&[2])));
        assert!(matches!(
            Dataset::from_values("d", x, Some(y), "o"),
            Err(DatasetError::Labels { .. })
        ));
    }

    #[test]
    fn fits_and_batches() {
        let x = Value::I64(ArrayD::from_shape_fn(IxDyn(&[5, 2]), |i| {
            (i[0] * 2 + i[1]) as i64
        }));
        let d = Dataset::from_values(
            "d",
            x,
            Some(Value::I64(
                ArrayD::from_shape_vec(IxDyn(&[5]), vec![0, 1, 2, 3, 4]).unwrap(),
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
        assert_eq!(bx.as_slice().unwrap(), &[8.0, 9.0, 0.0, 1.0]);
        assert_eq!(by.unwrap(), vec![4, 0]);
    }
}
