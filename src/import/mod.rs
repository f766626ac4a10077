//! Getting models and data into qlab: ONNX import (the float models users export from PyTorch).

mod error;
mod naming;
pub mod npy;
pub mod onnx;

pub use error::ImportError;
pub use naming::module_path;
