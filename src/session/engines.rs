//! Engine comparison (`compare engines A B DATA [timing=on]`) and per-layer latency.
//!
//! Latency is measured on the dataset's first sample (batch 1), on one thread, as the median of
//! [`LATENCY_REPS`] runs. It is only added on request: timings differ from run to run, and a
//! replayed session must print the same report every time. [`SpeedJob`] is the same
//! measurement copied out of the workbench, so a front end can run it on another thread.

use super::feed::pinned_batch;
use super::{Output, SessionError, Table, Workbench};
use crate::analysis::{
    AnalysisError, LatencyReport, LayerDiff, Target, engine_diff, layer_latency,
};
use crate::engine::{Engine, HostProfile, Numerics};
use crate::graph::{Graph, Value};
use crate::isa::Isa;
use crate::workflow::{self, Prepared, QuantizedModel};

/// Timed runs per model (after one warm-up).
pub const LATENCY_REPS: usize = 20;

/// Everything a latency measurement reads, owned, so it can move to a worker thread.
#[derive(Debug, Clone)]
pub struct SpeedJob {
    float: Graph,
    prepared: Prepared,
    profile: HostProfile,
    /// The first run's input (one sample, or the batch the model pins).
    x: Value,
    engines: Vec<Engine>,
    /// Tiers to convert for, one column per engine and tier; empty: the process's tier.
    tiers: Vec<Isa>,
}

impl SpeedJob {
    /// Runs of the whole measurement (the `total` its progress counts to).
    pub fn steps(&self) -> usize {
        crate::analysis::latency_steps(self.engines.len() * self.tiers.len().max(1), LATENCY_REPS)
    }

    /// Converts the calibrated model for every engine and times it at every tier against fp32.
    /// `progress(done, total)` returning `false` cancels.
    pub fn run(
        &self,
        progress: &mut (dyn FnMut(usize, usize) -> bool + Send),
    ) -> Result<LatencyReport, SessionError> {
        // One conversion per column: the tier is part of the converted model's numerics.
        let tiers: Vec<Option<Isa>> = if self.tiers.is_empty() {
            vec![None]
        } else {
            self.tiers.iter().copied().map(Some).collect()
        };
        let mut columns = Vec::with_capacity(self.engines.len() * tiers.len());
        for &e in &self.engines {
            for &tier in &tiers {
                let mut numerics = Numerics::new(e, self.profile);
                if let Some(t) = tier {
                    numerics = numerics.on(t).map_err(AnalysisError::from)?;
                }
                let name = tier.map_or_else(|| e.to_string(), |t| format!("{e}@{t}"));
                columns.push((name, workflow::convert(&self.prepared, numerics)?));
            }
        }
        let targets: Vec<Target> = columns
            .iter()
            .map(|(name, model)| Target {
                name: name.clone(),
                model,
            })
            .collect();
        layer_latency(&self.float, &targets, &self.x, LATENCY_REPS, progress).map_err(cancelled)
    }
}

/// Two engines' conversions of the calibrated model and how they differ.
pub(super) struct EngineComparison {
    pub models: [QuantizedModel; 2],
    /// Graph order.
    pub rows: Vec<LayerDiff>,
    /// Each model's (correct, samples) on the data, when it has labels.
    pub correct: [Option<(usize, usize)>; 2],
}

impl Workbench {
    /// A latency measurement of `engines` at each of `tiers` (empty: the process's tier) on the
    /// first sample of `data`; needs a calibrated model.
    pub fn speed_job(
        &self,
        data: &str,
        engines: &[Engine],
        tiers: &[Isa],
    ) -> Result<SpeedJob, SessionError> {
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let (_, float) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        Ok(SpeedJob {
            float: float.clone(),
            prepared: prepared.clone(),
            profile: self.numerics.profile,
            x: self.first_sample(data)?,
            engines: engines.to_vec(),
            tiers: tiers.to_vec(),
        })
    }

    /// The first sample of `data`, or the first run of the batch the model pins (the smallest
    /// input it can time).
    fn first_sample(&self, data: &str) -> Result<Value, SessionError> {
        let d = self.dataset(data)?;
        let run = match self.graph() {
            Some(graph) => {
                d.check_model(graph)?;
                pinned_batch(graph).map_or(1, |(_, b)| b)
            }
            None => 1,
        };
        Ok(d.rows(0..d.len().min(run)))
    }

