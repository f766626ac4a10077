//! Headless replay of a `.qls` script: every line is parsed and applied in order; the first
//! error (including a failed `expect`) stops the replay and names its line.

use super::{Command, Output, SessionError, Workbench, parse_line};
use std::fmt;

/// The line at which a replay stopped, and why.
#[derive(Debug)]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    pub text: String,
    pub error: Box<SessionError>,
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

/// Replays `script` on `wb`, calling `on_output` after each command; returns how many commands ran.
pub fn replay_script(
    script: &str,
    wb: &mut Workbench,
    mut on_output: impl FnMut(&Command, &Output),
) -> Result<usize, ReplayError> {
    let mut count = 0;
    for (i, text) in script.lines().enumerate() {
        let fail = |error: SessionError| ReplayError {
            line: i + 1,
            text: text.to_string(),
            error: Box::new(error),
        };
        let Some(cmd) = parse_line(text).map_err(fail)? else {
            continue;
        };
        let out = wb.apply(&cmd).map_err(fail)?;
        on_output(&cmd, &out);
        count += 1;
    }
    Ok(count)
}
