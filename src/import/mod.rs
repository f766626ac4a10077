//! Getting models and data into qlab: ONNX import (the float models users export from PyTorch).

mod dataset;
mod error;
mod naming;
pub mod native;
pub mod npy;
mod npy_header;
pub mod npz;
pub mod onnx;

pub use dataset::{Dataset, DatasetError};
pub use error::{ImportError, UnsupportedSite};
pub use naming::module_path;
