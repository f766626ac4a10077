//! Quantization workflows over the float graph, in PyTorch's `torch.ao.quantization` order.
//! Fusion comes first: BatchNorm folded into the preceding Conv / Linear (bit-exact with
//! PyTorch's `fuse_conv_bn_eval`) and activations grouped with the module they follow, so later
//! steps observe and quantize fused modules exactly as PyTorch's eager mode does.

mod error;
mod fold;
mod fuse;
mod modules;

pub use error::FuseError;
pub use fold::{fuse_conv_bn_eval, fuse_conv_transpose_bn_eval, fuse_linear_bn_eval};
pub use fuse::{FusedGroup, fuse_auto, fuse_modules, fuse_modules_qat};
pub use modules::{ModuleType, module_types, state_dict};
