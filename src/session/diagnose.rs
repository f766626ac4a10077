//! `diagnose DATA`: for the worst layers by cumulative SQNR, the causes the numbers point to,
//! each with its evidence and the session command that addresses it. Read-only: it uses the
//! error tables (cumulative and isolated), the observers' statistics and the weights, and
//! changes nothing. Each rule is a threshold on one measured number (the constants below);
//! `help diagnose` prints them from those constants. A layer no rule matches says so, with its numbers.

use super::{Output, SessionError, Table, Workbench};
use crate::analysis::{ErrorMode, LayerError};
use crate::graph::Op;
use crate::observer::{ObserverKind, ObserverSpec, Stats};
use crate::workflow::{QOp, QuantizedModel};
use std::collections::HashMap;

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
                "the range the output qparams represent is >= {OUTLIER_RATIO}x the one holding 99.99% of the calibration values (histogram observers) -> percentile(p=99.99), entropy and mse re-derived from the same histogram (no new calibration), each with the layer's and the output's SQNR on DATA; the command sets the best if it raises the output SQNR by >= {MIN_GAIN_DB} dB"
            ),
        ),
        (
            "clipping",
            format!(
                "> {}% of outputs on DATA fall outside the output range -> minmax re-derived from the same statistics, with its SQNR; the command sets it if it raises the output SQNR by >= {MIN_GAIN_DB} dB",
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

/// The calibrators an outlier-set range is re-derived with, from the statistics already
/// collected (no new calibration).
const NARROWER: [ObserverKind; 3] = [
    ObserverKind::Percentile,
    ObserverKind::Entropy,
    ObserverKind::Mse,
];

/// A re-derived calibrator is suggested only if it raises the output SQNR by this much.
const MIN_GAIN_DB: f64 = 0.01;

/// A value as the session language reads it: in double quotes when it holds a space.
fn quoted(text: &str) -> String {
    if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text.to_string()
    }
}

/// The calibrator a clipped range is re-derived with: the full observed range.
const WIDER: [ObserverKind; 1] = [ObserverKind::MinMax];

/// What another calibrator of one layer's output would give on DATA: the layer's cumulative
/// SQNR and the model output's.
struct Rederived {
    spec: ObserverSpec,
    layer_db: f64,
    output_db: f64,
}

/// One finding: a cause, its evidence, the command that addresses it (none when no single
/// command does).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub cause: &'static str,
    pub evidence: String,
    pub command: Option<String>,
}

/// One layer's diagnosis: its cumulative SQNR, the drop from its input's, and what the rules
/// found (a "no rule" finding with the numbers they looked at when none applies).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDiagnosis {
    pub layer: String,
    pub sqnr_db: f64,
    pub drop_db: f64,
    pub findings: Vec<Finding>,
}

/// What `diagnose` says about a model with no statically quantized layer outputs.
fn nothing_to_diagnose(data: &str) -> String {
    format!(
        "nothing to diagnose on {data}: the converted model has no statically quantized layer outputs (dynamic quantization keeps activations float; errors weights shows its weight error)"
    )
}

impl Workbench {
    pub(super) fn diagnose(&mut self, data: &str, top: usize) -> Result<Output, SessionError> {
        let (all, diagnosed) = self.diagnoses(data, None, top)?;
        if all == 0 {
            return Ok(Output::Text(nothing_to_diagnose(data)));
        }
        let mut rows = Vec::new();
        for d in diagnosed {
            for f in d.findings {
                rows.push(vec![
                    d.layer.clone(),
                    format!("{:.2}", d.sqnr_db),
                    format!("{:.2}", d.drop_db),
                    f.cause.to_string(),
                    f.evidence,
                    f.command.unwrap_or_else(|| "-".into()),
                ]);
            }
        }
        Ok(Output::Table {
            title: format!(
                "diagnosis of the {} layer(s) adding the most error on {data} (drop_db: its input's cumulative SQNR minus its own; ranked by the noise power added; help diagnose lists the rules)",
                top.min(all)
            ),
            table: Table {
                headers: Table::header_row(&[
                    "layer", "sqnr_db", "drop_db", "cause", "evidence", "command",
                ]),
                rows,
            },
        })
    }

    /// The diagnosis of one layer on `data`: what the TUI's `d` key shows.
    pub fn layer_diagnosis(
        &mut self,
        data: &str,
        layer: &str,
    ) -> Result<LayerDiagnosis, SessionError> {
        let (all, mut found) = self.diagnoses(data, Some(layer), 1)?;
        if all == 0 {
            return Err(SessionError::NoView {
                layer: layer.into(),
                detail: nothing_to_diagnose(data),
            });
        }
        found.pop().ok_or_else(|| SessionError::UnknownLayer {
            layer: layer.into(),
            known: "the error table's layers (errors DATA lists them)".into(),
        })
    }

