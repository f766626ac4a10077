//! Training for the float graph engine: a training-mode forward that records what backward
//! needs, reverse-mode gradients for every differentiable op, cross-entropy loss, parameter
//! access by PyTorch name, SGD / Adam, PyTorch's default initialisation and a training loop.
//!
//! Quantization-aware training plugs in through [`TrainHooks`]: fake-quantize weights and
//! activations during the forward and mask gradients in the backward (straight-through).

mod backward;
mod batch_norm;
mod conv;
mod fit;
mod hooks;
mod init;
mod linear;
mod loss;
mod optim;
mod params;
mod pointwise;
mod pool;
mod shape;
mod tape;

pub use backward::{Gradients, backward};
pub use batch_norm::RunningStatUpdate;
pub use fit::{FitConfig, accuracy, fit, train_step};
pub use hooks::{Masked, NoHooks, TrainHooks};
pub use init::{Rng, reset_parameters};
pub use loss::cross_entropy;
pub use optim::{Adam, Optimizer, Sgd};
pub use params::{parameters, parameters_mut};
pub use tape::{Mode, Tape, forward_train};
