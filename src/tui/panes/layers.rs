//! The layer list: module path, quantized op, qconfig and SQNR coloured by severity. The
//! selection here drives the histogram and int_repr panes.

use crate::session::view::LayerRow;
use crate::tui::app::App;
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, HighlightSpacing, Row, Table, TableState};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let block = theme::pane(" layers ".into(), focused);
    if app.rows.is_empty() {
        return theme::note(frame, area, block, &app.rows_note);
    }
    // The path column is as wide as the longest path, or as what the borders, the selection
    // mark, the op and SQNR columns and their gaps leave (longer paths lose their middle); the
    // qconfig takes the rest, if any.
    let widest = |f: fn(&LayerRow) -> usize| app.rows.iter().map(f).max().unwrap_or(0) as u16;
    let op_width = widest(|r| r.op.len()).max(2);
    let room = area.width.saturating_sub(2 + 1 + op_width + 7 + 3);
    let path_width = widest(|r| r.layer.chars().count()).min(room).max(5);
    let rows = app.rows.iter().map(|r| {
        let db = r.error.stats.sqnr_db();
        Row::new([
            Cell::from(theme::elide_middle(&r.layer, path_width.into())),
            Cell::from(r.op),
            Cell::from(r.qconfig.as_str()),
            Cell::from(format!("{db:>6.2}")).style(Style::new().fg(theme::sqnr_color(db))),
        ])
    });
    let widths = [
        Constraint::Length(path_width),
        Constraint::Length(op_width),
        Constraint::Fill(1),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["layer", "op", "qconfig", "SQNR dB"]).style(theme::header()))
        .row_highlight_style(theme::selected())
        .highlight_symbol(theme::SELECTED_MARK)
        .highlight_spacing(HighlightSpacing::Always)
        .block(block);
    let mut state = TableState::new().with_selected(Some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
    app.layers_area.set(area);
    app.layers_offset.set(state.offset());
}