    /// The number of layers with a quantized output, and the diagnoses of `layer` (when given)
    /// or of the `top` layers adding the most error.
    fn diagnoses(
        &mut self,
        data: &str,
        layer: Option<&str>,
        top: usize,
    ) -> Result<(usize, Vec<LayerDiagnosis>), SessionError> {
        let cumulative = self.error_table(data, ErrorMode::Cumulative)?.to_vec();
        if cumulative.is_empty() {
            // Dynamic quantization: activations stay float, so no layer has an output range
            // to diagnose; its loss is the weights'.
            return Ok((0, Vec::new()));
        }
        let isolated = self.error_table(data, ErrorMode::Isolated)?.to_vec();
        // The model's output: the last quantized layer in graph order.
        let output_db = cumulative.last().map_or(f64::NAN, |r| r.stats.sqnr_db());
        let drops = match self.quantized.as_ref() {
            Some(model) => sqnr_drops(model, &cumulative),
            None => HashMap::new(),
        };
        let drop = |r: &LayerError| drops.get(r.layer.as_str()).map_or(f64::NAN, |d| d.0);
        let added = |r: &LayerError| drops.get(r.layer.as_str()).map_or(f64::NAN, |d| d.1);
        // The layers that add error first, not those that inherit it. Ranked by the noise
        // power added (relative to the signal) rather than the dB drop itself: a layer reading
        // the float input drops from +inf dB however little it adds.
        let mut worst: Vec<&LayerError> = cumulative
            .iter()
            .filter(|r| layer.is_none_or(|l| r.layer == l))
            .collect();
        worst.sort_by(|a, b| added(b).total_cmp(&added(a)));
        let mut out = Vec::new();
        for row in worst.into_iter().take(top) {
            let own = isolated.iter().find(|r| r.layer == row.layer);
            let mut findings = self.findings(data, row, own, output_db)?;
            if findings.is_empty() {
                findings.push(self.no_rule(row, own));
            }
            out.push(LayerDiagnosis {
                layer: row.layer.clone(),
                sqnr_db: row.stats.sqnr_db(),
                drop_db: drop(row),
                findings,
            });
        }
        Ok((cumulative.len(), out))
    }

    /// The numbers every rule looked at, so "no rule" is itself evidence.
    fn no_rule(&self, row: &LayerError, own: Option<&LayerError>) -> Finding {
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
        Finding {
            cause: "no rule",
            evidence,
            command: None,
        }
    }

    fn findings(
        &self,
        data: &str,
        row: &LayerError,
        own: Option<&LayerError>,
        output_db: f64,
    ) -> Result<Vec<Finding>, SessionError> {
        let layer = &row.layer;
        let mut out = Vec::new();
        if let Some((range, kept)) = self.tail(layer)
            && range >= OUTLIER_RATIO * kept
        {
            let found = format!(
                "range ±{range:.3} but 99.99% of values within ±{kept:.3} ({:.1}x)",
                range / kept
            );
            out.push(self.remedy("outliers", found, data, row, output_db, &NARROWER)?);
        }
        if row.clip_rate() > CLIP_RATE {
            let found = format!("{:.2}% of outputs clipped", 100.0 * row.clip_rate());
            out.push(self.remedy("clipping", found, data, row, output_db, &WIDER)?);
        }
        if let Some((ratio, depthwise)) = self.channel_spread(layer)
            && ratio >= CHANNEL_RATIO
        {
            out.push(Finding {
                cause: "uneven channels",
                evidence: format!("per-tensor weights; largest channel {ratio:.1}x the median"),
                command: Some(if depthwise {
                    "equalize".into()
                } else {
                    format!("qconfig {layer} weight=per_channel_minmax")
                }),
            });
        }
        if row.saturated_pairs > 0 {
            out.push(Finding {
                cause: "saturation",
                evidence: format!("{} int16 pair sums saturated", row.saturated_pairs),
                command: Some(format!(
                    "qconfig {layer} activation=\"histogram(reduce_range=true)\""
                )),
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
                command: target.then(|| format!("correct bias {data}")),
            });
        }
        if let Some(own) = own
            && own.stats.sqnr_db() < ISOLATED_DB
        {
            out.push(Finding {
                cause: "own loss",
                evidence: format!("isolated SQNR {:.2} dB", own.stats.sqnr_db()),
                command: Some(format!("qconfig {layer} none")),
            });
        }
        Ok(out)
    }

