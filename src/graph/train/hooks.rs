//! The extension point quantization-aware training uses to insert FakeQuantize.
//!
//! During the training forward every Conv / Linear weight passes through
//! [`TrainHooks::weight`] before use and every float node output through
//! [`TrainHooks::output`]. A hook returns the transformed tensor and an elementwise gradient
//! mask; the backward multiplies the incoming gradient by that mask (the straight-through
//! estimator of NUMERICS §3.2: 1 where the rounded value was in range, 0 where it was clamped).
//! Returning `None` leaves the tensor untouched and costs nothing.

use ndarray::ArrayD;

/// A hook's result: the tensor to use instead and the gradient mask (same shape; `None` means
/// the gradient passes unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct Masked {
    pub value: ArrayD<f32>,
    pub mask: Option<ArrayD<f32>>,
}

/// Callbacks of the training forward. Both default to "no change".
pub trait TrainHooks {
    /// Called with a Conv / Linear node's name and its weight before the weight is used.
    fn weight(&mut self, _node: &str, _weight: &ArrayD<f32>) -> Option<Masked> {
        None
    }

    /// Called with a node's name and each float output it produces.
    fn output(&mut self, _node: &str, _value: &ArrayD<f32>) -> Option<Masked> {
        None
    }

    /// Whether a BatchNorm node keeps its statistics frozen in [`Mode::Train`]: it then
    /// normalises with its running statistics and does not update them (QAT's
    /// `freeze_bn_stats`). Its γ and β still train.
    ///
    /// [`Mode::Train`]: super::Mode::Train
    fn freeze_batch_norm(&mut self, _node: &str) -> bool {
        false
    }
}

/// Plain float training.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl TrainHooks for NoHooks {}
