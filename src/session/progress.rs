//! Progress of long commands (calibration, sensitivity) as an `indicatif` bar on stderr. Only a
//! front end that owns a plain terminal turns it on (the REPL and `qlab run`), so the TUI's
//! screen is never drawn over; and indicatif draws nothing when stderr is not a terminal, so
//! logs and pipes stay clean. Ctrl-C still cancels: the bar is cleared when the command ends
//! either way.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar for one command; inert when progress is off.
pub(super) struct Progress(Option<ProgressBar>);

impl Progress {
    /// `len` steps of `what` (`None`: an unknown count, shown as a running total).
    pub(super) fn start(on: bool, what: &str, len: Option<u64>) -> Progress {
        if !on {
            return Progress(None);
        }
        let bar = match len {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {msg}: {pos} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what.to_string());
        Progress(Some(bar))
    }

    /// One step done.
    pub(super) fn tick(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
