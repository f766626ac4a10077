//! BatchNorm in training mode: normalisation by batch statistics, PyTorch's running-statistic
//! update, and the backward of both the train-mode and the eval-mode (running-statistic) forms.

use super::backward::ModuleGrads;
use crate::graph::{BatchNormParams, GraphError};
use ndarray::{Array1, ArrayD, Axis};

/// The batch statistics of one train-mode BatchNorm forward, to be folded into the running
/// statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStatUpdate {
    pub batch_mean: Array1<f32>,
    /// Population (biased) variance, as used for normalisation.
    pub batch_var: Array1<f32>,
    /// Elements per channel (N times the spatial size).
    pub count: usize,
}

impl RunningStatUpdate {
    /// PyTorch's rule: `mean = m·batch_mean + (1-m)·mean`,
    /// `var = m·batch_var·n/(n-1) + (1-m)·var` (unbiased variance; n = 1 uses the biased one).
    pub fn apply(&self, p: &mut BatchNormParams) {
        let m = p.momentum;
        let n = self.count as f32;
        let unbias = if self.count > 1 { n / (n - 1.0) } else { 1.0 };
        for c in 0..p.running_mean.len() {
            p.running_mean[c] = m * self.batch_mean[c] + (1.0 - m) * p.running_mean[c];
            p.running_var[c] = m * (self.batch_var[c] * unbias) + (1.0 - m) * p.running_var[c];
        }
    }
}

fn check_channels(node: &str, x: &ArrayD<f32>, p: &BatchNormParams) -> Result<(), GraphError> {
    let c = p.weight.len();
    if x.ndim() < 2 || x.shape()[1] != c || x.is_empty() {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!(
                "input {:?} is not a non-empty batch with {c} channels in dim 1",
                x.shape()
            ),
        });
    }
    Ok(())
}

/// Per-channel mean and biased variance over every dim but 1.
fn batch_stats(x: &ArrayD<f32>) -> (Array1<f32>, Array1<f32>, usize) {
    let count = x.len() / x.shape()[1];
    let mut mean = Array1::zeros(x.shape()[1]);
    let mut var = Array1::zeros(x.shape()[1]);
    for (c, plane) in x.axis_iter(Axis(1)).enumerate() {
        let mu = plane.sum() / count as f32;
        mean[c] = mu;
        var[c] = plane.fold(0.0, |s, &v| s + (v - mu) * (v - mu)) / count as f32;
    }
    (mean, var, count)
}

/// Train-mode forward: `y = (x - batch_mean) / sqrt(batch_var + eps) · γ + β`.
pub(crate) fn batch_norm_train(
    node: &str,
    x: &ArrayD<f32>,
    p: &BatchNormParams,
) -> Result<(ArrayD<f32>, RunningStatUpdate), GraphError> {
    check_channels(node, x, p)?;
    let (batch_mean, batch_var, count) = batch_stats(x);
    let mut y = x.to_owned();
    for (c, mut plane) in y.axis_iter_mut(Axis(1)).enumerate() {
        let invstd = 1.0 / (batch_var[c] + p.eps).sqrt();
        let (mu, g, b) = (batch_mean[c], p.weight[c], p.bias[c]);
        plane.mapv_inplace(|v| (v - mu) * invstd * g + b);
    }
    let update = RunningStatUpdate {
        batch_mean,
        batch_var,
        count,
    };
    Ok((y, update))
}

/// Gradients of BatchNorm: dx, dγ (as `dw`), dβ (as `db`). With batch statistics (`train`) the mean and variance
/// depend on x: `dx = γ·invstd/n · (n·dy - Σdy - x̂·Σ(dy·x̂))`; with running statistics
/// `dx = dy·γ·invstd`.
pub(crate) fn batch_norm_backward(
    node: &str,
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    p: &BatchNormParams,
    train: bool,
) -> Result<ModuleGrads, GraphError> {
    check_channels(node, x, p)?;
    let (mean, var, count) = if train {
        batch_stats(x)
    } else {
        (p.running_mean.clone(), p.running_var.clone(), 0)
    };
    let channels = p.weight.len();
    let mut dx = ArrayD::zeros(x.raw_dim());
    let mut dgamma = Array1::zeros(channels);
    let mut dbeta = Array1::zeros(channels);
    for c in 0..channels {
        let invstd = 1.0 / (var[c] + p.eps).sqrt();
        let xc = x.index_axis(Axis(1), c);
        let dyc = dy.index_axis(Axis(1), c);
        let mut sum_dy = 0.0f32;
        let mut sum_dy_xhat = 0.0f32;
        ndarray::Zip::from(&xc).and(&dyc).for_each(|&v, &g| {
            sum_dy += g;
            sum_dy_xhat += g * (v - mean[c]) * invstd;
        });
        dgamma[c] = sum_dy_xhat;
        dbeta[c] = sum_dy;
        let scale = p.weight[c] * invstd;
        let mut dxc = dx.index_axis_mut(Axis(1), c);
        if train {
            let n = count as f32;
            ndarray::Zip::from(&mut dxc)
                .and(&xc)
                .and(&dyc)
                .for_each(|d, &v, &g| {
                    let xhat = (v - mean[c]) * invstd;
                    *d = scale / n * (n * g - sum_dy - xhat * sum_dy_xhat);
                });
        } else {
            ndarray::Zip::from(&mut dxc)
                .and(&dyc)
                .for_each(|d, &g| *d = g * scale);
        }
    }
    Ok(ModuleGrads {
        dx,
        dw: dgamma.into_dyn(),
        db: Some(dbeta),
    })
}
