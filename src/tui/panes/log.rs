//! The log of commands and their outputs, and the bottom line: the `:` command line with its
//! completion candidates when open, else the key reminder.

use crate::tui::app::App;
use crate::tui::{keys, theme};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let block = theme::pane(" log ".into(), focused);
    let height = usize::from(block.inner(area).height);
    let end = app.log.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = app.log[start..end]
        .iter()
        .map(|l| {
            let style = if l.starts_with("error") {
                Style::new().fg(Color::Red)
            } else if l.starts_with("> ") {
                Style::new().fg(Color::Cyan)
            } else {
                Style::new()
            };
            Line::styled(l.as_str(), style)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

pub fn draw_line(app: &App, frame: &mut Frame, area: Rect) {
    let line = match &app.input {
        Some(input) => {
            let mut spans = vec![Span::raw(format!(":{}", input.text)), Span::raw("█")];
            if !input.candidates.is_empty() {
                spans.push(Span::styled(
                    format!("   {}", input.candidates.join(" ")),
                    theme::dim(),
                ));
            }
            Line::from(spans)
        }
        None => Line::styled(keys::STATUS, theme::dim()),
    };
    frame.render_widget(Paragraph::new(line), area);
}
