//! The per-layer error table: every metric of `errors DATA`, sorted worst first by the
//! column `s` cycles through (marked ▼).

use crate::tui::app::{App, SortColumn};
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, Row, Table, TableState};

/// Header text per column, in `SortColumn::ALL` order.
/// Short forms of `errors`' headers (`max` = max_abs, `bias` = mean_err, `in%` = in_clip%,
/// `sat` = saturated) and two significant digits, so all ten fit a half-width pane.
const HEADERS: [&str; 10] = [
    "layer", "sqnr", "mse", "max", "bias", "cosine", "rmse/s", "clip%", "in%", "sat",
];

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let title = match &app.data {
        Some(d) => format!(" cumulative error on {d} ({} engine) ", app.wb.engine()),
        None => " error ".into(),
    };
    let block = theme::pane(title, focused);
    if app.rows.is_empty() {
        return theme::note(frame, area, block, &app.rows_note);
    }
    let header = Row::new(SortColumn::ALL.iter().zip(HEADERS).map(|(&c, h)| {
        if c == app.sort {
            format!("{h}▼")
        } else {
            h.to_string()
        }
    }))
    .style(theme::header());
    let order = app.sorted();
    let rows = order.iter().map(|&i| {
        let r = &app.rows[i];
        let s = &r.error.stats;
        let db = s.sqnr_db();
        Row::new([
            Cell::from(r.layer.as_str()),
            Cell::from(format!("{db:.2}")).style(Style::new().fg(theme::sqnr_color(db))),
            Cell::from(format!("{:.1e}", s.mse())),
            Cell::from(format!("{:.1e}", s.max_abs())),
            Cell::from(format!("{:+.1e}", s.mean_error())),
            Cell::from(format!("{:.5}", s.cosine())),
            Cell::from(format!("{:.3}", s.rmse_over_scale())),
            Cell::from(format!("{:.2}", 100.0 * r.error.clip_rate())),
            Cell::from(match r.error.input_clip_rate() {
                Some(rate) => format!("{:.2}", 100.0 * rate),
                None => "-".into(),
            }),
            Cell::from(r.error.saturated_pairs.to_string()),
        ])
    });
    let widths = [
        Constraint::Min(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme::selected())
        .block(block);
    let at = order.iter().position(|&i| i == app.selected);
    let mut state = TableState::new().with_selected(at);
    frame.render_stateful_widget(table, area, &mut state);
}
