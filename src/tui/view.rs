//! The screen layout: which pane goes where at any terminal size, and the popups on top.
//!
//! ```text
//! ┌ layers ──────────┐┌ observer histogram ───────┐
//! ├ error table ─────┤├ int_repr ─────────────────┤   (narrow: histogram or int_repr
//! ├ log ──────────────────────────────────────────┤    top right, errors full width)
//! : command line / key reminder
//! ```
//!
//! The engine-speed pane, while open, takes the error table's place.

use super::app::{App, Pane};
use super::panes;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

/// Below this width the histogram and the int_repr dump share the top-right area (the one
/// focused last is shown) so the error table keeps every column.
const NARROW: u16 = 100;

impl App {
    /// Draws the whole screen from the current state.
    pub fn draw(&self, frame: &mut Frame) {
        let area = frame.area();
        let log_height = if area.height < 30 { 4 } else { 7 };
        let [top, middle, log, line] = Layout::vertical([
            Constraint::Percentage(45),
            Constraint::Fill(1),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);
        let [layers, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(top);
        panes::layers::draw(self, frame, layers, self.focus == Pane::Layers);
        if area.width < NARROW {
            if self.focus == Pane::IntRepr {
                panes::int_repr::draw(self, frame, right, true);
            } else {
                panes::histogram::draw(self, frame, right, self.focus == Pane::Histogram);
            }
            self.draw_errors_or_speed(frame, middle);
        } else {
            let [errors, int_repr] =
                Layout::horizontal([Constraint::Percentage(60), Constraint::Fill(1)]).areas(middle);
            panes::histogram::draw(self, frame, right, self.focus == Pane::Histogram);
            self.draw_errors_or_speed(frame, errors);
            panes::int_repr::draw(self, frame, int_repr, self.focus == Pane::IntRepr);
        }
        panes::log::draw(self, frame, log, self.focus == Pane::Log);
        panes::log::draw_line(self, frame, line);
        if let Some(d) = &self.diagnosis {
            panes::diagnosis::draw(d, frame);
        }
        if self.help {
            panes::help::draw(frame);
        }
    }

    /// The engine-speed pane takes the error table's place while it is open (`e`).
    fn draw_errors_or_speed(&self, frame: &mut Frame, area: Rect) {
        let focused = self.focus == Pane::Errors;
        if self.speed.is_some() {
            panes::speed::draw(self, frame, area, focused);
        } else {
            panes::errors::draw(self, frame, area, focused);
        }
    }
}
