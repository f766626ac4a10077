//! Plots with plotters, as SVG or PNG (chosen by the output's extension): an observer's histogram
//! with the quantization range and the integer grid overlaid (what the observer chose to keep and
//! to clip), and per-layer SQNR bars.
//!
//! Text is set in a font that ships inside the binary (Ubuntu Light, from the
//! `epaint_default_fonts` crate), registered once with plotters' `ab_glyph` renderer: PNGs look
//! the same on every machine and never depend on system fonts. PNGs are drawn into an RGB buffer
//! and encoded in memory, so callers write them atomically like any other report.

use super::ErrorReport;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::OnceLock;
use thiserror::Error;

/// The family every plot's text is set in; registered with the bundled font.
const FONT: &str = "sans-serif";

/// What can go wrong producing a plot.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The output file's extension names no plot format.
    #[error("'{path}': unknown plot extension '{ext}' (use .svg or .png)")]
    UnknownExtension { path: String, ext: String },
    /// The bundled font did not parse (a broken build, never user input).
    #[error("plot: the bundled font could not be loaded")]
    Font,
    /// plotters failed to draw.
    #[error("plot: {0}")]
    Draw(String),
    /// The PNG encoder failed.
    #[error("plot: PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The formats `plot` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    Svg,
    Png,
}

impl PlotFormat {
    /// The format named by `path`'s extension.
    pub fn from_path(path: &str) -> Result<PlotFormat, PlotError> {
        let ext = std::path::Path::new(path)
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        match ext.to_ascii_lowercase().as_str() {
            "svg" => Ok(PlotFormat::Svg),
            "png" => Ok(PlotFormat::Png),
            _ => Err(PlotError::UnknownExtension {
                path: path.into(),
                ext,
            }),
        }
    }
}

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Registers the bundled font with plotters once per process.
fn bundled_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// A chart that can be drawn on any plotters backend.
trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;
}

/// Draws `chart` as the bytes of a file in `format`.
fn render(chart: &impl Chart, format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    bundled_font()?;
    let (w, h) = chart.size();
    match format {
        PlotFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                chart.draw(&root)?;
                root.present().map_err(draw_err)?;
            }
            Ok(svg.into_bytes())
        }
        PlotFormat::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                chart.draw(&root)?;
                root.present().map_err(draw_err)?;
            }
            let mut png = Vec::new();
            let mut encoder = png::Encoder::new(&mut png, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&rgb)?;
            writer.finish()?;
            Ok(png)
        }
    }
}

/// What a histogram plot shows.
#[derive(Debug, Clone)]
pub struct HistogramPlot<'a> {
    pub title: String,
    pub min: f32,
    pub max: f32,
    pub counts: &'a [f32],
    /// Output scale, zero point and integer range, when qparams are known.
    pub qparams: Option<(f64, i64, i64, i64)>,
    /// Bar heights `log10(1 + count)` instead of counts: a spike at zero (millions of
    /// post-ReLU zeros) no longer flattens the tails that decide the range.
    pub log: bool,
}

/// The histogram as the bytes of a `format` file.
pub fn histogram_plot(p: &HistogramPlot, format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    render(p, format)
}

