//! The training loop: seeded shuffling into mini-batches, one forward / cross-entropy /
//! backward / optimizer step per batch, per-epoch mean loss; and top-1 accuracy in eval mode.
//! Everything is deterministic: the same seed and data give bit-identical weights.

use super::backward::backward;
use super::hooks::TrainHooks;
use super::init::Rng;
use super::loss::cross_entropy;
use super::optim::Optimizer;
use super::tape::{Mode, forward_train};
use crate::graph::{Graph, GraphError, Value, run};
use ndarray::{ArrayD, Axis};

/// How to run [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Seeds the shuffle of every epoch.
    pub seed: u64,
}

fn data_err(detail: String) -> GraphError {
    GraphError::BadInput {
        input: "<training data>".into(),
        detail,
    }
}

/// One optimisation step on a batch: train-mode forward, cross-entropy on the first graph
/// output (the logits), backward, optimizer step. Returns the batch loss.
pub fn train_step(
    graph: &mut Graph,
    x: ArrayD<f32>,
    labels: &[i64],
    optimizer: &mut dyn Optimizer,
    hooks: &mut dyn TrainHooks,
) -> Result<f32, GraphError> {
    let (outputs, tape) = forward_train(graph, vec![Value::F32(x)], Mode::Train, hooks)?;
    let logits = outputs
        .first()
        .ok_or_else(|| data_err("the graph has no output".into()))?
        .f32("<logits>")?;
    let (loss, dlogits) = cross_entropy(logits, labels)?;
    let mut seeds = vec![dlogits];
    seeds.extend(
        outputs[1..]
            .iter()
            .map(|o| ArrayD::zeros(ndarray::IxDyn(o.shape()))),
    );
    let grads = backward(graph, &tape, seeds)?;
    optimizer.step(graph, &grads.params)?;
    Ok(loss)
}

/// Trains `graph` on `x` (`[N, ...]`) with `labels` (N class indices) and returns the mean
/// training loss of every epoch.
pub fn fit(
    graph: &mut Graph,
    x: &ArrayD<f32>,
    labels: &[i64],
    config: &FitConfig,
    optimizer: &mut dyn Optimizer,
    hooks: &mut dyn TrainHooks,
) -> Result<Vec<f32>, GraphError> {
    let n = labels.len();
    if x.ndim() == 0 || x.shape()[0] != n || n == 0 || config.batch_size == 0 {
        return Err(data_err(format!(
            "{} labels for inputs {:?} with batch size {}",
            n,
            x.shape(),
            config.batch_size
        )));
    }
    let mut rng = Rng::new(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut losses = Vec::with_capacity(config.epochs);
    for _ in 0..config.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0f32;
        for batch in order.chunks(config.batch_size) {
            let xb = x.select(Axis(0), batch);
            let yb: Vec<i64> = batch.iter().map(|&i| labels[i]).collect();
            total += train_step(graph, xb, &yb, optimizer, hooks)? * batch.len() as f32;
        }
        losses.push(total / n as f32);
    }
    Ok(losses)
}

/// Top-1 accuracy (fraction correct) of the first graph output on `x` in eval mode; ties go to
/// the lowest class.
pub fn accuracy(graph: &Graph, x: &ArrayD<f32>, labels: &[i64]) -> Result<f32, GraphError> {
    let out = run(graph, vec![Value::F32(x.clone())], |_, _| {})?;
    let logits = out
        .first()
        .ok_or_else(|| data_err("the graph has no output".into()))?
        .f32("<logits>")?;
    if logits.ndim() != 2 || logits.shape()[0] != labels.len() || labels.is_empty() {
        return Err(data_err(format!(
            "logits {:?} for {} labels",
            logits.shape(),
            labels.len()
        )));
    }
    let correct = logits
        .outer_iter()
        .zip(labels)
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 as i64 == **label
        })
        .count();
    Ok(correct as f32 / labels.len() as f32)
}
