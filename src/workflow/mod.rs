//! Quantization workflows over the float graph, in PyTorch's `torch.ao.quantization` order.
//! Fusion comes first: BatchNorm folded into the preceding Conv / Linear (bit-exact with
//! PyTorch's `fuse_conv_bn_eval`) and activations grouped with the module they follow, so later
//! steps observe and quantize fused modules exactly as PyTorch's eager mode does. Then
//! `prepare` places observers, calibration runs data through them, and `convert` builds a
//! [`QuantizedModel`] that runs the engine's quantized kernels. The QAT flow is
//! `fuse_modules_qat` → [`prepare_qat`] → training steps → [`convert_qat`].

mod bias_correction;
mod calibrate;
mod convert;
mod dynamic;
mod equalize;
mod error;
mod fold;
mod fuse;
mod modules;
mod prepare;
mod qat;
mod qat_convert;
mod qat_train;
mod qconfig_map;
mod qmodel;

pub use bias_correction::{Corrected, correct_bias};
pub use convert::{Finding, Severity, check, check_qconfigs, convert, convert_with_qparams};
pub use dynamic::{dynamic_qconfig_map, quantize_dynamic};
pub use equalize::{DEFAULT_THRESHOLD, Equalized, MAX_SWEEPS, Pair, Skipped, equalize, find_pairs};
pub use error::{FuseError, WorkflowError};
pub use fold::{fuse_conv_bn_eval, fuse_conv_transpose_bn_eval, fuse_linear_bn_eval};
pub use fuse::{
    FuseOptions, FusedGroup, fuse_auto, fuse_auto_with, fuse_modules, fuse_modules_qat,
};
pub use modules::{ModuleType, module_types, state_dict};
pub use prepare::{ActivationObserver, Placement, Prepared, prepare};
pub use qat::{ActivationFakeQuant, ConvBn, QatError, QatModel, prepare_qat};
pub use qat_convert::convert_qat;
pub use qat_train::{Epoch, StepResult};
pub use qconfig_map::{QConfigKey, QConfigMap};
pub use qmodel::{QOp, QValue, QuantizedModel};
