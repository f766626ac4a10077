//! The layer list: module path, quantized op, qconfig and SQNR coloured by severity. The
//! selection here drives the histogram and int_repr panes.

use crate::session::view::LayerRow;
use crate::tui::app::App;
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, Row, Table, TableState};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let block = theme::pane(" layers ".into(), focused);
    if app.rows.is_empty() {
        return theme::note(frame, area, block, &app.rows_note);
    }
    let rows = app.rows.iter().map(|r| {
        let db = r.error.stats.sqnr_db();
        Row::new([
            Cell::from(r.layer.as_str()),
            Cell::from(r.op),
            Cell::from(r.qconfig.as_str()),
            Cell::from(format!("{db:>6.2}")).style(Style::new().fg(theme::sqnr_color(db))),
        ])
    });
    // Path and op columns as wide as their longest entry; the qconfig takes what is left.
    let widest = |f: fn(&LayerRow) -> usize| app.rows.iter().map(f).max().unwrap_or(0) as u16;
    let widths = [
        Constraint::Length(widest(|r| r.layer.chars().count()).max(5)),
        Constraint::Length(widest(|r| r.op.len()).max(2)),
        Constraint::Fill(1),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["layer", "op", "qconfig", "SQNR dB"]).style(theme::header()))
        .row_highlight_style(theme::selected())
        .block(block);
    let mut state = TableState::new().with_selected(Some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
    app.layers_area.set(area);
    app.layers_offset.set(state.offset());
}
