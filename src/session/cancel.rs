//! Cancelling a running command (Ctrl-C in the REPL). A front end calls [`request`]; long
//! loops (batches of a dataset, calibration, sensitivity runs) call [`check`] between steps and
//! stop with [`SessionError::Cancelled`]. Commands commit their results only at the end, so a
//! cancelled command leaves the workbench exactly as it was.

use super::SessionError;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the running command to stop at its next check (safe from a signal handler).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Clears a request before a new command starts.
pub fn reset() {
    REQUESTED.store(false, Ordering::SeqCst);
}

/// `Err(Cancelled)` once a cancel was requested.
pub fn check() -> Result<(), SessionError> {
    if REQUESTED.swap(false, Ordering::SeqCst) {
        Err(SessionError::Cancelled)
    } else {
        Ok(())
    }
}
