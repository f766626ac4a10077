//! `diagnose DATA`: for the worst layers by cumulative SQNR, the causes the numbers point to,
//! each with its evidence and the session command that addresses it. Read-only: it uses the
//! error tables (cumulative and isolated), the observers' statistics and the weights, and
//! changes nothing. Each rule is a threshold on one measured number (the constants below);
//! `help diagnose` prints them from those constants. A layer no rule matches says so, with its numbers.

use super::{Output, SessionError, Table, Workbench};
use crate::analysis::{ErrorMode, LayerError};
use crate::graph::Op;
use crate::observer::Stats;
use crate::workflow::QOp;

/// The range is "set by outliers" when it is this many times wider than the one holding
/// 99.99 % of the observed values.
const OUTLIER_RATIO: f64 = 2.0;
/// Outputs clipped by the output qparams beyond this fraction: the range is too narrow.
const CLIP_RATE: f64 = 1e-3;
/// Per-tensor weights whose largest channel magnitude is this many times the median channel's.
const CHANNEL_RATIO: f64 = 4.0;
/// A mean error of this fraction of the output step or more is a systematic shift.
const SHIFT_STEPS: f64 = 0.1;
/// Below this isolated SQNR the layer's own quantization is the loss, whatever feeds it.
const ISOLATED_DB: f64 = 20.0;

/// `help diagnose`'s details: each rule with its threshold, written from the constants the
/// rules test, so the help cannot drift from them.
pub fn rules_help() -> String {
    let rules = [
        (
            "outliers",
            format!(
                "the range the output qparams represent is >= {OUTLIER_RATIO}x the one holding 99.99% of the calibration values (histogram observers) -> qconfig L activation=percentile(p=99.99)"
            ),
        ),
        (
            "clipping",
            format!(
                "> {}% of outputs on DATA fall outside the output range -> qconfig L activation=minmax",
                100.0 * CLIP_RATE
            ),
        ),
        (
            "uneven channels",
            format!(
                "per-tensor weights whose largest channel magnitude is >= {CHANNEL_RATIO}x the median channel's -> per-channel weights, or equalize for a depthwise conv"
            ),
        ),
        (
            "saturation",
            "fbgemm's int16 pair sums saturated on DATA -> 7-bit activations (reduce_range=true) or the qnnpack engine".to_string(),
        ),
        (
            "shift",
            format!(
                "|mean error| >= {SHIFT_STEPS} of the output step -> correct bias DATA (unfused Conv2d / Linear)"
            ),
        ),
        (
            "own loss",
            format!(
                "isolated SQNR < {ISOLATED_DB} dB: its own quantization loses it, whatever feeds it -> qconfig L none"
            ),
        ),
    ];
    let mut text = String::from("Rules (each cause names the number that triggered it):");
    for (name, rule) in rules {
        text.push_str(&format!("\n  {name:<16} {rule}"));
    }
    text.push_str("\nRead-only: it changes nothing; run the suggested command to apply one.");
    text
}

/// One finding: a cause, its evidence, the command that addresses it.
struct Finding {
    cause: &'static str,
    evidence: String,
    command: String,
}

impl Workbench {
    pub(super) fn diagnose(&mut self, data: &str, top: usize) -> Result<Output, SessionError> {
        let cumulative = self.error_table(data, ErrorMode::Cumulative)?.to_vec();
        let isolated = self.error_table(data, ErrorMode::Isolated)?.to_vec();
        let mut worst: Vec<&LayerError> = cumulative.iter().collect();
        worst.sort_by(|a, b| a.stats.sqnr_db().total_cmp(&b.stats.sqnr_db()));
        let mut rows = Vec::new();
        for row in worst.into_iter().take(top) {
            let own = isolated.iter().find(|r| r.layer == row.layer);
            let mut findings = self.findings(data, row, own);
            if findings.is_empty() {
                // The numbers every rule looked at, so "no rule" is itself evidence.
                let mut evidence = format!(
                    "clip {:.3}%, |mean error| {:.3} steps, isolated {}",
                    100.0 * row.clip_rate(),
                    shift_steps(row),
                    own.map_or("-".into(), |r| format!("{:.2} dB", r.stats.sqnr_db()))
                );
                if let Some((range, kept)) = self.tail(&row.layer) {
                    evidence.push_str(&format!(", range {:.1}x the 99.99% one", range / kept));
                }
                if let Some((ratio, _)) = self.channel_spread(&row.layer) {
                    evidence.push_str(&format!(", channels {ratio:.1}x the median"));
                }
                findings.push(Finding {
                    cause: "no rule",
                    evidence,
                    command: "-".into(),
                });
            }
            for f in findings {
                rows.push(vec![
                    row.layer.clone(),
                    format!("{:.2}", row.stats.sqnr_db()),
                    f.cause.to_string(),
                    f.evidence,
                    f.command,
                ]);
            }
        }
        Ok(Output::Table {
            title: format!(
                "diagnosis of the {} worst layer(s) on {data} (cumulative SQNR; help diagnose lists the rules)",
                top.min(cumulative.len())
            ),
            table: Table {
                headers: Table::header_row(&["layer", "sqnr_db", "cause", "evidence", "command"]),
                rows,
            },
        })
    }