    /// A range finding with the calibrators `kinds` re-derived from the layer's statistics:
    /// each one's layer and output SQNR beside the current ones, and the command for the best
    /// by output SQNR, when one raises it.
    fn remedy(
        &self,
        cause: &'static str,
        found: String,
        data: &str,
        row: &LayerError,
        output_db: f64,
        kinds: &[ObserverKind],
    ) -> Result<Finding, SessionError> {
        let layer = &row.layer;
        let tried = self.rederive(data, layer, kinds)?;
        let mut evidence = found;
        if tried.is_empty() {
            evidence.push_str("; no other calibrator can be derived from these statistics");
        } else {
            let each: Vec<String> = tried
                .iter()
                .map(|r| {
                    format!(
                        "{} {:.2} dB (output {:.2})",
                        r.spec.kind.name(),
                        r.layer_db,
                        r.output_db
                    )
                })
                .collect();
            evidence.push_str(&format!(
                "; re-derived: {}; now {:.2} dB (output {output_db:.2})",
                each.join(", "),
                row.stats.sqnr_db()
            ));
        }
        let best = tried
            .iter()
            .filter(|r| r.output_db >= output_db + MIN_GAIN_DB)
            .max_by(|a, b| a.output_db.total_cmp(&b.output_db));
        let command = match best {
            Some(r) => Some(format!(
                "qconfig {layer} activation={}",
                quoted(&r.spec.to_string())
            )),
            None if tried.is_empty() => None,
            None => {
                evidence.push_str("; none raises the output SQNR");
                None
            }
        };
        Ok(Finding {
            cause,
            evidence,
            command,
        })
    }

    /// The layer's output observer re-derived with each of `kinds` (its other settings kept),
    /// each converted alone and measured on `data`; empty when the model was not calibrated
    /// here or the statistics cannot give that calibrator.
    fn rederive(
        &self,
        data: &str,
        layer: &str,
        kinds: &[ObserverKind],
    ) -> Result<Vec<Rederived>, SessionError> {
        let Some(prepared) = self.prepared.as_ref() else {
            return Ok(Vec::new());
        };
        let Some(k) = prepared.observers.iter().position(|o| o.owner == layer) else {
            return Ok(Vec::new());
        };
        let current = &prepared.observers[k];
        let mut out = Vec::new();
        for &kind in kinds {
            let spec = ObserverSpec {
                kind,
                ..current.spec.clone()
            };
            if kind == current.spec.kind || !current.can_rederive(&spec) {
                continue;
            }
            let mut changed = prepared.clone();
            changed.observers[k].spec = spec.clone();
            let model = crate::workflow::convert(&changed, self.numerics)?;
            let rows = self.rows_of(&model, data, ErrorMode::Cumulative)?;
            let db = |name: &str| {
                rows.iter()
                    .find(|r| r.layer == name)
                    .map(|r| r.stats.sqnr_db())
            };
            let (Some(layer_db), Some(output_db)) =
                (db(layer), rows.last().map(|r| r.stats.sqnr_db()))
            else {
                continue;
            };
            out.push(Rederived {
                spec,
                layer_db,
                output_db,
            });
        }
        Ok(out)
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

/// Each row's cumulative SQNR drop and the noise power it adds (relative to the signal): the
/// cumulative SQNR of its worst quantized operand (the rows producing them, found by walking
/// back through nodes without a row of their own, such as a fused ReLU) minus its own, and
/// `10^(-own/10) - 10^(-input/10)`. A layer reading the float model input drops from +inf dB.
fn sqnr_drops<'a>(model: &QuantizedModel, rows: &'a [LayerError]) -> HashMap<&'a str, (f64, f64)> {
    let db: HashMap<&str, f64> = rows
        .iter()
        .map(|r| (r.layer.as_str(), r.stats.sqnr_db()))
        .collect();
    let producer: HashMap<&str, usize> = model
        .graph
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i)))
        .collect();
    // The cumulative SQNR at `value`: its producing row's, walking back along first operands.
    let at = |value: &str| -> f64 {
        let mut v = value;
        for _ in 0..model.graph.nodes.len() {
            let Some(&i) = producer.get(v) else {
                return f64::INFINITY;
            };
            let n = &model.graph.nodes[i];
            if let Some(&d) = db.get(n.name.as_str()) {
                return d;
            }
            match n.inputs.first() {
                Some(next) => v = next,
                None => return f64::INFINITY,
            }
        }
        f64::INFINITY
    };
    let index = crate::graph::index_by_name(&model.graph.nodes);
    rows.iter()
        .filter_map(|r| {
            let node = &model.graph.nodes[*index.get(r.layer.as_str())?];
            let input = node
                .inputs
                .iter()
                .filter(|i| !i.is_empty() && !model.graph.constants.contains_key(*i))
                .map(|i| at(i))
                .fold(f64::INFINITY, f64::min);
            let own = r.stats.sqnr_db();
            let noise = |db: f64| 10f64.powf(-db / 10.0);
            Some((r.layer.as_str(), (input - own, noise(own) - noise(input))))
        })
        .collect()
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
