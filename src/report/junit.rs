//! A replay as JUnit XML, the report format CI systems (GitLab, Jenkins, GitHub test reporters)
//! read: one `<testsuite>` per script, one `<testcase>` per `expect` line that ran, plus one for
//! the line that errored and a `<skipped/>` one for every `expect` the replay never reached, so
//! the gate shows even when the script stopped early. Every text is escaped, control characters
//! included, because command output and error messages may carry anything.

use super::replay::{ReplayReport, Status};
use std::fmt::Write;

/// `text` made safe for XML 1.0 content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // As references so attribute-value normalization keeps them.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            // XML 1.0 forbids the other C0 controls even as references: spell them out.
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Seconds with millisecond precision, as JUnit's `time` attributes want them.
fn seconds(ms: f64) -> String {
    format!("{:.3}", ms / 1000.0)
}

/// The JUnit XML document of `report`.
pub fn junit_xml(report: &ReplayReport) -> String {
    let name = xml_escape(&report.script);
    // Test cases in script order: expect lines that ran, the line that errored, skipped expects.
    let mut cases: Vec<(usize, String)> = Vec::new();
    let (mut failures, mut errors) = (0, 0);
    for c in &report.commands {
        let head = format!(
            "    <testcase name=\"{}\" classname=\"{name}\" time=\"{}\"",
            xml_escape(&format!("line {}: {}", c.line, c.text.trim())),
            seconds(c.elapsed_ms)
        );
        let message = xml_escape(c.output.trim_end());
        let case = match c.status {
            Status::Ok if c.expect.is_some() => format!("{head}/>\n"),
            Status::Ok => continue,
            Status::Failed => {
                failures += 1;
                format!(
                    "{head}>\n      <failure message=\"{message}\" type=\"expect\">{message}</failure>\n    </testcase>\n"
                )
            }
            Status::Error => {
                errors += 1;
                format!(
                    "{head}>\n      <error message=\"{message}\" type=\"error\">{message}</error>\n    </testcase>\n"
                )
            }
        };
        cases.push((c.line, case));
    }
    let stop = report.summary.stopped_at_line.unwrap_or(0);
    for s in &report.skipped_expects {
        let case = format!(
            "    <testcase name=\"{}\" classname=\"{name}\" time=\"0.000\">\n      <skipped message=\"not run: the replay stopped at line {stop}\"/>\n    </testcase>\n",
            xml_escape(&format!("line {}: {}", s.line, s.text.trim())),
        );
        cases.push((s.line, case));
    }
    cases.sort_by_key(|(line, _)| *line);
    let (tests, skipped) = (cases.len(), report.skipped_expects.len());
    let time = seconds(report.summary.elapsed_ms);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"qlab run\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    out.push_str("    <properties>\n");
    for (key, value) in [
        ("qlab.version", report.qlab_version),
        ("qlab.script", report.script.as_str()),
        ("qlab.result", report.summary.result),
    ] {
        let _ = writeln!(
            out,
            "      <property name=\"{key}\" value=\"{}\"/>",
            xml_escape(value)
        );
    }
    out.push_str("    </properties>\n");
    for (_, case) in cases {
        out.push_str(&case);
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::replay::{CommandResult, Comparison, SkippedLine};

    fn command(line: usize, text: &str, status: Status, expect: bool) -> CommandResult {
        CommandResult {
            line,
            text: text.into(),
            status,
            elapsed_ms: 1500.0,
            output: format!("out of {text} <&>\u{1b}[0m"),
            expect: expect.then(|| Comparison {
                metric: "correct(test)".into(),
                op: ">=".into(),
                expected: 1.0,
                actual: Some(2.0),
                holds: status == Status::Ok,
            }),
        }
    }

    #[test]
    fn escaping_covers_markup_quotes_and_controls() {
        assert_eq!(
            xml_escape("a&b<c>\"d'\n\u{1}"),
            "a&amp;b&lt;c&gt;&quot;d&apos;&#10;\\u{1}"
        );
    }

    #[test]
    fn counts_match_the_cases_and_non_expect_commands_are_not_cases() {
        let report = ReplayReport::new(
            "dir/a&b.qls",
            vec![
                command(1, "load model m.onnx", Status::Ok, false),
                command(2, "expect correct(test) >= 1", Status::Ok, true),
                command(4, "expect correct(test) >= 3", Status::Failed, true),
            ],
            vec![SkippedLine {
                line: 6,
                text: "expect correct(test) >= 0".into(),
            }],
        );
        let xml = junit_xml(&report);
        assert!(
            xml.contains("<testsuite name=\"dir/a&amp;b.qls\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"4.500\">"),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert!(xml.contains("name=\"line 2: expect correct(test) &gt;= 1\""));
        assert!(xml.contains("stopped at line 4"), "{xml}");
        assert!(!xml.contains('\u{1b}'), "{xml}");
    }
}
