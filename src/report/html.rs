//! The error report's HTML figures (the page itself is `document.rs`'s): a bar chart of
//! per-layer SQNR, and the observer histograms of the worst layers, so the page shows what the
//! observers chose to keep and clip where it costs the most.

use super::ErrorReport;
use super::document::escape;
use std::fmt::Write;

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

/// What the error page shows above its table: the SQNR chart, then the worst layers'
/// observer histograms when they were gathered.
pub(super) fn figures(report: &ErrorReport) -> String {
    let mut s = String::from("<p>SQNR per layer (graph order):</p>\n");
    s.push_str(&chart(report));
    let Some(h) = &report.histograms else {
        return s;
    };
    s.push_str("<h2>Observer histograms of the worst layers</h2>\n");
    if let Some(why) = &h.missing {
        let _ = writeln!(s, "<p>{}</p>", escape(why));
    }
    for f in &h.layers {
        let sqnr = if f.sqnr_db.is_finite() {
            format!("{:.2} dB", f.sqnr_db)
        } else {
            "exact".into()
        };
        let _ = writeln!(s, "<h3>{} ({sqnr})</h3>", escape(&f.layer));
        match &f.svg {
            // plotters' SVG is a bare <svg> element, which HTML5 takes inline.
            Ok(svg) => {
                s.push_str(svg);
                s.push('\n');
            }
            Err(why) => {
                let _ = writeln!(s, "<p>no histogram: {}</p>", escape(why));
            }
        }
    }
    s
}
