//! Colours, styles and pane frames in one place, so every pane agrees on what red, yellow and
//! focus mean.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, BorderType, Paragraph};

/// SQNR below this many dB is shown red (the layer loses most of its signal).
pub const SQNR_BAD: f64 = 20.0;
/// SQNR below this many dB is shown yellow (worth a look).
pub const SQNR_WARN: f64 = 30.0;

/// The colour of an SQNR by severity: red < 20 dB, yellow < 30 dB, green otherwise.
pub fn sqnr_color(db: f64) -> Color {
    if db < SQNR_BAD {
        Color::Red
    } else if db < SQNR_WARN {
        Color::Yellow
    } else {
        Color::Green
    }
}

/// The selected row in lists and tables.
pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// The marker drawn before the selected row of every table, so the selection shows without
/// colour too (a monochrome terminal, a snapshot).
pub const SELECTED_MARK: &str = "▶";

/// `text` cut to `width` characters by replacing its middle with `…`
/// (`features.13.conv.1.0` → `features…conv.1.0`): a module path keeps its root and its leaf.
pub fn elide_middle(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    // The leaf names the layer, so the tail gets the extra character.
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// Column headers.
pub fn header() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Secondary text (notes, units, hints).
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// A pane with nothing to show but a dimmed explanation `text`.
pub fn note(frame: &mut Frame, area: Rect, block: Block<'_>, text: &str) {
    frame.render_widget(Paragraph::new(text).style(dim()).block(block), area);
}

/// A pane's frame: thick and cyan when it has the focus.
pub fn pane(title: String, focused: bool) -> Block<'static> {
    let block = Block::bordered().title(title);
    if focused {
        block
            .border_type(BorderType::Thick)
            .border_style(Style::new().fg(Color::Cyan))
    } else {
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_lose_their_middle() {
        assert_eq!(
            elide_middle("features.13.conv.1.0", 17),
            "features…conv.1.0"
        );
        assert_eq!(elide_middle("conv1", 17), "conv1");
        assert_eq!(elide_middle("abcdef", 3), "a…f");
        assert_eq!(elide_middle("abcdef", 1), "…");
        assert_eq!(elide_middle("abcdef", 0), "");
        assert_eq!(elide_middle("ünïcödé.päth", 5).chars().count(), 5);
    }
}
