//! Quantized operators and modules, as `torch.nn.quantized` offers them, computed with the exact
//! numerics of the chosen engine (`engine::Numerics`) on the scalar reference kernels.

pub mod activation;
mod conv;
pub mod dynamic;
mod error;
pub mod functional;
pub mod interpolate;
mod linear;
mod packed;
mod pointwise;
pub mod pool;
mod stubs;

pub use activation::{Hardswish, Hardtanh, LeakyReLU, ReLU6};
pub use conv::{ConvAccumulators, ConvParams, QConv};
pub use error::QnnError;
pub use functional::QFunctional;
pub use interpolate::{ResizeMode, ResizeTarget, interpolate};
pub use linear::QLinear;
pub use packed::PackedWeight;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, Layout, MaxPool2d};
pub use stubs::{DeQuantize, Quantize};

/// What an operator observed while running, for the workbench's saturation ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// u8×s8 pair sums that saturated to int16 (fbgemm on AVX2-class hosts, depthwise path).
    pub saturated_pairs: u64,
}
