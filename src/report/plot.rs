//! SVG plots with plotters: an observer's histogram with the quantization range and the integer
//! grid overlaid (what the observer chose to keep and to clip), and per-layer SQNR bars.

use super::ErrorReport;
use plotters::prelude::*;

/// What a histogram plot shows.
#[derive(Debug, Clone)]
pub struct HistogramPlot<'a> {
    pub title: String,
    pub min: f32,
    pub max: f32,
    pub counts: &'a [f32],
    /// Output scale, zero point and integer range, when qparams are known.
    pub qparams: Option<(f64, i64, i64, i64)>,
}

fn draw_err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// The histogram as an SVG document.
pub fn histogram_svg(p: &HistogramPlot) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (lo, hi) = (p.min as f64, p.max as f64);
        let (mut x0, mut x1) = (lo, if hi > lo { hi } else { lo + 1.0 });
        if let Some((s, z, qmin, qmax)) = p.qparams {
            x0 = x0.min((qmin - z) as f64 * s);
            x1 = x1.max((qmax - z) as f64 * s);
        }
        let pad = (x1 - x0) * 0.02;
        let peak = p.counts.iter().copied().fold(1.0f32, f32::max) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(&p.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..peak * 1.08)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("value")
            .y_desc("count")
            .disable_mesh()
            .draw()
            .map_err(draw_err)?;
        let width = (hi - lo) / p.counts.len().max(1) as f64;
        chart
            .draw_series(p.counts.iter().enumerate().map(|(i, &c)| {
                let left = lo + i as f64 * width;
                Rectangle::new(
                    [(left, 0.0), (left + width, c as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(draw_err)?;
        if let Some((s, z, qmin, qmax)) = p.qparams {
            let steps = (qmax - qmin) as usize;
            // The integer grid: every step when it stays legible, else every 16th.
            let every = if steps <= 64 { 1 } else { 16 };
            chart
                .draw_series((0..=steps).step_by(every).map(|k| {
                    let x = (qmin + k as i64 - z) as f64 * s;
                    PathElement::new(vec![(x, 0.0), (x, peak * 0.04)], BLACK.mix(0.5))
                }))
                .map_err(draw_err)?;
            let edges = [(qmin - z) as f64 * s, (qmax - z) as f64 * s];
            chart
                .draw_series(edges.map(|x| {
                    PathElement::new(vec![(x, 0.0), (x, peak * 1.08)], RED.stroke_width(2))
                }))
                .map_err(draw_err)?
                .label(format!(
                    "quantization range [{:.4}, {:.4}]",
                    edges[0], edges[1]
                ))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Per-layer SQNR bars (graph order) as an SVG document.
pub fn errors_svg(report: &ErrorReport) -> Result<String, String> {
    let mut svg = String::new();
    {
        let n = report.rows.len().max(1);
        let root =
            SVGBackend::with_string(&mut svg, (900, 160 + 22 * n as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let finite = |v: f64| if v.is_finite() { v } else { 100.0 };
        let top = report
            .rows
            .iter()
            .map(|r| finite(r.sqnr_db))
            .fold(10.0, f64::max);
        let labels: Vec<String> = report.rows.iter().map(|r| r.layer.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{} SQNR per layer — {} on {}",
                    report.mode, report.model, report.data
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(140)
            .build_cartesian_2d(0.0..top * 1.1, (0..n).into_segmented())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("SQNR (dB)")
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .disable_y_mesh()
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(report.rows.iter().enumerate().map(|(i, r)| {
                let colour = match r.sqnr_db {
                    v if v < 20.0 => RED,
                    v if v < 30.0 => RGBColor(240, 173, 78),
                    _ => GREEN,
                };
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (finite(r.sqnr_db), SegmentValue::Exact(i + 1)),
                    ],
                    colour.mix(0.7).filled(),
                )
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_plot_shows_the_quantization_range() {
        let counts: Vec<f32> = (0..64).map(|i| (i % 9) as f32).collect();
        let svg = histogram_svg(&HistogramPlot {
            title: "conv1".into(),
            min: -1.0,
            max: 3.0,
            counts: &counts,
            qparams: Some((0.03, 33, 0, 127)),
        })
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("conv1"), "{svg}");
        assert!(
            svg.contains("quantization range [-0.9900, 2.8200]"),
            "{svg}"
        );
        // One bar per non-empty bin.
        assert!(svg.matches("<rect").count() >= counts.iter().filter(|&&c| c > 0.0).count());
    }
}
