//! Quantized operators and modules, as `torch.nn.quantized` offers them, computed with the exact
//! numerics of the chosen engine (`engine::Numerics`) on the scalar reference kernels.

mod conv;
pub mod dynamic;
mod error;
mod linear;
mod packed;
mod stubs;

pub use conv::{ConvAccumulators, ConvParams, QConv};
pub use error::QnnError;
pub use linear::QLinear;
pub use packed::PackedWeight;
pub use stubs::{DeQuantize, Quantize};

/// What an operator observed while running, for the workbench's saturation ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// u8×s8 pair sums that saturated to int16 (fbgemm on AVX2-class hosts, depthwise path).
    pub saturated_pairs: u64,
}
