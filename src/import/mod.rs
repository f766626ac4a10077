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

use crate::graph::Graph;
use std::path::Path;

/// A model as users name it: a `NAME.qlab` directory (qlab's native format) or an ONNX file.
/// Generic over the caller's error type so each keeps its own typed variants.
pub fn load_model<E: From<ImportError> + From<native::NativeError>>(
    path: &Path,
) -> Result<Graph, E> {
    Ok(if path.is_dir() {
        native::load_native(path)?
    } else {
        onnx::load_onnx(path)?
    })
}
