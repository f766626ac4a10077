//! `qlab bench model PATH`: whole-model figures — batch-1 fp32 latency, int8 latency per
//! engine after fuse + calibrate + convert with the engine's default qconfig, the calibration
//! time, and the int8 output's SQNR against fp32 — beside PyTorch's figures from
//! `shared/bench/ANCHORS.md` where the model is one of its rows.
//!
//! Latencies are medians over repetitions on one thread (a one-thread rayon pool), the
//! condition of the PyTorch anchors; calibration runs on every core, as a user's would.

use crate::analysis::ErrorStats;
use crate::engine::{Engine, Numerics};
use crate::graph::{self, Graph, Value};
use crate::import::Dataset;
use crate::qconfig::presets::get_default_qconfig;
use crate::workflow::{self, QConfigMap, QOp, QuantizedModel, WorkflowError};
use serde::Serialize;
use std::time::Instant;

/// PyTorch's batch-1 figures for one model (ANCHORS.md, "Whole models").
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ModelAnchor {
    pub model: &'static str,
    pub fp32_ms: f64,
    pub fbgemm_ms: f64,
    pub qnnpack_ms: f64,
    /// Seconds to calibrate 32 images with the fbgemm default qconfig.
    pub calibration_32_s: f64,
}

pub const MODEL_ANCHORS: [ModelAnchor; 3] = [
    ModelAnchor {
        model: "mobilenet_v2",
        fp32_ms: 40.0,
        fbgemm_ms: 9.3,
        qnnpack_ms: 35.8,
        calibration_32_s: 4.1,
    },
    ModelAnchor {
        model: "resnet18",
        fp32_ms: 51.5,
        fbgemm_ms: 19.4,
        qnnpack_ms: 145.5,
        calibration_32_s: 2.9,
    },
    ModelAnchor {
        model: "shufflenet_v2_x0_5",
        fp32_ms: 23.4,
        fbgemm_ms: 12.3,
        qnnpack_ms: 9.0,
        calibration_32_s: 1.1,
    },
];

/// One engine's int8 figures.
#[derive(Debug, Clone, Serialize)]
pub struct EngineFigure {
    pub engine: String,
    pub latency_ms: f64,
    pub calibration_s: f64,
    /// SQNR (dB) of the int8 output against fp32 on the data.
    pub sqnr_db: f64,
    /// PyTorch's latency for this engine, when anchored.
    pub pytorch_ms: Option<f64>,
    /// Batch-1 time per kind of op (`conv depthwise`, `conv 1x1`, `qadd`, ...), ms, median over
    /// the repetitions, largest first: where the latency goes.
    pub by_op: Vec<(String, f64)>,
}

/// The kind of op a node's time is booked under.
fn op_label(op: &QOp) -> String {
    match op {
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
            let label = op_label(&model.ops[index[node.name.as_str()]]);
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

/// Everything `qlab bench model` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub model: String,
    /// Threads available to calibration.
    pub threads: usize,
    pub samples: usize,
    pub fp32_ms: f64,
    pub engines: Vec<EngineFigure>,
    pub anchor: Option<ModelAnchor>,
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
        let anchor = MODEL_ANCHORS
            .iter()
            .copied()
            .find(|a| name.starts_with(a.model));
        let mut figures: Vec<EngineFigure> = Vec::new();
        for (&engine, (model, calibration_s)) in engines.iter().zip(models) {
            let latency_ms = median_ms(reps, || {
                model.run(vec![one.clone()], |_, _| {})?;
                Ok(())
            })?;
            let by_op = time_by_op(&model, &one, reps)?;
            let out = first_f32(model.run(vec![data.clone()], |_, _| {})?);
            let mut stats = ErrorStats::default();
            stats.add(&reference, &out, |_| 0.0);
            figures.push(EngineFigure {
                engine: engine.name().into(),
                latency_ms,
                calibration_s,
                sqnr_db: stats.sqnr_db(),
                pytorch_ms: anchor.map(|a| match engine {
                    Engine::Qnnpack => a.qnnpack_ms,
                    _ => a.fbgemm_ms,
                }),
                by_op,
            });
        }
        Ok(ModelReport {
            model: name.into(),
            threads,
            samples: data.shape()[0],
            fp32_ms,
            engines: figures,
            anchor,
        })
    })
}

impl ModelReport {
    /// The table `qlab bench model` prints.
    pub fn render(&self) -> String {
        let ratio = |ours: f64, theirs: Option<f64>| {
            theirs.map_or_else(|| "-".into(), |t| format!("{:.2}x", t / ours))
        };
        let mut s = format!(
            "{}: batch 1, one thread\n  fp32            {:8.2} ms   (PyTorch {}; speedup vs PyTorch {})\n",
            self.model,
            self.fp32_ms,
            self.anchor
                .map_or("-".into(), |a| format!("{} ms", a.fp32_ms)),
            ratio(self.fp32_ms, self.anchor.map(|a| a.fp32_ms)),
        );
        for e in &self.engines {
            s.push_str(&format!(
                "  int8 {:<10} {:8.2} ms   ({:.2}x our fp32; PyTorch {}; speedup vs PyTorch {}); SQNR vs fp32 {:.1} dB\n",
                e.engine,
                e.latency_ms,
                self.fp32_ms / e.latency_ms,
                e.pytorch_ms.map_or("-".into(), |p| format!("{p} ms")),
                ratio(e.latency_ms, e.pytorch_ms),
                e.sqnr_db,
            ));
            let parts: Vec<String> = e
                .by_op
                .iter()
                .take(6)
                .map(|(k, ms)| format!("{k} {ms:.1}"))
                .collect();
            s.push_str(&format!("    by op (ms): {}\n", parts.join(", ")));
        }
        if let Some(fb) = self.engines.first() {
            let per_image = fb.calibration_s / self.samples.max(1) as f64;
            s.push_str(&format!(
                "  calibration ({} images, fbgemm default qconfig incl. prepare and convert, {} threads): {:.3} s = {:.1} ms/image{}\n",
                self.samples,
                self.threads,
                fb.calibration_s,
                per_image * 1e3,
                self.anchor.map_or(String::new(), |a| format!(
                    " (PyTorch {:.1} ms/image: {:.1}x faster)",
                    a.calibration_32_s / 32.0 * 1e3,
                    a.calibration_32_s / 32.0 / per_image
                )),
            ));
        }
        s
    }
}
