//! QConfig: which observer or fake-quant watches a module's activation and weight.
//!
//! [`QuantizerSpec`] is one QConfig field (an observer spec or a fake-quant spec);
//! [`QConfig`] pairs two of them with validation and a text form for the session language;
//! [`presets`] reproduces PyTorch 2.x's named presets and backend defaults (NUMERICS §4.1).

mod config;
mod error;
pub mod presets;
mod quantizer;

pub use config::{QConfig, QConfigDynamic};
pub use error::QConfigError;
pub use presets::{
    Backend, Preset, get_default_qat_qconfig, get_default_qconfig, preset, preset_names,
};
pub use quantizer::QuantizerSpec;
