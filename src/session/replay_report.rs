//! A replay recorded for `qlab run --junit/--json`: every command that ran becomes a
//! [`CommandResult`] (an `expect` with its comparison), the line the replay stopped at becomes a
//! failed or errored one, and the `expect` lines after it are listed as skipped, so a CI report
//! shows every gate of the script, not only those before the first failure.

use super::{Command, Expectation, Output, ReplayError, SessionError, Workbench, parse_line};
use super::{Step, replay_steps};
use crate::report::{CommandResult, Comparison, ReplayReport, SkippedLine, Status};

/// Replays `text` (the script at `script`) like [`super::replay_script`], calling `on_output`
/// after each command, and returns the replay's report next to its result.
pub fn replay_with_report(
    script: &str,
    text: &str,
    wb: &mut Workbench,
    mut on_output: impl FnMut(&Command, &Output),
) -> (ReplayReport, Result<usize, ReplayError>) {
    let mut commands = Vec::new();
    let result = replay_steps(text, wb, |step| {
        on_output(step.command, step.output);
        commands.push(succeeded(&step));
    });
    let mut skipped = Vec::new();
    if let Err(e) = &result {
        commands.push(stopped(e));
        skipped = expects_after(text, e.line);
    }
    (ReplayReport::new(script, commands, skipped), result)
}

fn milliseconds(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn comparison(e: &Expectation, actual: Option<f64>, holds: bool) -> Comparison {
    Comparison {
        metric: e.metric.to_string(),
        op: e.op.symbol().to_string(),
        expected: e.value,
        actual: actual.filter(|a| !a.is_nan()),
        holds,
    }
}

/// The measured value in an `expect` message, which ends `(actual VALUE)` when it holds.
fn actual_in(message: &str) -> Option<f64> {
    let (_, tail) = message.trim_end().rsplit_once("(actual ")?;
    tail.strip_suffix(')')?.parse().ok()
}

fn succeeded(step: &Step<'_>) -> CommandResult {
    let output = step.output.to_string();
    let expect = match step.command {
        Command::Expect(e) => Some(comparison(e, actual_in(&output), true)),
        _ => None,
    };
    CommandResult {
        line: step.line,
        text: step.text.to_string(),
        status: Status::Ok,
        elapsed_ms: milliseconds(step.elapsed),
        output,
        expect,
    }
}

/// The line a replay stopped at: a failed `expect` with its comparison, or an error.
fn stopped(e: &ReplayError) -> CommandResult {
    let (status, expect) = match (&*e.error, parse_line(&e.text)) {
        (SessionError::ExpectationFailed { actual, .. }, Ok(Some(Command::Expect(x)))) => (
            Status::Failed,
            Some(comparison(&x, actual.parse().ok(), false)),
        ),
        _ => (Status::Error, None),
    };
    CommandResult {
        line: e.line,
        text: e.text.clone(),
        status,
        elapsed_ms: milliseconds(e.elapsed),
        output: e.error.to_string(),
        expect,
    }
}

/// The `expect` lines after line `stop` (1-based); a line that does not parse is no test case.
fn expects_after(text: &str, stop: usize) -> Vec<SkippedLine> {
    text.lines()
        .enumerate()
        .skip(stop)
        .filter(|(_, line)| matches!(parse_line(line), Ok(Some(Command::Expect(_)))))
        .map(|(i, line)| SkippedLine {
            line: i + 1,
            text: line.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actual_value_is_read_back_from_the_expect_message() {
        assert_eq!(
            actual_in("ok: correct(test) >= 3 (actual 387)\n"),
            Some(387.0)
        );
        assert_eq!(actual_in("ok: x (actual inf)"), Some(f64::INFINITY));
        assert_eq!(actual_in("loaded"), None);
    }

    #[test]
    fn a_stopped_replay_lists_the_expects_it_never_reached() {
        let script = "expect correct(nodata) >= 1\n# note\nexpect correct(t) >= 2\nexpect bogus\n";
        let (report, result) =
            replay_with_report("s.qls", script, &mut Workbench::new(), |_, _| {});
        assert_eq!(result.unwrap_err().line, 1);
        assert_eq!(report.commands.len(), 1);
        assert_eq!(report.commands[0].status, Status::Error);
        let skipped: Vec<usize> = report.skipped_expects.iter().map(|s| s.line).collect();
        assert_eq!(skipped, [3], "an unparsable line is not a test case");
        assert_eq!(report.summary.result, "error");
    }
}
