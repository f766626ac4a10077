//! The columns of the per-layer activation error table, defined once: their names in the REPL
//! table (`errors DATA`), in reports (JSON / CSV keys) and in the TUI's narrow pane, how each
//! cell is printed, and which order puts the worst layer first.

use super::LayerError;

/// One column of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorColumn {
    Layer,
    Op,
    Sqnr,
    Mse,
    MaxAbs,
    MeanErr,
    Cosine,
    RmseScale,
    Clip,
    InputClip,
    Saturated,
}

impl ErrorColumn {
    /// Every column, in table order.
    pub const ALL: [ErrorColumn; 11] = [
        ErrorColumn::Layer,
        ErrorColumn::Op,
        ErrorColumn::Sqnr,
        ErrorColumn::Mse,
        ErrorColumn::MaxAbs,
        ErrorColumn::MeanErr,
        ErrorColumn::Cosine,
        ErrorColumn::RmseScale,
        ErrorColumn::Clip,
        ErrorColumn::InputClip,
        ErrorColumn::Saturated,
    ];

    /// The columns weight error has (`errors weights`, `export weights`): no data, so no
    /// bias, clipping or saturation.
    pub const WEIGHT: [ErrorColumn; 5] = [
        ErrorColumn::Sqnr,
        ErrorColumn::Mse,
        ErrorColumn::MaxAbs,
        ErrorColumn::Cosine,
        ErrorColumn::RmseScale,
    ];

    /// The header of `errors DATA` (and `help errors`).
    pub fn header(self) -> &'static str {
        match self {
            ErrorColumn::Layer => "layer",
            ErrorColumn::Op => "op",
            ErrorColumn::Sqnr => "sqnr_db",
            ErrorColumn::Mse => "mse",
            ErrorColumn::MaxAbs => "max_abs",
            ErrorColumn::MeanErr => "mean_err",
            ErrorColumn::Cosine => "cosine",
            ErrorColumn::RmseScale => "rmse/scale",
            ErrorColumn::Clip => "clip%",
            ErrorColumn::InputClip => "in_clip%",
            ErrorColumn::Saturated => "saturated",
        }
    }

    /// The key in JSON and CSV reports (the report schema's field name).
    pub fn key(self) -> &'static str {
        match self {
            ErrorColumn::Sqnr => "sqnr_db",
            ErrorColumn::MeanErr => "mean_error",
            ErrorColumn::RmseScale => "rmse_over_scale",
            ErrorColumn::Clip => "clip_rate",
            ErrorColumn::InputClip => "input_clip_rate",
            ErrorColumn::Saturated => "saturated_pairs",
            other => other.header(),
        }
    }

    /// A short header for a narrow pane (`max` = max_abs, `bias` = mean_err, `in%` = in_clip%,
    /// `sat` = saturated).
    pub fn short(self) -> &'static str {
        match self {
            ErrorColumn::Sqnr => "sqnr",
            ErrorColumn::MaxAbs => "max",
            ErrorColumn::MeanErr => "bias",
            ErrorColumn::RmseScale => "rmse/s",
            ErrorColumn::InputClip => "in%",
            ErrorColumn::Saturated => "sat",
            other => other.header(),
        }
    }

    /// The cell of `e`: full precision for tables and logs, `compact` (two or three
    /// significant digits) for a narrow pane. Rates print as percentages; `-` where the op has
    /// no quantized operand.
    pub fn cell(self, e: &LayerError, compact: bool) -> String {
        let s = &e.stats;
        let pct = |v: f64| {
            if compact {
                format!("{:.2}", 100.0 * v)
            } else {
                format!("{:.3}", 100.0 * v)
            }
        };
        match (self, compact) {
            (ErrorColumn::Layer, _) => e.layer.clone(),
            (ErrorColumn::Op, _) => e.op.to_string(),
            (ErrorColumn::Sqnr, _) => format!("{:.2}", s.sqnr_db()),
            (ErrorColumn::Mse, false) => format!("{:.3e}", s.mse()),
            (ErrorColumn::Mse, true) => format!("{:.1e}", s.mse()),
            (ErrorColumn::MaxAbs, false) => format!("{:.3e}", s.max_abs()),
            (ErrorColumn::MaxAbs, true) => format!("{:.1e}", s.max_abs()),
            (ErrorColumn::MeanErr, false) => format!("{:+.3e}", s.mean_error()),
            (ErrorColumn::MeanErr, true) => format!("{:+.1e}", s.mean_error()),
            (ErrorColumn::Cosine, false) => format!("{:.6}", s.cosine()),
            (ErrorColumn::Cosine, true) => format!("{:.5}", s.cosine()),
            (ErrorColumn::RmseScale, false) => format!("{:.4}", s.rmse_over_scale()),
            (ErrorColumn::RmseScale, true) => format!("{:.3}", s.rmse_over_scale()),
            (ErrorColumn::Clip, _) => pct(e.clip_rate()),
            (ErrorColumn::InputClip, _) => e.input_clip_rate().map_or("-".into(), pct),
            (ErrorColumn::Saturated, _) => e.saturated_pairs.to_string(),
        }
    }

    /// A key whose ascending order puts the worst layer first (0 for the text columns, so a
    /// stable sort keeps graph order).
    pub fn badness(self, e: &LayerError) -> f64 {
        let s = &e.stats;
        match self {
            ErrorColumn::Layer | ErrorColumn::Op => 0.0,
            ErrorColumn::Sqnr => s.sqnr_db(),
            ErrorColumn::Mse => -s.mse(),
            ErrorColumn::MaxAbs => -s.max_abs(),
            ErrorColumn::MeanErr => -s.mean_error().abs(),
            ErrorColumn::Cosine => s.cosine(),
            ErrorColumn::RmseScale => -s.rmse_over_scale(),
            ErrorColumn::Clip => -e.clip_rate(),
            ErrorColumn::InputClip => -e.input_clip_rate().unwrap_or(0.0),
            ErrorColumn::Saturated => -(e.saturated_pairs as f64),
        }
    }
}
