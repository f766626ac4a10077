//! The record of one `qlab run`: each command that ran (line, text, status, time, the text the
//! terminal showed, and for an `expect` its comparison), the `expect` lines the replay never
//! reached, and a summary. It is plain data so this layer needs nothing from `session`; the
//! session layer fills it in, and it is written as a versioned JSON document (serde) or as
//! JUnit XML (`junit.rs`) for CI systems to show the gate.
//!
//! JSON schema history (`schema_version`): 1 — the first version.

use serde::Serialize;

/// The replay JSON's schema version; bump it when a field changes meaning or disappears.
pub const REPLAY_SCHEMA_VERSION: u32 = 1;

/// How one command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// An `expect` that did not hold.
    Failed,
    /// Any other error: a bad line, a refused command, a bug in qlab.
    Error,
}

/// An `expect` line's comparison: `metric op expected`, and what the metric measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub metric: String,
    pub op: String,
    pub expected: f64,
    /// `None` when the measured value could not be read back (or is NaN).
    pub actual: Option<f64>,
    pub holds: bool,
}

/// One command that ran (or failed at its line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandResult {
    /// 1-based line number in the script.
    pub line: usize,
    pub text: String,
    pub status: Status,
    pub elapsed_ms: f64,
    /// What the terminal showed: the command's output, or the error message.
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<Comparison>,
}

/// An `expect` line after the line the replay stopped at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedLine {
    pub line: usize,
    pub text: String,
}

/// Counts over the whole replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `passed`, `failed` (an `expect` did not hold) or `error`.
    pub result: &'static str,
    pub commands: usize,
    pub expects_passed: usize,
    pub expects_failed: usize,
    pub expects_skipped: usize,
    pub errors: usize,
    /// The line the replay stopped at, when it did not run to the end.
    pub stopped_at_line: Option<usize>,
    pub elapsed_ms: f64,
}

/// A whole replay, as written by `qlab run --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub schema_version: u32,
    pub qlab_version: &'static str,
    pub script: String,
    pub commands: Vec<CommandResult>,
    pub skipped_expects: Vec<SkippedLine>,
    pub summary: Summary,
}

impl ReplayReport {
    /// The report of `commands` (in script order) and the `skipped` expect lines; the summary is
    /// derived here so it can never disagree with the lists.
    pub fn new(script: &str, commands: Vec<CommandResult>, skipped: Vec<SkippedLine>) -> Self {
        let count = |status: Status, expect: bool| {
            commands
                .iter()
                .filter(|c| c.status == status && (!expect || c.expect.is_some()))
                .count()
        };
        let (passed, failed, errors) = (
            count(Status::Ok, true),
            count(Status::Failed, false),
            count(Status::Error, false),
        );
        let result = match (failed, errors) {
            (_, 1..) => "error",
            (1.., _) => "failed",
            _ => "passed",
        };
        let stopped_at_line = commands
            .iter()
            .find(|c| c.status != Status::Ok)
            .map(|c| c.line);
        let summary = Summary {
            result,
            commands: commands.len(),
            expects_passed: passed,
            expects_failed: failed,
            expects_skipped: skipped.len(),
            errors,
            stopped_at_line,
            elapsed_ms: commands.iter().map(|c| c.elapsed_ms).sum(),
        };
        ReplayReport {
            schema_version: REPLAY_SCHEMA_VERSION,
            qlab_version: env!("CARGO_PKG_VERSION"),
            script: script.to_string(),
            commands,
            skipped_expects: skipped,
            summary,
        }
    }

    /// The pretty-printed JSON document.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).expect("a replay report serializes") + "\n"
    }
}
