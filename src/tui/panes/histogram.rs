//! The selected layer's activation histogram with the quantization range overlaid: the bars
//! are the observer's statistics (log-scaled, re-binned to the pane width), the red lines the
//! float range `[lo, hi]` its qparams represent — values beyond them are clipped.

use crate::session::view::{HistogramView, QRangeView};
use crate::tui::app::App;
use crate::tui::theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::widgets::canvas::{Canvas, Line as Segment};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let layer = app.selected_row().map(|r| r.layer.as_str());
    let view = layer.and_then(|l| app.wb.observer_histogram(l));
    let title = format!(" observer histogram: {} ", layer.unwrap_or("-"));
    let block = theme::pane(title, focused);
    let Some(view) = view else {
        let note = match layer {
            Some(l) => format!("{l} has no activation observer"),
            None => "no layer selected".into(),
        };
        frame.render_widget(Paragraph::new(note).style(theme::dim()).block(block), area);
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, chart] = Layout::vertical([Constraint::Length(3), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(Paragraph::new(caption(&view)), text);
    let (lo, hi) = bounds(&view);
    // Two braille dots per cell horizontally.
    let bars = rebin(&view, usize::from(chart.width) * 2);
    let range = view.range;
    let canvas = Canvas::default()
        .marker(Marker::Braille)
        .x_bounds([lo, hi])
        .y_bounds([0.0, 1.0])
        .paint(move |ctx| {
            for &(x, h) in &bars {
                ctx.draw(&Segment::new(x, 0.0, x, h, Color::Blue));
            }
            if let Some(r) = range {
                for x in [r.lo, r.hi] {
                    ctx.draw(&Segment::new(
                        f64::from(x),
                        0.0,
                        f64::from(x),
                        1.0,
                        Color::Red,
                    ));
                }
            }
        });
    frame.render_widget(canvas, chart);
}

/// Three lines: the observer and its keys, the data range, the qparams and clipped share.
///
/// "calib clip" is the share of the *calibration* values the observer saw whose histogram bin
/// lies outside the range; the error table's `clip%` is another measure (the converted
/// model's outputs on the error data beyond the range ± half a step), hence the label.
fn caption(view: &HistogramView) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(vec![
            Span::raw(view.spec.clone()),
            Span::styled("  [o, 1-5]", theme::dim()),
        ]),
        Line::from(format!("data [{:.3}, {:.3}]", view.min, view.max)),
    ];
    lines.push(match view.range {
        Some(QRangeView {
            scale,
            zero_point,
            lo,
            hi,
        }) => Line::from(format!(
            "scale {scale:.3e} zp {zero_point} range [{lo:.3}, {hi:.3}]{}",
            clipped(view)
                .map(|c| format!(" calib clip {:.2}%", 100.0 * c))
                .unwrap_or_default()
        ))
        .style(ratatui::style::Style::new().fg(Color::Red)),
        None => Line::from("not calibrated").style(theme::dim()),
    });
    lines
}

/// The x extent: the data and the quantization range, whichever is wider.
fn bounds(view: &HistogramView) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::from(view.min), f64::from(view.max));
    if let Some(r) = view.range {
        lo = lo.min(f64::from(r.lo));
        hi = hi.max(f64::from(r.hi));
    }
    // Before any data the range is (+inf, -inf); a constant input has hi == lo.
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi <= lo {
        return (lo - 0.5, lo + 0.5);
    }
    let pad = (hi - lo) * 0.02;
    (lo - pad, hi + pad)
}

/// The histogram merged into at most `columns` bars of `(x centre, height in 0..=1)`, heights
/// on a log scale so the long tails that decide clipping stay visible beside the peak at 0.
fn rebin(view: &HistogramView, columns: usize) -> Vec<(f64, f64)> {
    let n = view.counts.len();
    if n == 0 || columns == 0 {
        return Vec::new();
    }
    let per = n.div_ceil(columns);
    let sums: Vec<f64> = view
        .counts
        .chunks(per)
        .map(|c| c.iter().map(|&v| f64::from(v)).sum())
        .collect();
    let top = sums.iter().copied().fold(0.0, f64::max).ln_1p();
    if top <= 0.0 {
        return Vec::new();
    }
    let (min, width) = (
        f64::from(view.min),
        f64::from(view.max - view.min) / n as f64,
    );
    sums.iter()
        .enumerate()
        .filter(|&(_, &s)| s > 0.0)
        .map(|(i, &s)| {
            let centre = min + ((i * per) as f64 + per as f64 / 2.0) * width;
            (centre, s.ln_1p() / top)
        })
        .collect()
}

/// The share of observed values outside the quantization range (bin centres decide).
fn clipped(view: &HistogramView) -> Option<f64> {
    let r = view.range?;
    // Folded from +0.0: an empty float `sum()` is -0.0, which would print as "-0.00%".
    let total = view.counts.iter().fold(0.0, |a, &c| a + f64::from(c));
    if total <= 0.0 {
        return None;
    }
    let width = (view.max - view.min) / view.counts.len() as f32;
    let outside = view
        .counts
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            let x = view.min + (i as f32 + 0.5) * width;
            x < r.lo || x > r.hi
        })
        .fold(0.0, |a, (_, &c)| a + f64::from(c));
    Some(outside / total)
}
