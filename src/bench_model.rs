//! `qlab bench model PATH`: whole-model figures — batch-1 fp32 latency, int8 latency per
//! engine after fuse + calibrate + convert with the engine's default qconfig, the calibration
//! time, and the int8 output's SQNR against fp32. Each int8 latency is set against our own fp32
//! on the same model, measured in the same run; PyTorch's figures only come from a file the user
//! measured on this host (`--against`, [`crate::bench_against`], section `models_ms`).
//!
//! Latencies are medians over repetitions on one thread (a one-thread rayon pool); calibration
//! runs on every core, as a user's would, so its peer ratio is printed only when the peer ran on
//! as many threads. Thread scaling ([`crate::bench_scaling`]) times a batch of
//! [`SCALING_BATCH`] through the fp32 and the fbgemm int8 model at one thread and at the
//! process's thread count, and checks the outputs are bit-identical.

use crate::analysis::ErrorStats;
use crate::bench_against::{Against, AgainstInfo, PeerRatio, trailing};
use crate::bench_scaling::{self, Scaling};
use crate::engine::{Engine, Numerics};
use crate::graph::{self, Graph, Value, rows};
use crate::import::Dataset;
use crate::qconfig::presets::get_default_qconfig;
use crate::workflow::{self, QConfigMap, QOp, QuantizedModel, WorkflowError};
use serde::Serialize;
use std::time::Instant;

/// The version of `qlab bench model --json`'s layout: 2 dropped the built-in PyTorch figures
/// (`anchor`, `pytorch_ms`) and added `host_cpu`, the peer ratios and `against` (version 1 was
/// unversioned); 3 added `scaling`; 4 added `scaling_by_op`.
pub const JSON_SCHEMA_VERSION: u32 = 4;

/// The batch the thread-scaling figures run (fewer when the data has fewer samples).
pub const SCALING_BATCH: usize = 8;

/// One engine's int8 figures.
#[derive(Debug, Clone, Serialize)]
pub struct EngineFigure {
    pub engine: String,
    pub latency_ms: f64,
    pub calibration_s: f64,
    /// SQNR (dB) of the int8 output against fp32 on the data.
    pub sqnr_db: f64,
    /// The peer's latency for this engine (`--against`).
    pub peers: Vec<PeerRatio>,
    /// Batch-1 time per kind of op (`conv depthwise`, `conv 1x1`, `qadd`, ...), ms, median over
    /// the repetitions, largest first: where the latency goes.
    pub by_op: Vec<(String, f64)>,
}

/// The kind of op a node's time is booked under (a node that keeps its input's qparams under
/// its float op's name: `quantized Reshape`).
fn op_label(op: &QOp, node: &crate::graph::Node) -> String {
    match op {
        QOp::Follow => format!("quantized {}", node.op.kind()),
        QOp::Conv(c) if c.params.groups > 1 && c.weight.shape[1] == 1 => "conv depthwise".into(),
        QOp::Conv(c) if c.weight.shape[2..].iter().all(|&k| k == 1) => "conv 1x1".into(),
        QOp::Conv(_) => "conv".into(),
        other => other.kind().into(),
    }
}

/// Time per op kind of `model` on `x`: the median over `reps` runs of each kind's total (one run
/// alone was at the mercy of a single preemption on a busy machine).
fn time_by_op(
    model: &QuantizedModel,
    x: &Value,
    reps: usize,
) -> Result<Vec<(String, f64)>, WorkflowError> {
    let index = crate::graph::index_by_name(&model.graph.nodes);
    let mut runs: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for _ in 0..reps.max(1) {
        let mut totals: std::collections::BTreeMap<String, f64> = Default::default();
        let mut last = Instant::now();
        model.run(vec![x.clone()], |node, _| {
            let label = op_label(&model.ops[index[node.name.as_str()]], node);
            *totals.entry(label).or_default() += last.elapsed().as_secs_f64() * 1e3;
            last = Instant::now();
        })?;
        for (label, ms) in totals {
            runs.entry(label).or_default().push(ms);
        }
    }
    let mut v: Vec<(String, f64)> = runs
        .into_iter()
        .map(|(label, mut ms)| {
            ms.sort_by(f64::total_cmp);
            (label, ms[ms.len() / 2])
        })
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(v)
}

