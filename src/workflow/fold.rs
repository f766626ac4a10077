//! Eval-mode BatchNorm folding (NUMERICS §5.2), bit-exact with PyTorch's `fuse_conv_bn_eval`,
//! `fuse_conv_bn_weights` and `fuse_linear_bn_weights`.
//!
//! Every step is one f32 operation in PyTorch's order; `torch.rsqrt` on CPU is a rounded sqrt
//! followed by a rounded division, so `r = 1 / sqrt(var + eps)` is computed exactly that way
//! (the correctly rounded reciprocal square root differs in about a quarter of the values).

use super::FuseError;
use crate::graph::{BatchNormParams, ConvParams, LinearParams};
use ndarray::{Array1, ArrayD, Axis, Zip};

/// `torch.rsqrt(var + eps)` per channel, as PyTorch's CPU kernel rounds it.
fn rsqrt(bn: &BatchNormParams) -> Array1<f32> {
    bn.running_var.mapv(|v| 1.0 / (v + bn.eps).sqrt())
}

fn check(channels: usize, bn: &BatchNormParams, module: &str) -> Result<(), FuseError> {
    if channels == bn.weight.len() {
        Ok(())
    } else {
        Err(FuseError::ChannelMismatch {
            module: module.into(),
            bn: "bn".into(),
            channels,
            bn_channels: bn.weight.len(),
        })
    }
}

/// `W' = W · (γ·r)` along `axis`, and `b' = ((b - μ)·r)·γ + β` (conv grouping, left to right).
fn fold_conv_like(
    weight: &ArrayD<f32>,
    bias: Option<&Array1<f32>>,
    axis: usize,
    bn: &BatchNormParams,
    module: &str,
) -> Result<(ArrayD<f32>, Array1<f32>), FuseError> {
    check(weight.shape().get(axis).copied().unwrap_or(0), bn, module)?;
    let r = rsqrt(bn);
    let scale = &bn.weight * &r;
    let mut w = weight.clone();
    for (mut sub, &s) in w.axis_iter_mut(Axis(axis)).zip(&scale) {
        sub.mapv_inplace(|v| v * s);
    }
    let zeros = Array1::zeros(bn.weight.len());
    let b = bias.unwrap_or(&zeros);
    let mut out = Array1::zeros(bn.weight.len());
    Zip::from(&mut out)
        .and(b)
        .and(&bn.running_mean)
        .and(&r)
        .and(&bn.weight)
        .and(&bn.bias)
        .for_each(|o, &b, &m, &r, &g, &beta| *o = (b - m) * r * g + beta);
    Ok((w, out))
}

/// Folds an eval-mode BatchNorm into the convolution before it (`torch.nn.utils.fusion.
/// fuse_conv_bn_eval`): the result always has a bias (zeros stand in for an absent one).
pub fn fuse_conv_bn_eval(conv: &ConvParams, bn: &BatchNormParams) -> Result<ConvParams, FuseError> {
    let (weight, bias) = fold_conv_like(&conv.weight, conv.bias.as_ref(), 0, bn, "conv")?;
    Ok(ConvParams {
        weight,
        bias: Some(bias),
        ..conv.clone()
    })
}

/// The same folding for a transposed convolution, whose weight is `[in, out / groups, k…]`:
/// PyTorch scales dim 1, so a grouped transposed conv (dim 1 shorter than the BN) is refused
/// just as PyTorch fails on it. Returns the folded weight and bias.
pub fn fuse_conv_transpose_bn_eval(
    weight: &ArrayD<f32>,
    bias: Option<&Array1<f32>>,
    bn: &BatchNormParams,
) -> Result<(ArrayD<f32>, Array1<f32>), FuseError> {
    fold_conv_like(weight, bias, 1, bn, "conv_transpose")
}

/// Folds an eval-mode BatchNorm1d into the Linear before it (`fuse_linear_bn_eval`):
/// `W' = W · (γ·r)` row-wise and `b' = (b - μ)·(γ·r) + β` — PyTorch groups `γ·r` here, unlike
/// the conv form.
pub fn fuse_linear_bn_eval(
    linear: &LinearParams,
    bn: &BatchNormParams,
) -> Result<LinearParams, FuseError> {
    check(linear.weight.nrows(), bn, "linear")?;
    let scale = &bn.weight * &rsqrt(bn);
    let mut weight = linear.weight.clone();
    for (mut row, &s) in weight.rows_mut().into_iter().zip(&scale) {
        row.mapv_inplace(|v| v * s);
    }
    let zeros = Array1::zeros(bn.weight.len());
    let b = linear.bias.as_ref().unwrap_or(&zeros);
    let mut bias = Array1::zeros(bn.weight.len());
    Zip::from(&mut bias)
        .and(b)
        .and(&bn.running_mean)
        .and(&scale)
        .and(&bn.bias)
        .for_each(|o, &b, &m, &s, &beta| *o = (b - m) * s + beta);
    Ok(LinearParams {
        weight,
        bias: Some(bias),
        call: linear.call,
    })
}
