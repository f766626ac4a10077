//! The process-wide cancel request (Ctrl-C). A front end calls [`request`]; the float and the
//! quantized graph runners look at [`is_requested`] between nodes, so any command that runs a
//! model — calibration, eval, errors, compare, sensitivity — stops within one node's time.
//! Commands commit their results only at the end, so a cancelled command changes nothing; the
//! session layer ([`crate::session::cancel`]) turns the stop into its `Cancelled` error.

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

/// Whether a cancel was requested and not yet taken.
pub fn is_requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Takes the request: `true` once per request.
pub fn take() -> bool {
    REQUESTED.swap(false, Ordering::SeqCst)
}
