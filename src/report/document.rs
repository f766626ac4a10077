//! The one renderer every report kind shares. A report is a title, its context, a table (a
//! header of column keys and rows of preformatted cells), notes, and, in HTML only, figures; the
//! four formats are written from those parts here, so a new kind is its rows and nothing else.
//! JSON is the report's own serialization (its fields are the schema).

use super::{Format, ReportContext};
use serde::Serialize;
use std::fmt::Write;

/// What a report kind gives the shared renderers.
pub trait Report: Serialize {
    /// The page's heading.
    fn title(&self) -> String;
    fn context(&self) -> &ReportContext;
    /// The dataset the numbers were measured on (its accuracies are listed), if any.
    fn data(&self) -> Option<&str>;
    /// The column keys, which are also the JSON rows' field names.
    fn headers(&self) -> Vec<&'static str>;
    /// The cells of each row, formatted once (fixed precision) for every text format.
    fn cells(&self) -> Vec<Vec<String>>;
    /// Lines below the table (Markdown and HTML).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// HTML placed between the context and the table (charts); already escaped.
    fn figures_html(&self) -> String {
        String::new()
    }

    /// The report in `format`.
    fn render(&self, format: Format) -> String {
        match format {
            Format::Json => json(self),
            Format::Csv => csv(&self.headers(), &self.cells()),
            Format::Markdown => markdown(self),
            Format::Html => html(self),
        }
    }
}

/// Pretty JSON; serde_json writes a non-finite float (an infinite SQNR) as `null`.
fn json(report: &(impl Report + ?Sized)) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("plain data serializes");
    s.push('\n');
    s
}

/// The context as `key: value` lines, for the text formats.
pub(crate) fn context_lines(c: &ReportContext, data: Option<&str>) -> Vec<String> {
    let pct = |a: Option<f64>| a.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v));
    let mut lines = vec![
        format!(
            "qlab {}, engine {} (profile {}), ISA {}",
            c.qlab_version, c.engine, c.profile, c.isa
        ),
        format!("model {} (sha256 {})", c.model_file, c.model_sha256),
    ];
    if let Some(data) = data {
        lines.push(format!(
            "accuracy on {data}: float {}, quantized {}",
            pct(c.float_accuracy),
            pct(c.quantized_accuracy)
        ));
    }
    for d in &c.datasets {
        lines.push(format!(
            "data {}: {} samples of shape {:?} (sha256 {})",
            d.name, d.samples, d.shape, d.sha256
        ));
    }
    lines
}

fn csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("{}\n", headers.join(","));
    for row in rows {
        let quoted: Vec<String> = row
            .iter()
            .map(|v| {
                if v.contains([',', '"', '\n']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.clone()
                }
            })
            .collect();
        let _ = writeln!(s, "{}", quoted.join(","));
    }
    s
}

fn markdown(report: &(impl Report + ?Sized)) -> String {
    let headers = report.headers();
    let mut s = format!("# {}\n\n", report.title());
    for line in context_lines(report.context(), report.data()) {
        let _ = writeln!(s, "- {line}");
    }
    let _ = write!(
        s,
        "\n| {} |\n|{}\n",
        headers.join(" | "),
        "---|".repeat(headers.len())
    );
    for c in report.cells() {
        let _ = writeln!(s, "| {} |", c.join(" | "));
    }
    for note in report.notes() {
        let _ = write!(s, "\n{note}\n");
    }
    s
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: inline CSS and SVG, no scripts, no external resources.
fn html(report: &(impl Report + ?Sized)) -> String {
    let title = escape(&report.title());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;font-family:monospace;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}</style></head><body>"
    );
    let _ = writeln!(s, "<h1>{title}</h1>\n<ul>");
    for line in context_lines(report.context(), report.data()) {
        let _ = writeln!(s, "<li>{}</li>", escape(&line));
    }
    s.push_str("</ul>\n");
    s.push_str(&report.figures_html());
    let header: String = report
        .headers()
        .iter()
        .map(|h| format!("<th>{}</th>", escape(h)))
        .collect();
    let _ = writeln!(s, "<table><tr>{header}</tr>");
    for c in report.cells() {
        let cells: String = c
            .iter()
            .map(|v| format!("<td>{}</td>", escape(v)))
            .collect();
        let _ = writeln!(s, "<tr>{cells}</tr>");
    }
    s.push_str("</table>\n");
    for note in report.notes() {
        let _ = writeln!(s, "<p>{}</p>", escape(&note));
    }
    s.push_str("</body></html>\n");
    s
}
