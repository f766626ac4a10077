//! The selected layer's integers as PyTorch's `int_repr()` shows them: the converted weight
//! (one block per output channel headed by its scale and zero point) or, toggled with `a`, the
//! layer's quantized output activation on one input sample (one block per channel, one
//! per-tensor scale and zero point); hex or decimal, scrollable, with the float values
//! `(q - zp) · scale` under each line on request (`f`).

use crate::session::view::{ActivationView, WeightView};
use crate::tui::app::{App, DumpStyle, IntView};
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
            .map(|w| weight_lines(&w, app.dump_style(), width))
            .ok_or_else(|| format!("{} has no quantized weight", layer.unwrap_or("no layer"))),
        IntView::Activation => match &app.activation {
            Some(Ok(a)) => Ok(activation_lines(a, app.dump_style(), width)),
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
fn weight_lines(w: &WeightView, style: DumpStyle, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(format!("shape {:?}", w.shape)).style(theme::dim())];
    for (row, values) in w.data.chunks(w.k.max(1)).enumerate() {
        let at = if w.scales.len() > 1 { row } else { 0 };
        let scale = w.scales.get(at).copied().unwrap_or(f64::NAN);
        let zp = i64::from(w.zero_points.get(at).copied().unwrap_or(0));
        let values: Vec<i32> = values.iter().map(|&v| i32::from(v)).collect();
        let head = format!("[{row}] scale {scale:.6e} zp {zp}");
        block(&mut lines, head, &values, (scale, zp), style, width);
    }
    lines
}

/// The activation per channel (axis 1 of `[1, C, ...]`; a flat vector is one block).
fn activation_lines(a: &ActivationView, style: DumpStyle, width: usize) -> Vec<Line<'static>> {
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
        let qparams = (a.scale, a.zero_point);
        block(&mut lines, format!("[{c}]"), values, qparams, style, width);
    }
    lines
}

/// A header line, then `values` wrapped to `width` columns: two's-complement hex bytes
/// (as `int_repr().numpy().tobytes()` would show them) or right-aligned decimals, each line
/// followed by its float values when asked.
fn block(
    lines: &mut Vec<Line<'static>>,
    head: String,
    values: &[i32],
    (scale, zp): (f64, i64),
    style: DumpStyle,
    width: usize,
) {
    // Floats need wider cells; the integers widen with them to stay aligned.
    let cell = match (style.floats, style.hex) {
        (true, _) => 9,
        (false, true) => 3,
        (false, false) => 5,
    };
    let per_line = (width / cell).max(1);
    lines.push(Line::from(head).style(theme::header()));
    for chunk in values.chunks(per_line) {
        let w = cell - 1;
        let text: String = chunk
            .iter()
            .map(|&v| {
                if style.hex {
                    format!("{:>w$} ", format!("{:02x}", v as u8))
                } else {
                    format!("{v:>w$} ")
                }
            })
            .collect();
        lines.push(Line::from(text.trim_end().to_string()));
        if style.floats {
            let floats: String = chunk
                .iter()
                .map(|&v| format!("{:>w$.4} ", (i64::from(v) - zp) as f64 * scale))
                .collect();
            lines.push(Line::from(floats.trim_end().to_string()).style(theme::dim()));
        }
    }
}