    /// The calibrated model converted for engines `a` and `b`, compared node by node on
    /// `data`, as `compare engines` prints it and `export compare` writes it.
    pub(super) fn engine_comparison(
        &self,
        a: Engine,
        b: Engine,
        data: &str,
    ) -> Result<EngineComparison, SessionError> {
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let profile = self.numerics.profile;
        let ma = workflow::convert(prepared, Numerics::new(a, profile))?;
        let mb = workflow::convert(prepared, Numerics::new(b, profile))?;
        let runs = self.runs(&ma.graph, data, None)?;
        let d = self.dataset(data)?;
        let batches = runs.ranges.into_iter().map(|r| d.rows(r));
        let rows = engine_diff(&ma, &mb, batches)?;
        let correct = [
            self.model_correct(&ma, data)?,
            self.model_correct(&mb, data)?,
        ];
        Ok(EngineComparison {
            models: [ma, mb],
            rows,
            correct,
        })
    }

    pub(super) fn compare_engines(
        &self,
        a: Engine,
        b: Engine,
        data: &str,
        timing: bool,
    ) -> Result<Output, SessionError> {
        let profile = self.numerics.profile;
        let EngineComparison {
            models: [ma, mb],
            rows,
            correct,
        } = self.engine_comparison(a, b, data)?;
        let accuracy = |correct: Option<(usize, usize)>, e: Engine| match correct {
            Some((c, n)) => format!("{e} {:.6} ({c}/{n})", c as f64 / n.max(1) as f64),
            None => format!("{e} (no labels)"),
        };
        let mut title = format!(
            "{a} vs {b} on {data} (same observers; profile {}); accuracy: {}, {}",
            profile.name(),
            accuracy(correct[0], a),
            accuracy(correct[1], b)
        );
        let mut headers =
            Table::header_row(&["layer", "op", "outputs", "differ", "differ%", "max_lsb"]);
        let mut table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.layer.clone(),
                    r.op.to_string(),
                    r.count.to_string(),
                    r.differing.to_string(),
                    format!("{:.3}", 100.0 * r.differing as f64 / r.count.max(1) as f64),
                    r.max_lsb.to_string(),
                ]
            })
            .collect();
        if timing {
            let report = self.time_pair(data, [(a, &ma), (b, &mb)])?;
            title.push_str(&format!("; {}", latency_summary(&report)));
            headers.push("fp32_ms".into());
            headers.extend(report.columns.iter().map(|c| format!("{c}_ms")));
            for (cells, r) in table.iter_mut().zip(&rows) {
                let Some(t) = report.rows.iter().find(|t| t.layer == r.layer) else {
                    continue;
                };
                cells.push(ms(t.fp32_ms));
                cells.extend(t.ms.iter().map(|&m| ms(m)));
            }
        }
        Ok(Output::Table {
            title,
            table: Table {
                headers,
                rows: table,
            },
        })
    }

    /// Per-layer latency of two converted models and fp32 on the process's tier.
    fn time_pair(
        &self,
        data: &str,
        models: [(Engine, &QuantizedModel); 2],
    ) -> Result<LatencyReport, SessionError> {
        let (_, float) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let targets = models.map(|(e, model)| Target {
            name: e.to_string(),
            model,
        });
        let x = self.first_sample(data)?;
        layer_latency(float, &targets, &x, LATENCY_REPS, &mut |_, _| {
            super::cancel::check().is_ok()
        })
        .map_err(cancelled)
    }
}

/// `latency (batch 1, 1 thread, median of N): fp32 X ms, fbgemm Y ms (S× fp32), ...`.
pub fn latency_summary(r: &LatencyReport) -> String {
    let columns: Vec<String> = r
        .columns
        .iter()
        .enumerate()
        .map(|(c, name)| format!("{name} {:.3} ms ({:.2}x fp32)", r.total_ms(c), r.speedup(c)))
        .collect();
    format!(
        "latency (batch {}, 1 thread, median of {}): fp32 {:.3} ms, {}",
        r.samples,
        r.reps,
        r.fp32_total_ms(),
        columns.join(", ")
    )
}

/// A cancelled measurement is the session's `Cancelled` (the workbench is unchanged).
fn cancelled(e: AnalysisError) -> SessionError {
    match e {
        AnalysisError::Cancelled => SessionError::Cancelled,
        e => e.into(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |m| format!("{m:.4}"))
}
