//! The selected layer's converted weight as integers (`int_repr()`), one block per output
//! channel headed by its scale and zero point; hex or decimal, scrollable.

use crate::session::view::WeightView;
use crate::tui::app::App;
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let layer = app.selected_row().map(|r| r.layer.as_str());
    let base = if app.hex { "hex" } else { "dec" };
    let block = theme::pane(
        format!(" int_repr {}.weight ({base}) ", layer.unwrap_or("-")),
        focused,
    );
    let Some(w) = layer.and_then(|l| app.wb.weight_int_repr(l)) else {
        let note = format!("{} has no quantized weight", layer.unwrap_or("no layer"));
        frame.render_widget(Paragraph::new(note).style(theme::dim()).block(block), area);
        return;
    };
    let width = usize::from(block.inner(area).width);
    let lines = dump(&w, app.hex, width);
    let first = app.int_scroll.min(lines.len().saturating_sub(1));
    let shown: Vec<Line> = lines.into_iter().skip(first).collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

/// The dump as lines fitted to `width` columns.
fn dump(w: &WeightView, hex: bool, width: usize) -> Vec<Line<'static>> {
    let cell = if hex { 3 } else { 5 };
    let per_line = (width / cell).max(1);
    let mut lines = vec![Line::from(format!("shape {:?}", w.shape)).style(theme::dim())];
    for (row, values) in w.data.chunks(w.k.max(1)).enumerate() {
        // Per-tensor weights store one scale for every row.
        let at = if w.scales.len() > 1 { row } else { 0 };
        let (scale, zp) = (w.scales.get(at), w.zero_points.get(at));
        lines.push(
            Line::from(format!(
                "[{row}] scale {:.6e} zp {}",
                scale.copied().unwrap_or(f64::NAN),
                zp.copied().unwrap_or(0)
            ))
            .style(theme::header()),
        );
        for chunk in values.chunks(per_line) {
            let text: String = chunk
                .iter()
                .map(|&v| {
                    if hex {
                        format!("{:02x} ", v as u8)
                    } else {
                        format!("{v:>4} ")
                    }
                })
                .collect();
            lines.push(Line::from(text.trim_end().to_string()));
        }
    }
    lines
}
