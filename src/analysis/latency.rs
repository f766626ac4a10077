//! Per-layer latency: the float model and converted models (one per engine, optionally each at
//! another ISA tier) timed node by node on the same input, on one thread, as the median of
//! several repetitions.
//!
//! A node's time is the wall time between the run's callbacks for it and for the node before
//! (the first node also carries the run's setup), so the rows of one run add up to that run.
//! Totals are the sums of the per-layer medians, which is what the table shows; a median of
//! whole runs would not equal its rows. A target's tier is the one its model was converted for
//! (`Numerics::isa`: its convs, linears, requantization and adds); the float model runs on the
//! process's tier. Results do not depend on the tier, only the speed does.

use super::AnalysisError;
use crate::graph::{self, Graph, Node, Value};
use crate::workflow::QuantizedModel;
use std::time::Instant;

/// One converted model to time.
pub struct Target<'a> {
    /// The column heading (`fbgemm`, `qnnpack@scalar`, ...).
    pub name: String,
    pub model: &'a QuantizedModel,
}

/// One layer's median time per column, in ms; `None` where the layer does not exist (a node
/// fused away in the converted models, or a quantize / dequantize node the float model lacks).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerLatency {
    pub layer: String,
    pub op: &'static str,
    pub fp32_ms: Option<f64>,
    /// One entry per target, in the order given.
    pub ms: Vec<Option<f64>>,
}

/// Every layer's latency and the totals.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyReport {
    /// The target names, one per entry of `LayerLatency::ms`.
    pub columns: Vec<String>,
    /// The converted models' nodes in graph order, with float-only nodes after their
    /// predecessor.
    pub rows: Vec<LayerLatency>,
    pub reps: usize,
    /// Samples in the timed batch.
    pub samples: usize,
}

impl LatencyReport {
    /// The float model's total (sum of its layers), ms.
    pub fn fp32_total_ms(&self) -> f64 {
        self.rows.iter().filter_map(|r| r.fp32_ms).sum()
    }

    /// Target `column`'s total (sum of its layers), ms.
    pub fn total_ms(&self, column: usize) -> f64 {
        self.rows
            .iter()
            .filter_map(|r| r.ms.get(column).copied().flatten())
            .sum()
    }

    /// How many times faster than fp32 target `column` is in total.
    pub fn speedup(&self, column: usize) -> f64 {
        self.fp32_total_ms() / self.total_ms(column)
    }
}

/// Runs of the whole measurement: the warm-up plus `reps` timed runs, for fp32 and each target.
pub fn latency_steps(targets: usize, reps: usize) -> usize {
    (targets + 1) * (reps.max(1) + 1)
}

/// Times `float` and every target on `x`, `reps` times each after one warm-up run, on a
/// one-thread pool. `progress(done, total)` is called after every run (total is
/// [`latency_steps`]); returning `false` stops with [`AnalysisError::Cancelled`].
pub fn layer_latency(
    float: &Graph,
    targets: &[Target],
    x: &Value,
    reps: usize,
    progress: &mut (dyn FnMut(usize, usize) -> bool + Send),
) -> Result<LatencyReport, AnalysisError> {
    let reps = reps.max(1);
    // Kernels parallelize with rayon; one thread is the condition latencies are quoted in.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| AnalysisError::Model {
            detail: format!("cannot build a one-thread pool: {e}"),
        })?;
    let total = latency_steps(targets.len(), reps);
    let mut done = 0;
    let mut step = || {
        done += 1;
        if progress(done, total) {
            Ok(())
        } else {
            Err(AnalysisError::Cancelled)
        }
    };
    pool.install(|| {
        let fp32 = time_nodes(&float.nodes, reps, &mut step, |on_node| {
            graph::run(float, vec![x.clone()], on_node)
                .map(drop)
                .map_err(|e| e.to_string())
        })?;
        let mut per_target = Vec::with_capacity(targets.len());
        for t in targets {
            let timed = time_nodes(&t.model.graph.nodes, reps, &mut step, |on_node| {
                t.model
                    .run(vec![x.clone()], |n, _| on_node(n, &[]))
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
            per_target.push(timed?);
        }
        Ok(LatencyReport {
            columns: targets.iter().map(|t| t.name.clone()).collect(),
            rows: merge_rows(float, targets, &fp32, &per_target),
            reps,
            samples: x.shape().first().copied().unwrap_or(0),
        })
    })
}

/// The median time of each of `nodes` over `reps` runs (after a warm-up), ms.
fn time_nodes(
    nodes: &[Node],
    reps: usize,
    step: &mut dyn FnMut() -> Result<(), AnalysisError>,
    run: impl Fn(&mut dyn FnMut(&Node, &[Value])) -> Result<(), String>,
) -> Result<Vec<f64>, AnalysisError> {
    let index = crate::graph::index_by_name(nodes);
    let mut samples = vec![Vec::with_capacity(reps); nodes.len()];
    // The warm-up run packs weights and allocates; its times are dropped.
    for rep in 0..=reps {
        let mut last = Instant::now();
        run(&mut |node, _| {
            let now = Instant::now();
            if let (true, Some(&i)) = (rep > 0, index.get(node.name.as_str())) {
                samples[i].push((now - last).as_secs_f64() * 1e3);
            }
            last = now;
        })
        .map_err(|detail| AnalysisError::Model { detail })?;
        step()?;
    }
    Ok(samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s.get(s.len() / 2).copied().unwrap_or(0.0)
        })
        .collect())
}

/// Rows in the first target's graph order, each float-only node placed after the row of the
/// float node before it.
fn merge_rows(
    float: &Graph,
    targets: &[Target],
    fp32: &[f64],
    per_target: &[Vec<f64>],
) -> Vec<LayerLatency> {
    let time_of = |t: usize, layer: &str| {
        let nodes = &targets[t].model.graph.nodes;
        let i = nodes.iter().position(|n| n.name == layer)?;
        per_target[t].get(i).copied()
    };
    let mut rows: Vec<LayerLatency> = match targets.first() {
        Some(first) => first
            .model
            .graph
            .nodes
            .iter()
            .zip(&first.model.ops)
            .map(|(n, op)| LayerLatency {
                layer: n.name.clone(),
                op: op.kind(),
                fp32_ms: None,
                ms: (0..targets.len()).map(|t| time_of(t, &n.name)).collect(),
            })
            .collect(),
        None => Vec::new(),
    };
    let mut at = 0;
    for (node, &ms) in float.nodes.iter().zip(fp32) {
        match rows.iter().position(|r| r.layer == node.name) {
            Some(i) => {
                rows[i].fp32_ms = Some(ms);
                at = i + 1;
            }
            None => {
                rows.insert(
                    at,
                    LayerLatency {
                        layer: node.name.clone(),
                        op: node.op.kind(),
                        fp32_ms: Some(ms),
                        ms: vec![None; targets.len()],
                    },
                );
                at += 1;
            }
        }
    }
    rows
}
