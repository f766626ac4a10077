//! The engine-speed pane: per layer and in total, the latency of fp32 and of each engine (at
//! each ISA tier measured) with the speedup over fp32; a progress gauge while it measures.

use crate::analysis::LatencyReport;
use crate::session::LATENCY_REPS;
use crate::tui::app::App;
use crate::tui::speed::SpeedState;
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Cell, LineGauge, Paragraph, Row, Table, TableState};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let title = format!(" engine speed (batch 1, 1 thread, median of {LATENCY_REPS}) ");
    let block = theme::pane(title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    match &app.speed {
        None => {}
        Some(SpeedState::Running { done, total, .. }) => {
            let [gauge, note] =
                Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
            let ratio = *done as f64 / (*total).max(1) as f64;
            frame.render_widget(
                LineGauge::default()
                    .filled_style(Style::new().fg(Color::Cyan))
                    .label(format!("measuring {done}/{total} runs"))
                    .ratio(ratio.clamp(0.0, 1.0)),
                gauge,
            );
            frame.render_widget(
                Paragraph::new("the UI stays live; e closes the pane and cancels")
                    .style(theme::dim()),
                note,
            );
        }
        Some(SpeedState::Failed(e)) => frame.render_widget(
            Paragraph::new(format!("measurement failed: {e}")).style(Style::new().fg(Color::Red)),
            inner,
        ),
        Some(SpeedState::Done(report)) => draw_table(app, report, frame, inner),
    }
}

/// `ms speedup×` of one cell; the speedup where fp32 has the same layer.
fn cell(ms: Option<f64>, fp32: Option<f64>) -> String {
    match (ms, fp32) {
        (Some(m), Some(f)) => format!("{m:.4} {:.2}x", f / m),
        (Some(m), None) => format!("{m:.4}"),
        (None, _) => "-".into(),
    }
}

fn draw_table(app: &App, report: &LatencyReport, frame: &mut Frame, area: Rect) {
    let selected = app.selected_row().map(|r| r.layer.as_str());
    // Two header lines (engine, then tier and unit) keep the columns narrow.
    let head = |top: &str, bottom: String| {
        Cell::from(Text::from(vec![
            Line::from(top.to_string()),
            Line::from(bottom),
        ]))
    };
    let mut header = vec![head("layer", String::new()), head("fp32", "ms".into())];
    header.extend(report.columns.iter().map(|c| match c.split_once('@') {
        Some((engine, tier)) => head(engine, format!("{tier} ms")),
        None => head(c, "ms".into()),
    }));
    // The totals first, so they stay in view when the layers do not fit.
    let fp32 = report.fp32_total_ms();
    let mut total = vec![Cell::from("total"), Cell::from(format!("{fp32:.4}"))];
    total.extend(
        (0..report.columns.len()).map(|c| Cell::from(cell(Some(report.total_ms(c)), Some(fp32)))),
    );
    // Layer paths take at most 2/5 of the pane (middle-elided beyond), so the engine columns
    // and their ratios stay whole beside MobileNet-length module paths.
    let name_width = report
        .rows
        .iter()
        .map(|r| r.layer.chars().count())
        .max()
        .unwrap_or(0)
        .min(usize::from(area.width) * 2 / 5)
        .max(5);
    let mut rows = vec![Row::new(total).style(theme::header())];
    rows.extend(report.rows.iter().map(|r| {
        let mut cells = vec![
            Cell::from(theme::elide_middle(&r.layer, name_width)),
            Cell::from(cell(r.fp32_ms, None)),
        ];
        cells.extend(r.ms.iter().map(|&m| Cell::from(cell(m, r.fp32_ms))));
        Row::new(cells)
    }));
    let mut widths = vec![Constraint::Length(name_width as u16), Constraint::Length(7)];
    widths.extend(report.columns.iter().map(|_| Constraint::Fill(1)));
    let table = Table::new(rows, widths)
        .header(Row::new(header).height(2).style(theme::header()))
        .column_spacing(1)
        .row_highlight_style(theme::selected());
    // Highlighting the selected layer also scrolls it into view on small screens (+1: the
    // totals row).
    let at = report
        .rows
        .iter()
        .position(|r| Some(r.layer.as_str()) == selected)
        .map(|i| i + 1);
    let mut state = TableState::new().with_selected(at);
    frame.render_stateful_widget(table, area, &mut state);
}
