//! The selected layer's integers as PyTorch's `int_repr()` shows them: the converted weight
//! (one block per output channel headed by its scale and zero point) or, toggled with `a`, the
//! layer's quantized output activation on one input sample (one block per channel, one
//! per-tensor scale and zero point); hex or decimal, scrollable.

use crate::session::view::{ActivationView, WeightView};
use crate::tui::app::{App, IntView};
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let layer = app.selected_row().map(|r| r.layer.as_str());
    let base = if app.hex { "hex" } else { "dec" };
    let name = layer.unwrap_or("-");
    let title = match app.int_view {
        IntView::Weight => format!(" int_repr {name}.weight ({base}) "),
        IntView::Activation => format!(" int_repr {name} output, sample {} ({base}) ", app.sample),
    };
    let block = theme::pane(title, focused);
    let width = usize::from(block.inner(area).width);
    let lines = match app.int_view {
        IntView::Weight => layer
            .and_then(|l| app.wb.weight_int_repr(l))
            .map(|w| weight_lines(&w, app.hex, width))
            .ok_or_else(|| format!("{} has no quantized weight", layer.unwrap_or("no layer"))),
        IntView::Activation => match &app.activation {
            Some(Ok(a)) => Ok(activation_lines(a, app.hex, width)),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no activation (no layer or dataset)".into()),
        },
    };
    let lines = match lines {
        Ok(lines) => lines,
        Err(note) => {
            frame.render_widget(Paragraph::new(note).style(theme::dim()).block(block), area);
            return;
        }
    };
    let first = app.int_scroll.min(lines.len().saturating_sub(1));
    let shown: Vec<Line> = lines.into_iter().skip(first).collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

/// The weight's rows, each headed by its qparams (per-tensor weights repeat the one pair).
fn weight_lines(w: &WeightView, hex: bool, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(format!("shape {:?}", w.shape)).style(theme::dim())];
    for (row, values) in w.data.chunks(w.k.max(1)).enumerate() {
        let at = if w.scales.len() > 1 { row } else { 0 };
        let (scale, zp) = (w.scales.get(at), w.zero_points.get(at));
        let values: Vec<i32> = values.iter().map(|&v| i32::from(v)).collect();
        let head = format!(
            "[{row}] scale {:.6e} zp {}",
            scale.copied().unwrap_or(f64::NAN),
            zp.copied().unwrap_or(0)
        );
        block(&mut lines, head, &values, hex, width);
    }
    lines
}

/// The activation per channel (axis 1 of `[1, C, ...]`; a flat vector is one block).
fn activation_lines(a: &ActivationView, hex: bool, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(format!("shape {:?}", a.shape)).style(theme::dim()),
        Line::from(format!("scale {:.6e} zp {}", a.scale, a.zero_point)).style(theme::header()),
    ];
    let per_channel = if a.shape.len() > 2 {
        a.shape[2..].iter().product::<usize>().max(1)
    } else {
        a.data.len().max(1)
    };
    for (c, values) in a.data.chunks(per_channel).enumerate() {
        block(&mut lines, format!("[{c}]"), values, hex, width);
    }
    lines
}

/// A header line, then `values` wrapped to `width` columns: two's-complement hex bytes
/// (as `int_repr().numpy().tobytes()` would show them) or right-aligned decimals.
fn block(lines: &mut Vec<Line<'static>>, head: String, values: &[i32], hex: bool, width: usize) {
    let cell = if hex { 3 } else { 5 };
    let per_line = (width / cell).max(1);
    lines.push(Line::from(head).style(theme::header()));
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