impl Chart for HistogramPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 420)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let p = self;
        root.fill(&WHITE).map_err(draw_err)?;
        let (lo, hi) = (p.min as f64, p.max as f64);
        let (mut x0, mut x1) = (lo, if hi > lo { hi } else { lo + 1.0 });
        if let Some((s, z, qmin, qmax)) = p.qparams {
            x0 = x0.min((qmin - z) as f64 * s);
            x1 = x1.max((qmax - z) as f64 * s);
        }
        let pad = (x1 - x0) * 0.02;
        let height = |c: f32| {
            if p.log {
                f64::from(c).ln_1p() / std::f64::consts::LN_10
            } else {
                f64::from(c)
            }
        };
        let peak = height(p.counts.iter().copied().fold(1.0f32, f32::max));
        let mut chart = ChartBuilder::on(root)
            .caption(&p.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..peak * 1.08)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("value")
            .y_desc(if p.log { "log10(1 + count)" } else { "count" })
            .disable_mesh()
            .draw()
            .map_err(draw_err)?;
        let width = (hi - lo) / p.counts.len().max(1) as f64;
        chart
            .draw_series(p.counts.iter().enumerate().map(|(i, &c)| {
                let left = lo + i as f64 * width;
                Rectangle::new(
                    [(left, 0.0), (left + width, height(c))],
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
        Ok(())
    }
}

/// Per-layer SQNR bars (graph order) as the bytes of a `format` file.
pub fn errors_plot(report: &ErrorReport, format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    render(report, format)
}

impl Chart for ErrorReport {
    fn size(&self) -> (u32, u32) {
        (900, 160 + 22 * self.rows.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let report = self;
        let n = report.rows.len().max(1);
        root.fill(&WHITE).map_err(draw_err)?;
        let finite = |v: f64| if v.is_finite() { v } else { 100.0 };
        let top = report
            .rows
            .iter()
            .map(|r| finite(r.sqnr_db))
            .fold(10.0, f64::max);
        let labels: Vec<String> = report.rows.iter().map(|r| r.layer.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{} SQNR per layer — {} on {}",
                    report.mode, report.model, report.data
                ),
                (FONT, 18),
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(counts: &[f32]) -> HistogramPlot<'_> {
        HistogramPlot {
            title: "conv1".into(),
            min: -1.0,
            max: 3.0,
            counts,
            qparams: Some((0.03, 33, 0, 127)),
            log: false,
        }
    }

    /// With `log`, a 3-million spike no longer squashes a tail of single counts to nothing:
    /// every non-empty bin's bar is at least a thirtieth of the spike's (log10 2 / log10 3e6).
    #[test]
    fn log_scale_keeps_the_tails_visible() {
        let mut counts = vec![1.0f32; 32];
        counts[0] = 3.0e6;
        let heights = |log: bool| {
            let svg = String::from_utf8(
                histogram_plot(
                    &HistogramPlot {
                        log,
                        ..plot(&counts)
                    },
                    PlotFormat::Svg,
                )
                .unwrap(),
            )
            .unwrap();
            let mut h: Vec<f64> = svg
                .split("<rect")
                .skip(1)
                .filter(|r| r.contains("fill=\"#0000FF\""))
                .filter_map(|r| {
                    let v = r.split("height=\"").nth(1)?.split('"').next()?;
                    v.parse().ok()
                })
                .collect();
            h.sort_by(f64::total_cmp);
            (svg.contains("log10(1 + count)"), h)
        };
        let (label, log) = heights(true);
        assert!(label && log.len() >= 32, "{log:?}");
        assert!(log[0] >= log[log.len() - 1] / 30.0, "{log:?}");
        let (label, linear) = heights(false);
        assert!(
            !label && linear[0] < linear[linear.len() - 1] / 1000.0,
            "{linear:?}"
        );
    }

    #[test]
    fn histogram_plot_shows_the_quantization_range() {
        let counts: Vec<f32> = (0..64).map(|i| (i % 9) as f32).collect();
        let svg =
            String::from_utf8(histogram_plot(&plot(&counts), PlotFormat::Svg).unwrap()).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("conv1"), "{svg}");
        assert!(
            svg.contains("quantization range [-0.9900, 2.8200]"),
            "{svg}"
        );
        // One bar per non-empty bin.
        assert!(svg.matches("<rect").count() >= counts.iter().filter(|&&c| c > 0.0).count());
    }

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(PlotFormat::from_path("a/b.PNG").unwrap(), PlotFormat::Png);
        assert_eq!(PlotFormat::from_path("b.svg").unwrap(), PlotFormat::Svg);
        let e = PlotFormat::from_path("b.jpeg").unwrap_err().to_string();
        assert!(e.contains("'b.jpeg'") && e.contains("'jpeg'"), "{e}");
        assert!(PlotFormat::from_path("noext").is_err());
    }

    /// Counts the pixels of `rgb` (900 wide) in `[x0, x1) × [y0, y1)` that satisfy `keep`.
    fn pixels(
        rgb: &[u8],
        (x0, x1): (usize, usize),
        (y0, y1): (usize, usize),
        keep: impl Fn(&[u8]) -> bool,
    ) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (y * 900 + x) * 3))
            .filter(|&i| keep(&rgb[i..i + 3]))
            .count()
    }

    #[test]
    fn png_decodes_with_its_size_text_and_bars() {
        let counts: Vec<f32> = (0..64).map(|i| (i % 9) as f32).collect();
        let bytes = histogram_plot(&plot(&counts), PlotFormat::Png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR is the first chunk: its width and height are big-endian at bytes 16..24.
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 900);
        assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 420);
        let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes))
            .read_info()
            .unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!((info.width, info.height), (900, 420));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let dark = |p: &[u8]| p.iter().all(|&c| c < 128);
        // The caption ("conv1") is drawn in the top band, the y tick labels left of the axis.
        assert!(
            pixels(&rgb, (0, 900), (0, 40), dark) > 20,
            "no caption text"
        );
        assert!(
            pixels(&rgb, (0, 60), (40, 380), dark) > 20,
            "no axis labels"
        );
        // Bars are BLUE at 60% on white: (102, 102, 255).
        let bar = |p: &[u8]| p == [102, 102, 255];
        assert!(pixels(&rgb, (60, 900), (40, 380), bar) > 2000, "no bars");
        // The two range edges are solid red lines.
        let red = |p: &[u8]| p == [255, 0, 0];
        assert!(
            pixels(&rgb, (60, 900), (40, 380), red) > 400,
            "no range edges"
        );
        // Replays write identical files.
        assert_eq!(
            histogram_plot(&plot(&counts), PlotFormat::Png).unwrap(),
            bytes
        );
    }
}
