//! Cancelling a running command at the session level. Long loops (batches of a dataset,
//! calibration, sensitivity runs) call [`check`] between steps; inside a model run the graph
//! runners stop by themselves (see [`crate::cancel`]) and [`Workbench::apply`] reports that
//! stop as [`SessionError::Cancelled`].
//!
//! [`Workbench::apply`]: super::Workbench::apply

use super::SessionError;
pub use crate::cancel::{request, reset};

/// `Err(Cancelled)` once a cancel was requested.
pub fn check() -> Result<(), SessionError> {
    if crate::cancel::take() {
        Err(SessionError::Cancelled)
    } else {
        Ok(())
    }
}
