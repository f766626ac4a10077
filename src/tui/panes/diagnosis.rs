//! The `d` popup: the selected layer's diagnosis (`diagnose`'s rules for one layer), each cause
//! with its evidence and the command that addresses it; Enter applies the highlighted command.

use crate::tui::app::DiagnosisView;
use crate::tui::theme;
use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn draw(view: &DiagnosisView, frame: &mut Frame) {
    let d = &view.diagnosis;
    let mut lines = Vec::new();
    for (i, f) in d.findings.iter().enumerate() {
        lines.push(Line::styled(f.cause, theme::header()));
        lines.push(Line::raw(format!("  {}", f.evidence)));
        let command = match &f.command {
            Some(c) if view.selected == Some(i) => {
                Span::styled(format!("  → {c}"), theme::selected())
            }
            Some(c) => Span::raw(format!("  → {c}")),
            None => Span::styled("  (no single command addresses it)", theme::dim()),
        };
        lines.push(Line::from(command));
    }
    lines.push(Line::styled(
        match view.selected {
            Some(_) => "Enter: apply the highlighted command (recorded)   ↑/↓: choose   Esc: close",
            None => "no command to apply   any key: close",
        },
        theme::dim(),
    ));
    let area = frame.area();
    let width = area.width.saturating_sub(4).min(110);
    // Evidence lines wrap: leave room for about two lines per finding.
    let height = (lines.len() as u16 + 2 + d.findings.len() as u16).min(area.height);
    let cell = super::help::centered(area, width, height);
    let title = format!(
        " diagnosis: {} (SQNR {:.2} dB, drop {:.2} dB) ",
        d.layer, d.sqnr_db, d.drop_db
    );
    frame.render_widget(Clear, cell);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(theme::pane(title, true)),
        cell,
    );
}
