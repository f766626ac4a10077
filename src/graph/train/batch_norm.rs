//! BatchNorm in training mode: normalisation by batch statistics, PyTorch's running-statistic
//! update, and the backward of both the train-mode and the eval-mode (running-statistic) forms.

use super::backward::ModuleGrads;
use crate::graph::ops::batch_norm_eval;
use crate::graph::{BatchNormParams, GraphError};
use ndarray::{Array1, ArrayD, Axis};

/// The batch statistics of one train-mode BatchNorm forward, to be folded into the running
/// statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStatUpdate {
    pub batch_mean: Array1<f32>,
    /// Population (biased) variance, as used for normalisation.
    pub batch_var: Array1<f32>,
    /// Sample (unbiased, n/(n-1)) variance, as folded into the running variance.
    pub batch_var_unbiased: Array1<f32>,
}

impl RunningStatUpdate {
    /// PyTorch's rule with momentum m: `mean = m·batch_mean + (1-m)·mean`,
    /// `var = m·batch_var_unbiased + (1-m)·var`, evaluated in f64 and rounded once.
    pub fn apply(&self, p: &mut BatchNormParams) {
        let m = f64::from(p.momentum);
        let blend = |batch: f32, running: f32| {
            (m * f64::from(batch) + (1.0 - m) * f64::from(running)) as f32
        };
        for c in 0..p.running_mean.len() {
            p.running_mean[c] = blend(self.batch_mean[c], p.running_mean[c]);
            p.running_var[c] = blend(self.batch_var_unbiased[c], p.running_var[c]);
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

/// Per-channel statistics over every dim but 1 (at least 2 values each), accumulated in f64
/// (two passes).
fn batch_stats(x: &ArrayD<f32>) -> RunningStatUpdate {
    let channels = x.shape()[1];
    let n = (x.len() / channels) as f64;
    let mut stats = RunningStatUpdate {
        batch_mean: Array1::zeros(channels),
        batch_var: Array1::zeros(channels),
        batch_var_unbiased: Array1::zeros(channels),
    };
    for (c, plane) in x.axis_iter(Axis(1)).enumerate() {
        let mu = plane.fold(0.0f64, |s, &v| s + f64::from(v)) / n;
        let ss = plane.fold(0.0f64, |s, &v| s + (f64::from(v) - mu).powi(2));
        stats.batch_mean[c] = mu as f32;
        stats.batch_var[c] = (ss / n) as f32;
        stats.batch_var_unbiased[c] = (ss / (n - 1.0)) as f32;
    }
    stats
}

/// Train-mode forward: normalises by the batch statistics with the same per-channel
/// `x·α + β` form as the eval kernel (`α = γ / sqrt(var + eps)`, `β = b - mean·α`), which is
/// also how PyTorch's CPU kernel applies them.
pub(crate) fn batch_norm_train(
    node: &str,
    x: &ArrayD<f32>,
    p: &BatchNormParams,
) -> Result<(ArrayD<f32>, RunningStatUpdate), GraphError> {
    check_channels(node, x, p)?;
    if x.len() == p.weight.len() {
        return Err(GraphError::Invalid {
            node: node.into(),
            detail: format!(
                "expected more than 1 value per channel when training, got input {:?}",
                x.shape()
            ),
        });
    }
    let stats = batch_stats(x);
    let with_batch_stats = BatchNormParams {
        running_mean: stats.batch_mean.clone(),
        running_var: stats.batch_var.clone(),
        ..p.clone()
    };
    Ok((batch_norm_eval(node, x, &with_batch_stats)?, stats))
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
    let count = x.len() / p.weight.len();
    let (mean, var) = if train {
        let s = batch_stats(x);
        (s.batch_mean, s.batch_var)
    } else {
        (p.running_mean.clone(), p.running_var.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(momentum: f32) -> BatchNormParams {
        BatchNormParams {
            weight: Array1::ones(2),
            bias: Array1::zeros(2),
            running_mean: Array1::zeros(2),
            running_var: Array1::ones(2),
            eps: 1e-5,
            momentum,
        }
    }

    #[test]
    fn one_value_per_channel_cannot_train() {
        let x = ArrayD::from_shape_vec(ndarray::IxDyn(&[1, 2]), vec![3.0, -1.0]).unwrap();
        let err = batch_norm_train("bn", &x, &params(0.1)).unwrap_err();
        assert!(matches!(err, GraphError::Invalid { .. }));
    }

    #[test]
    fn running_stats_blend_with_momentum() {
        let x =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![3.0, -1.0, 5.0, -1.0]).unwrap();
        let mut p = params(0.5);
        let (y, update) = batch_norm_train("bn", &x, &p).unwrap();
        assert_eq!(update.batch_var.to_vec(), vec![1.0, 0.0]);
        assert_eq!(update.batch_var_unbiased.to_vec(), vec![2.0, 0.0]);
        assert_eq!(y[[1, 1]], 0.0);
        update.apply(&mut p);
        assert_eq!(p.running_mean.to_vec(), vec![2.0, -0.5]);
        assert_eq!(p.running_var.to_vec(), vec![1.5, 0.5]);
    }
}
