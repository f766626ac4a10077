//! Dynamic quantization (`torch.ao.quantization.quantize_dynamic`, NUMERICS §7): weights are
//! converted once (qint8 per-tensor or per-channel, or float16), activations are quantized on
//! every call from their own range, and outputs are float. `weight` converts, `activation`
//! quantizes inputs, `linear` and `lstm` are the modules.

mod activation;
mod linear;
mod lstm;
mod weight;

pub use activation::quantize_activation;
pub use linear::DynamicLinear;
pub use lstm::{DynamicLstm, DynamicLstmCell, DynamicLstmOutput, LstmConfig, LstmFloatParams};
pub use weight::{DynamicWeight, DynamicWeightDtype, round_to_f16};
