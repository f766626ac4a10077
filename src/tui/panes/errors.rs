//! The per-layer error table: every metric of `errors DATA`, sorted worst first by the
//! column `s` cycles through (marked ▼).

use crate::analysis::ErrorColumn;
use crate::tui::app::{App, sort_columns};
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, HighlightSpacing, Row, Table, TableState};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let title = match &app.data {
        Some(d) => format!(" cumulative error on {d} ({} engine) ", app.wb.engine()),
        None => " error ".into(),
    };
    let block = theme::pane(title, focused);
    if app.rows.is_empty() {
        return theme::note(frame, area, block, &app.rows_note);
    }
    let columns = fitted_columns(app, area.width);
    let chrome = 2 + 1 + columns.iter().map(|&(_, w)| w + 1).sum::<u16>();
    let longest = app.rows.iter().map(|r| r.layer.chars().count()).max();
    let path_width = (longest.unwrap_or(0) as u16)
        .min(area.width.saturating_sub(chrome))
        .max(6);
    // Short headers and compact cells (`ErrorColumn::short`, `cell`).
    let header = Row::new(
        std::iter::once(ErrorColumn::Layer)
            .chain(columns.iter().map(|c| c.0))
            .map(|c| {
                if c == app.sort {
                    format!("{}▼", c.short())
                } else {
                    c.short().to_string()
                }
            }),
    )
    .style(theme::header());
    let order = app.sorted();
    // Worst first, and the worst rows stay in view: a selection below the fold takes the last
    // visible line instead of scrolling the top rows away.
    let visible = usize::from(area.height.saturating_sub(3)).max(1);
    let at = order.iter().position(|&i| i == app.selected);
    let (shown, at): (Vec<usize>, Option<usize>) = match at {
        Some(p) if p >= visible => {
            let mut top = order[..visible - 1].to_vec();
            top.push(order[p]);
            (top, Some(visible - 1))
        }
        _ => (order.iter().copied().take(visible).collect(), at),
    };
    let rows = shown.iter().map(|&i| {
        let e = &app.rows[i].error;
        let sqnr = Style::new().fg(theme::sqnr_color(e.stats.sqnr_db()));
        let cells = std::iter::once(ErrorColumn::Layer).chain(columns.iter().map(|c| c.0));
        Row::new(cells.map(|c| match c {
            ErrorColumn::Layer => Cell::from(theme::elide_middle(&e.layer, path_width.into())),
            ErrorColumn::Sqnr => Cell::from(c.cell(e, true)).style(sqnr),
            _ => Cell::from(c.cell(e, true)),
        }))
    });
    let widths = std::iter::once(Constraint::Length(path_width))
        .chain(columns.iter().map(|&(_, w)| Constraint::Length(w)));
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme::selected())
        .highlight_symbol(theme::SELECTED_MARK)
        .highlight_spacing(HighlightSpacing::Always)
        .block(block);
    let mut state = TableState::new().with_selected(at);
    frame.render_stateful_widget(table, area, &mut state);
}

/// The metric columns (after the layer path) with their widths that fit `width` while the path
/// keeps up to [`PATH_ROOM`] characters: the rightmost are dropped first, never the SQNR or
/// the sort column.
fn fitted_columns(app: &App, width: u16) -> Vec<(ErrorColumn, u16)> {
    let mut columns: Vec<(ErrorColumn, u16)> = sort_columns().skip(1).zip(METRIC_WIDTHS).collect();
    let longest = app.rows.iter().map(|r| r.layer.chars().count()).max();
    let path = (longest.unwrap_or(0) as u16).clamp(6, PATH_ROOM);
    let need =
        |cols: &[(ErrorColumn, u16)]| 3 + path + cols.iter().map(|&(_, w)| w + 1).sum::<u16>();
    while need(&columns) > width {
        let keep = |c: ErrorColumn| c == app.sort || c == ErrorColumn::Sqnr;
        match columns.iter().rposition(|&(c, _)| !keep(c)) {
            Some(i) => {
                columns.remove(i);
            }
            None => break,
        }
    }
    columns
}

/// The widths of the metric columns, in `sort_columns` order after the layer path (each fits
/// its short header and its compact cells).
const METRIC_WIDTHS: [u16; 9] = [6, 6, 6, 7, 7, 6, 5, 5, 6];

/// The path width the error table keeps before it drops metric columns: a MobileNet path
/// (`features.13.conv.1.0`) whole.
const PATH_ROOM: u16 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    /// A column added to the error table needs a width here; `zip` would silently drop it.
    #[test]
    fn every_metric_column_has_a_width() {
        assert_eq!(sort_columns().skip(1).count(), METRIC_WIDTHS.len());
        for (c, w) in sort_columns().skip(1).zip(METRIC_WIDTHS) {
            assert!(c.short().chars().count() <= usize::from(w), "{c:?}");
        }
    }
}
