//! The `?` popup: every key binding, from the one table in `keys`.

use crate::tui::{keys, theme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

pub fn draw(frame: &mut Frame) {
    let key_width = keys::BINDINGS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let what_width = keys::BINDINGS
        .iter()
        .map(|(_, what)| what.chars().count())
        .max()
        .unwrap_or(0);
    // Two columns, the gap between them and the borders.
    let width = (key_width + 2 + what_width + 2) as u16;
    let area = centered(frame.area(), width, keys::BINDINGS.len() as u16 + 2);
    let lines: Vec<Line> = keys::BINDINGS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<key_width$}  "), theme::header()),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(theme::pane(" keys ".into(), true)),
        area,
    );
}

/// A `width`×`height` rectangle centred in `area` (clamped to it).
pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(row);
    cell
}
