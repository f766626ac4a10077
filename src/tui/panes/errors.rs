//! The per-layer error table: every metric of `errors DATA`, sorted worst first by the
//! column `s` cycles through (marked ▼).

use crate::analysis::ErrorColumn;
use crate::tui::app::{App, sort_columns};
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, Row, Table, TableState};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let title = match &app.data {
        Some(d) => format!(" cumulative error on {d} ({} engine) ", app.wb.engine()),
        None => " error ".into(),
    };
    let block = theme::pane(title, focused);
    if app.rows.is_empty() {
        return theme::note(frame, area, block, &app.rows_note);
    }
    // Short headers and compact cells (`ErrorColumn::short`, `cell`), so all ten fit a
    // half-width pane.
    let header = Row::new(sort_columns().map(|c| {
        if c == app.sort {
            format!("{}▼", c.short())
        } else {
            c.short().to_string()
        }
    }))
    .style(theme::header());
    let order = app.sorted();
    let rows = order.iter().map(|&i| {
        let e = &app.rows[i].error;
        let sqnr = Style::new().fg(theme::sqnr_color(e.stats.sqnr_db()));
        Row::new(sort_columns().map(|c| {
            let cell = Cell::from(c.cell(e, true));
            if c == ErrorColumn::Sqnr {
                cell.style(sqnr)
            } else {
                cell
            }
        }))
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
