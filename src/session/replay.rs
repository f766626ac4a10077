//! Headless replay of a `.qls` script: every line is parsed and applied in order; the first
//! error (including a failed `expect`) stops the replay and names its line. A command that
//! panics (a bug) is caught and reported the same way, as an internal error, so a replay never
//! dies without saying which line it was on.

use super::{Command, Output, SessionError, Workbench, parse_line};
use std::fmt;
use std::time::{Duration, Instant};

/// The line at which a replay stopped, and why.
#[derive(Debug)]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    pub text: String,
    pub error: Box<SessionError>,
    /// How long the line ran before it failed.
    pub elapsed: Duration,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}\n  {}",
            self.line,
            self.text.trim(),
            self.error
        )
    }
}

impl std::error::Error for ReplayError {}

impl ReplayError {
    /// True when the line failed because of a bug in qlab rather than the script.
    pub fn is_internal(&self) -> bool {
        matches!(*self.error, SessionError::Internal { .. })
    }

    /// True when the line was an `expect` that did not hold (the script ran as written).
    pub fn is_failed_expectation(&self) -> bool {
        matches!(*self.error, SessionError::ExpectationFailed { .. })
    }
}

/// Runs `f`, turning a panic into [`SessionError::Internal`] with the panic's message.
fn caught(f: impl FnOnce() -> Result<Output, SessionError>) -> Result<Output, SessionError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(SessionError::Internal { detail })
    })
}

/// One command a replay ran: where it was, what it printed, and how long it took.
pub struct Step<'a> {
    /// 1-based line number.
    pub line: usize,
    pub text: &'a str,
    pub command: &'a Command,
    pub output: &'a Output,
    pub elapsed: Duration,
}

/// Replays `script` on `wb`, calling `on_output` after each command; returns how many commands ran.
pub fn replay_script(
    script: &str,
    wb: &mut Workbench,
    mut on_output: impl FnMut(&Command, &Output),
) -> Result<usize, ReplayError> {
    replay_steps(script, wb, |step| on_output(step.command, step.output))
}

/// [`replay_script`] telling `on_step` each command's line and time too, for a report of the
/// replay (`qlab run --junit/--json`).
pub fn replay_steps(
    script: &str,
    wb: &mut Workbench,
    mut on_step: impl FnMut(Step<'_>),
) -> Result<usize, ReplayError> {
    let mut count = 0;
    for (i, text) in script.lines().enumerate() {
        let start = Instant::now();
        let fail = |error: SessionError| ReplayError {
            line: i + 1,
            text: text.to_string(),
            error: Box::new(error),
            elapsed: start.elapsed(),
        };
        let Some(cmd) = parse_line(text).map_err(fail)? else {
            continue;
        };
        let out = caught(|| wb.apply(&cmd)).map_err(fail)?;
        on_step(Step {
            line: i + 1,
            text,
            command: &cmd,
            output: &out,
            elapsed: start.elapsed(),
        });
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let err = caught(|| panic!("index out of bounds")).unwrap_err();
        assert!(
            matches!(&err, SessionError::Internal { detail } if detail == "index out of bounds")
        );
        assert!(err.to_string().contains("internal error"), "{err}");
        let n = 3;
        let err = caught(|| panic!("{n} nodes")).unwrap_err();
        assert!(matches!(err, SessionError::Internal { detail } if detail == "3 nodes"));
        assert!(caught(|| Ok(Output::None)).is_ok());
    }
}
