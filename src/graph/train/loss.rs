//! Cross-entropy loss, PyTorch's `F.cross_entropy` with mean reduction: log-softmax stabilised
//! by the row maximum, averaged negative log-likelihood of the labelled class.

use crate::graph::GraphError;
use ndarray::{Array2, ArrayD, Ix2};

/// `(loss, dloss/dlogits)` for logits `[N, C]` and labels `0..C` (N of them).
/// `loss = -mean_n log_softmax(logits)[n, label_n]`; the gradient follows PyTorch's
/// `log_softmax_backward` of the NLL gradient `g = -1/N` at the label:
/// `dlogits = onehot·g - softmax·g`.
pub fn cross_entropy(
    logits: &ArrayD<f32>,
    labels: &[i64],
) -> Result<(f32, ArrayD<f32>), GraphError> {
    let bad = |detail: String| GraphError::Shape {
        node: "<cross_entropy>".into(),
        detail,
    };
    let z = logits
        .view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| bad(format!("logits {:?} are not [N, C]", logits.shape())))?;
    let (n, c) = z.dim();
    if labels.len() != n || n == 0 {
        return Err(bad(format!(
            "{} labels for logits {:?}",
            labels.len(),
            logits.shape()
        )));
    }
    let mut grad = Array2::<f32>::zeros((n, c));
    let mut total = 0.0f32;
    for (i, (row, &label)) in z.outer_iter().zip(labels).enumerate() {
        let target = usize::try_from(label)
            .ok()
            .filter(|&t| t < c)
            .ok_or_else(|| bad(format!("label {label} is not a class of 0..{c}")))?;
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let sum: f32 = row.iter().map(|&v| (v - m).exp()).sum();
        let log_sum = sum.ln();
        total -= row[target] - m - log_sum;
        let g = -1.0 / n as f32;
        for (j, &v) in row.iter().enumerate() {
            let p = (v - m - log_sum).exp();
            grad[[i, j]] = if j == target { g } else { 0.0 } - p * g;
        }
    }
    Ok((total / n as f32, grad.into_dyn()))
}