    fn findings(&self, data: &str, row: &LayerError, own: Option<&LayerError>) -> Vec<Finding> {
        let layer = &row.layer;
        let mut out = Vec::new();
        if let Some((range, kept)) = self.tail(layer)
            && range >= OUTLIER_RATIO * kept
        {
            out.push(Finding {
                cause: "outliers",
                evidence: format!(
                    "range ±{range:.3} but 99.99% of values within ±{kept:.3} ({:.1}x)",
                    range / kept
                ),
                command: format!("qconfig {layer} activation=percentile(p=99.99)"),
            });
        }
        if row.clip_rate() > CLIP_RATE {
            out.push(Finding {
                cause: "clipping",
                evidence: format!("{:.2}% of outputs clipped", 100.0 * row.clip_rate()),
                command: format!("qconfig {layer} activation=minmax"),
            });
        }
        if let Some((ratio, depthwise)) = self.channel_spread(layer)
            && ratio >= CHANNEL_RATIO
        {
            out.push(Finding {
                cause: "uneven channels",
                evidence: format!("per-tensor weights; largest channel {ratio:.1}x the median"),
                command: if depthwise {
                    "equalize".into()
                } else {
                    format!("qconfig {layer} weight=per_channel_minmax")
                },
            });
        }
        if row.saturated_pairs > 0 {
            out.push(Finding {
                cause: "saturation",
                evidence: format!("{} int16 pair sums saturated", row.saturated_pairs),
                command: format!("qconfig {layer} activation=\"histogram(reduce_range=true)\""),
            });
        }
        let steps = shift_steps(row);
        if steps >= SHIFT_STEPS {
            let target = matches!(row.op, "qconv" | "qlinear");
            out.push(Finding {
                cause: "shift",
                evidence: format!(
                    "mean error {:+.3e} = {steps:.2} output steps{}",
                    row.stats.mean_error(),
                    if target {
                        ""
                    } else {
                        " (bias correction reaches unfused Conv2d / Linear only)"
                    }
                ),
                command: if target {
                    format!("correct bias {data}")
                } else {
                    "-".into()
                },
            });
        }
        if let Some(own) = own
            && own.stats.sqnr_db() < ISOLATED_DB
        {
            out.push(Finding {
                cause: "own loss",
                evidence: format!("isolated SQNR {:.2} dB", own.stats.sqnr_db()),
                command: format!("qconfig {layer} none"),
            });
        }
        out
    }

    /// From the layer's histogram observer: the larger end of the range its qparams represent,
    /// and the magnitude within which 99.99 % of the observed values lie.
    fn tail(&self, layer: &str) -> Option<(f64, f64)> {
        let obs = self
            .prepared
            .as_ref()?
            .observers
            .iter()
            .find(|o| o.owner == layer)?;
        let Stats::Histogram { min, max, counts } = obs.observer.stats() else {
            return None;
        };
        let (min, max) = (f64::from(min), f64::from(max));
        let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
        if total <= 0.0 || max <= min || counts.is_empty() {
            return None;
        }
        let width = (max - min) / counts.len() as f64;
        // Bins sorted by their farther end's magnitude: keep the nearest until 99.99 % is in.
        let mut bins: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let (lo, hi) = (min + i as f64 * width, min + (i + 1) as f64 * width);
                (lo.abs().max(hi.abs()), f64::from(c))
            })
            .collect();
        bins.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut seen = 0.0;
        let kept = bins
            .iter()
            .find(|(_, c)| {
                seen += c;
                seen >= 0.9999 * total
            })
            .map_or(max.abs().max(min.abs()), |b| b.0);
        // The range the observer chose (a histogram observer has already narrowed it), else
        // the observed one: outliers matter only where they set the quantization range.
        let chosen = obs
            .qparams()
            .ok()
            .map(|q| {
                let (s, z) = (f64::from(q.scales[0]), q.zero_points[0]);
                (s * (q.quant_min - z) as f64)
                    .abs()
                    .max((s * (q.quant_max - z) as f64).abs())
            })
            .unwrap_or(min.abs().max(max.abs()));
        (kept > 0.0).then_some((chosen, kept))
    }

    /// For a per-tensor quantized Conv / Linear: its largest output channel's weight
    /// magnitude over the median channel's, and whether it is a depthwise conv.
    fn channel_spread(&self, layer: &str) -> Option<(f64, bool)> {
        let model = self.quantized.as_ref()?;
        let i = model.graph.nodes.iter().position(|n| n.name == layer)?;
        let per_tensor = match &model.ops[i] {
            QOp::Conv(c) => c.weight.scales.len() == 1,
            QOp::Linear(l) => l.weight.scales.len() == 1,
            _ => false,
        };
        let (weight, depthwise) = match &model.graph.nodes[i].op {
            Op::Conv(c) => (
                c.weight.view(),
                c.groups > 1 && c.groups == c.weight.shape()[0],
            ),
            Op::Linear(l) => (l.weight.view().into_dyn(), false),
            _ => return None,
        };
        if !per_tensor || weight.shape()[0] < 2 {
            return None;
        }
        let mut mags: Vec<f64> = weight
            .outer_iter()
            .map(|ch| ch.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs()))))
            .collect();
        mags.sort_by(f64::total_cmp);
        let median = mags[mags.len() / 2];
        (median > 0.0).then(|| (mags[mags.len() - 1] / median, depthwise))
    }
}

/// |mean error| in output steps: mean error / scale, the scale recovered from rmse / (rmse /
/// scale) as the error table keeps both.
fn shift_steps(row: &LayerError) -> f64 {
    let rmse = row.stats.mse().sqrt();
    if rmse > 0.0 {
        row.stats.mean_error().abs() * row.stats.rmse_over_scale() / rmse
    } else {
        0.0
    }
}