/// One kind of op's share of the int8 batch forward at one thread and at the process's thread
/// count: which ops hold the whole network's scaling back.
#[derive(Debug, Clone, Serialize)]
pub struct OpScaling {
    pub op: String,
    pub one_thread_ms: f64,
    pub threads_ms: f64,
}

/// [`time_by_op`] of `model`'s batch `x` on one thread and on `threads`, joined by op kind,
/// largest one-thread time first.
fn scaling_by_op(
    model: &QuantizedModel,
    x: &Value,
    reps: usize,
    threads: usize,
) -> Result<Vec<OpScaling>, WorkflowError> {
    let on = |n: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a rayon pool");
        pool.install(|| time_by_op(model, x, reps))
    };
    let one = on(1)?;
    let many: std::collections::BTreeMap<String, f64> = on(threads)?.into_iter().collect();
    Ok(one
        .into_iter()
        .map(|(op, one_thread_ms)| OpScaling {
            threads_ms: many.get(&op).copied().unwrap_or(0.0),
            op,
            one_thread_ms,
        })
        .collect())
}

/// Everything `qlab bench model` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// [`JSON_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// This host's CPU model (`/proc/cpuinfo`), read when the figures were measured.
    pub host_cpu: String,
    pub model: String,
    /// Threads available to calibration.
    pub threads: usize,
    pub samples: usize,
    pub fp32_ms: f64,
    pub engines: Vec<EngineFigure>,
    /// The peer's fp32 latency (`--against`).
    pub fp32_peers: Vec<PeerRatio>,
    /// The peer's calibration time per image, ms (`--against`).
    pub calibration_peers: Vec<PeerRatio>,
    /// The peer file, when `--against` gave one.
    pub against: Option<AgainstInfo>,
    /// What the comparison with the peer file could not do (no entry for this model, another
    /// thread count for calibration).
    pub notes: Vec<String>,
    /// fp32 and int8 (fbgemm) forwards of a batch of [`SCALING_BATCH`] at one thread and at
    /// the process's thread count (empty on one thread).
    pub scaling: Vec<Scaling>,
    /// The int8 (fbgemm) scaling figure by kind of op, when the batch ran whole (empty on one
    /// thread or when it ran in parts of rows).
    pub scaling_by_op: Vec<OpScaling>,
}

/// How a scaling figure's batch ran: in parts of rows, or whole and why.
fn how<M: rows::Forward>(
    verdict: &Result<rows::RowParallel<'_, M>, rows::NotSampleWise>,
) -> String {
    match verdict {
        Ok(_) => ", rows in parallel parts".into(),
        Err(e) => format!(", whole batch ({e})"),
    }
}

