//! The HTML report: one self-contained page (inline CSS and SVG, no scripts, no external
//! resources) with a bar chart of per-layer SQNR and the full table.

use super::ErrorReport;
use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars of SQNR per layer in graph order; red below 20 dB, amber below 30 dB.
fn chart(report: &ErrorReport) -> String {
    const ROW: usize = 18;
    const LABEL: usize = 160;
    const WIDTH: usize = 520;
    let max = report
        .rows
        .iter()
        .map(|r| r.sqnr_db)
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    let height = ROW * report.rows.len() + 24;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\">\n",
        LABEL + WIDTH + 60
    );
    for (i, r) in report.rows.iter().enumerate() {
        let y = i * ROW + 4;
        let v = if r.sqnr_db.is_finite() {
            r.sqnr_db
        } else {
            max
        };
        let w = ((v.max(0.0) / max) * WIDTH as f64).round() as usize;
        let colour = match r.sqnr_db {
            v if v < 20.0 => "#d9534f",
            v if v < 30.0 => "#f0ad4e",
            _ => "#5cb85c",
        };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            LABEL - 6,
            y + 12,
            escape(&r.layer),
            ROW - 4,
            LABEL + w + 4,
            y + 12,
            if r.sqnr_db.is_finite() {
                format!("{:.1} dB", r.sqnr_db)
            } else {
                "exact".into()
            }
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The whole page.
pub(super) fn page(report: &ErrorReport) -> String {
    let title = format!(
        "{} activation error — {} on {} ({})",
        report.mode, report.model, report.data, report.engine
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;font-family:monospace;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}</style></head><body>",
        escape(&title)
    );
    let _ = writeln!(s, "<h1>{}</h1>\n<ul>", escape(&title));
    for line in report.context_lines() {
        let _ = writeln!(s, "<li>{}</li>", escape(&line));
    }
    let _ = writeln!(s, "</ul>\n<p>SQNR per layer (graph order):</p>");
    s.push_str(&chart(report));
    s.push_str("<table><tr><th>layer</th><th>op</th><th>SQNR dB</th><th>MSE</th><th>max abs</th><th>mean err</th><th>cosine</th><th>rmse/scale</th><th>clip rate</th><th>input clip rate</th><th>saturated pairs</th></tr>\n");
    for c in report.cells() {
        let cells: Vec<String> = c
            .iter()
            .map(|v| format!("<td>{}</td>", escape(v)))
            .collect();
        let _ = writeln!(s, "<tr>{}</tr>", cells.concat());
    }
    let _ = writeln!(
        s,
        "</table>\n<p>schema version {}; uniform rounding gives rmse/scale 0.2887.</p></body></html>",
        report.schema_version
    );
    s
}
