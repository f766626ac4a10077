//! The mouse: a click on a row of the layer list selects that layer, the wheel over the list
//! moves the selection, and the wheel elsewhere scrolls the focused pane. Clicks map to rows
//! through where the list was last drawn (`App::layers_area` and its scroll offset).

use super::app::{App, Pane};
use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Position;

/// Rows above the first layer inside the list's area: the border and the header.
const LIST_TOP: u16 = 2;

impl App {
    /// Handles one mouse event; view changes only, so no command is produced.
    pub fn mouse(&mut self, m: MouseEvent) {
        let area = self.layers_area.get();
        let over_list = area.contains(Position::new(m.column, m.row));
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) if over_list => {
                self.focus = Pane::Layers;
                let Some(row) = m.row.checked_sub(area.y + LIST_TOP) else {
                    return;
                };
                let i = self.layers_offset.get() + usize::from(row);
                // The bottom border is not a row.
                if i < self.rows.len() && m.row + 1 < area.bottom() {
                    self.select(i);
                }
            }
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let by = if m.kind == MouseEventKind::ScrollDown {
                    1
                } else {
                    -1
                };
                if over_list {
                    self.focus = Pane::Layers;
                }
                self.scroll(by);
            }
            _ => {}
        }
    }
}