fn median_ms(
    reps: usize,
    mut f: impl FnMut() -> Result<(), WorkflowError>,
) -> Result<f64, WorkflowError> {
    f()?; // warm-up: first-use weight packing and allocations
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn first_f32(v: Vec<Value>) -> Vec<f32> {
    match v.into_iter().next() {
        Some(Value::F32(a)) => a.iter().copied().collect(),
        _ => Vec::new(),
    }
}

fn quantized(
    float: &Graph,
    data: &Value,
    engine: Engine,
) -> Result<(QuantizedModel, f64), WorkflowError> {
    let (fused, _) = workflow::fuse_auto(float)?;
    let qconfig = get_default_qconfig(engine.name()).map_err(|source| WorkflowError::QConfig {
        module: "<global>".into(),
        source,
    })?;
    let t = Instant::now();
    let mut prepared = workflow::prepare(&fused, &QConfigMap::global(qconfig))?;
    prepared.calibrate_batch(vec![data.clone()])?;
    let model = workflow::convert(&prepared, Numerics::new(engine, Default::default()))?;
    Ok((model, t.elapsed().as_secs_f64()))
}

/// Measures `float` on `data` (latency on its first sample; float or int64 inputs, as the
/// model's first input takes them).
pub fn run(
    name: &str,
    float: &Graph,
    data: &Dataset,
    reps: usize,
) -> Result<ModelReport, WorkflowError> {
    let one = data.rows(0..data.len().min(1));
    let data_set = data;
    let data = &data.inputs;
    let engines = [Engine::Fbgemm, Engine::Qnnpack];
    let threads = rayon::current_num_threads();
    let models = engines
        .iter()
        .map(|&e| quantized(float, data, e))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    pool.install(|| {
        let fp32_ms = median_ms(reps, || {
            graph::run(float, vec![one.clone()], |_, _| {})?;
            Ok(())
        })?;
        let reference = first_f32(graph::run(float, vec![data.clone()], |_, _| {})?);
        let mut figures: Vec<EngineFigure> = Vec::new();
        for (&engine, (model, calibration_s)) in engines.iter().zip(&models) {
            let latency_ms = median_ms(reps, || {
                model.run(vec![one.clone()], |_, _| {})?;
                Ok(())
            })?;
            let by_op = time_by_op(model, &one, reps)?;
            let out = first_f32(model.run(vec![data.clone()], |_, _| {})?);
            let mut stats = ErrorStats::default();
            stats.add(&reference, &out, |_| 0.0);
            figures.push(EngineFigure {
                engine: engine.name().into(),
                latency_ms,
                calibration_s: *calibration_s,
                sqnr_db: stats.sqnr_db(),
                peers: Vec::new(),
                by_op,
            });
        }
        Ok(ModelReport {
            schema_version: JSON_SCHEMA_VERSION,
            host_cpu: crate::bench_against::host_cpu(),
            model: name.into(),
            threads,
            samples: data.shape()[0],
            fp32_ms,
            engines: figures,
            fp32_peers: Vec::new(),
            calibration_peers: Vec::new(),
            against: None,
            notes: Vec::new(),
            scaling: Vec::new(),
            scaling_by_op: Vec::new(),
        })
    })
    .and_then(|mut report: ModelReport| {
        let batch = data_set.rows(0..data_set.len().min(SCALING_BATCH));
        let n = batch.shape()[0];
        let bits = |v: Vec<Value>| first_f32(v).iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // Each model runs its batch as parallel parts of rows when its ops keep samples apart
        // (`graph::rows`), whole otherwise; the line says which.
        let (_, fp32_rows) = rows::row_parallel(float, vec![batch.clone()])?;
        let fp32 = || match &fp32_rows {
            Ok(rp) => rp.run(vec![batch.clone()]),
            Err(_) => graph::run(float, vec![batch.clone()], |_, _| {}),
        };
        let what = format!("fp32 forward, batch {n}{}", how(&fp32_rows));
        let figure = bench_scaling::measure(&what, threads, reps, fp32, bits)?;
        report.scaling.extend(figure);
        if let Some((model, _)) = models.first() {
            let (_, int8_rows) = rows::row_parallel(model, vec![batch.clone()])?;
            let int8 = || match &int8_rows {
                Ok(rp) => rp.run(vec![batch.clone()]),
                Err(_) => model.run(vec![batch.clone()], |_, _| {}),
            };
            let what = format!(
                "int8 {} forward, batch {n}{}",
                engines[0].name(),
                how(&int8_rows)
            );
            let figure = bench_scaling::measure(&what, threads, reps, int8, bits)?;
            // By op only where the batch ran whole: there each op's own parallelism is the
            // figure's.
            if figure.is_some() && int8_rows.is_err() {
                report.scaling_by_op = scaling_by_op(model, &batch, reps, threads)?;
            }
            report.scaling.extend(figure);
        }
        Ok(report)
    })
}

impl ModelReport {
    /// The fbgemm calibration's time per image, ms (prepare and convert included).
    pub fn calibration_ms_per_image(&self) -> Option<f64> {
        let fb = self.engines.first()?;
        Some(fb.calibration_s * 1e3 / self.samples.max(1) as f64)
    }

    /// Sets the peer figures of `against` for this model beside ours (ratios only when it is
    /// comparable, and for calibration only at the same thread count).
    pub fn compare(&mut self, against: &Against) {
        self.notes.clear();
        if against.model_key(&self.model).is_none() {
            let known: Vec<&str> = against.peer.models_ms.keys().map(String::as_str).collect();
            self.notes.push(format!(
                "{} has no figures for model '{}' (it has: {})",
                against.file.display(),
                self.model,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ));
        }
        self.fp32_peers = against.latency(&self.model, &["fp32"], self.fp32_ms);
        for e in &mut self.engines {
            e.peers = against.latency(&self.model, &[e.engine.as_str()], e.latency_ms);
        }
        self.calibration_peers = match self.calibration_ms_per_image() {
            Some(ms) => against.latency(&self.model, &["calibration_per_image"], ms),
            None => Vec::new(),
        };
        let peer_threads = against.peer.host.threads;
        if !self.calibration_peers.is_empty() && self.threads != peer_threads {
            for p in &mut self.calibration_peers {
                p.ratio = None;
            }
            self.notes.push(format!(
                "calibration ran on {} threads here and {peer_threads} in the peer file: no calibration ratio",
                self.threads
            ));
        }
        self.against = Some(against.info());
    }

    /// The table `qlab bench model` prints.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}: batch 1, one thread; host: {}\n",
            self.model, self.host_cpu
        );
        if let Some(a) = &self.against {
            s.push_str(&a.line());
        }
        s.push_str(&format!(
            "  fp32            {:8.2} ms{}\n",
            self.fp32_ms,
            trailing(&self.fp32_peers)
        ));
        for e in &self.engines {
            s.push_str(&format!(
                "  int8 {:<10} {:8.2} ms   ({:.2}x our fp32; SQNR vs fp32 {:.1} dB){}\n",
                e.engine,
                e.latency_ms,
                self.fp32_ms / e.latency_ms,
                e.sqnr_db,
                trailing(&e.peers),
            ));
            let parts: Vec<String> = e
                .by_op
                .iter()
                .take(6)
                .map(|(k, ms)| format!("{k} {ms:.1}"))
                .collect();
            s.push_str(&format!("    by op (ms): {}\n", parts.join(", ")));
        }
        if let (Some(fb), Some(per_image)) = (self.engines.first(), self.calibration_ms_per_image())
        {
            s.push_str(&format!(
                "  calibration ({} images, fbgemm default qconfig incl. prepare and convert, {} threads): {:.3} s = {:.1} ms/image{}\n",
                self.samples,
                self.threads,
                fb.calibration_s,
                per_image,
                trailing(&self.calibration_peers),
            ));
        }
        for f in &self.scaling {
            s.push_str(&format!("  scaling: {}\n", f.line()));
        }
        if let Some(f) = self
            .scaling
            .last()
            .filter(|_| !self.scaling_by_op.is_empty())
        {
            let parts: Vec<String> = self
                .scaling_by_op
                .iter()
                .take(8)
                .map(|o| {
                    format!(
                        "{} {:.1} -> {:.1} ({:.2}x)",
                        o.op,
                        o.one_thread_ms,
                        o.threads_ms,
                        o.one_thread_ms / o.threads_ms
                    )
                })
                .collect();
            s.push_str(&format!(
                "    by op (ms, 1 -> {} threads): {}\n",
                f.threads,
                parts.join(", ")
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod against_tests;
