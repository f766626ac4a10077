//! Shared by the fuzz targets: what to do with a model a mutated file produced. Importing is only
//! half the door — a model that imports must also run, fuse, calibrate, convert and run
//! quantized without a panic or an unbounded allocation, because that is what a user does next.

use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::graph::{Graph, Value, run};
use qlab::workflow::{self, QConfigMap, QuantizedModel};

/// The largest input the targets build (elements), so each run stays fast.
const MAX_INPUT: usize = 1 << 14;

/// One zero input per graph input, batch 1 where the batch is free; `None` when an input is
/// larger than [`MAX_INPUT`].
fn zero_inputs(graph: &Graph) -> Option<Vec<Value>> {
    graph
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i.shape.iter().map(|d| d.unwrap_or(1)).collect();
            let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
            (n <= MAX_INPUT).then(|| Value::F32(ndarray::ArrayD::zeros(shape)))
        })
        .collect()
}

/// Runs the float model, then fuses, prepares with fbgemm's default qconfig, calibrates on the
/// same input, converts and runs the int8 model. Errors are fine; panics are the findings.
pub fn exercise(graph: &Graph) {
    let Some(inputs) = zero_inputs(graph) else {
        return;
    };
    if run(graph, inputs.clone(), |_, _| {}).is_err() {
        return;
    }
    if let Some((_, model)) = converted(graph) {
        let _ = model.run(inputs, |_, _| {});
    }
}

/// `graph` fused, and converted as [`exercise`] converts it (fbgemm's default qconfig,
/// calibrated on zero inputs); `None` where any step refuses.
pub fn converted(graph: &Graph) -> Option<(Graph, QuantizedModel)> {
    let inputs = zero_inputs(graph)?;
    let (fused, _) = workflow::fuse_auto(graph).ok()?;
    let qconfig = qlab::qconfig::presets::get_default_qconfig("fbgemm").ok()?;
    let mut prepared = workflow::prepare(&fused, &QConfigMap::global(qconfig)).ok()?;
    prepared.calibrate_batch(inputs).ok()?;
    let model =
        workflow::convert(&prepared, Numerics::new(Engine::Fbgemm, HostProfile::Vnni)).ok()?;
    Some((fused, model))
}

/// Runs a converted model a mutated native file produced, on zero inputs.
pub fn exercise_quantized(model: &QuantizedModel) {
    if let Some(inputs) = zero_inputs(&model.graph) {
        let _ = model.run(inputs, |_, _| {});
    }
}
