//! Empirical bias correction (Nagel et al. 2019, §4.2), as PyTorch's eager
//! `torch.ao.quantization._correct_bias.bias_correction` does it.
//!
//! Quantizing a layer's weights shifts the mean of its output; the shift is measured and
//! subtracted from the bias. For each target module in graph order, the data runs through the
//! converted model; the module's float twin runs on the same (dequantized) input, as
//! PyTorch's numeric-suite shadow does; the per-channel mean of quantized − float output over
//! every sample and position is the expected error, taken off that module's bias before the
//! next module is measured (so later modules see the earlier corrections). Targets are
//! PyTorch's: `nnq.Conv2d` and `nnq.Linear` with a bias — fused ConvReLU / LinearReLU modules
//! are other types and are left alone, as there (their output is clipped, so its mean is not
//! the shift). PyTorch averages whole output tensors across batches, which needs equal batch
//! shapes; here the sums are per channel, so the last batch may be smaller. Float sums make the
//! new biases PyTorch's to within rounding, not bit for bit.

use super::{QOp, QValue, QuantizedModel, WorkflowError};
use crate::graph::{self, Value};
use ndarray::{ArrayD, Axis, IxDyn};

/// One corrected module: the shift taken off each output channel's bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrected {
    pub layer: String,
    pub shift: Vec<f32>,
}

impl Corrected {
    /// The largest shift in magnitude.
    pub fn max_abs_shift(&self) -> f32 {
        self.shift.iter().fold(0.0, |m, s| m.max(s.abs()))
    }
}

/// Corrects the biases of `model`'s target modules on `batches` (each one model input).
pub fn correct_bias(
    model: &mut QuantizedModel,
    batches: &[Value],
) -> Result<Vec<Corrected>, WorkflowError> {
    let targets: Vec<usize> = (0..model.ops.len())
        .filter(|&i| is_target(&model.ops[i]))
        .collect();
    let mut corrected = Vec::with_capacity(targets.len());
    for i in targets {
        let node = model.graph.nodes[i].clone();
        let (input, output) = (node.inputs[0].clone(), node.outputs[0].clone());
        let mut sums: Vec<f64> = Vec::new();
        let mut count = 0usize;
        for x in batches {
            let (mut x_q, mut y_q) = (None, None);
            model.run_with_stats(vec![x.clone()], |n, outs, _| {
                for (name, v) in n.outputs.iter().zip(outs) {
                    if *name == input {
                        x_q = Some(v.clone());
                    }
                    if *name == output {
                        y_q = Some(v.clone());
                    }
                }
            })?;
            let (Some(QValue::Quant(x_q)), Some(QValue::Quant(y_q))) = (x_q, y_q) else {
                // Its input came in float (a float island before it): not a quantized module's
                // measurement; nothing to correct.
                break;
            };
            let x_f = Value::F32(dequantized(&x_q)?);
            let y_f = graph::ops::eval(&node, &[Some(&x_f)])?;
            let Some(Value::F32(y_f)) = y_f.into_iter().next() else {
                break;
            };
            let y_q = dequantized(&y_q)?;
            // PyTorch means over every dim but 1: the channel of a conv's NCHW output, the
            // feature of a 2-D Linear output.
            if y_q.ndim() < 2 || y_q.shape() != y_f.shape() {
                break;
            }
            let channels = y_q.shape()[1];
            sums.resize(channels, 0.0);
            for (c, sum) in sums.iter_mut().enumerate() {
                let (q, f) = (y_q.index_axis(Axis(1), c), y_f.index_axis(Axis(1), c));
                *sum += q
                    .iter()
                    .zip(f.iter())
                    .map(|(&a, &b)| f64::from(a - b))
                    .sum::<f64>();
            }
            count += y_q.len() / channels;
        }
        if count == 0 {
            continue;
        }
        let shift: Vec<f32> = sums.iter().map(|s| (s / count as f64) as f32).collect();
        let bias = match &mut model.ops[i] {
            QOp::Conv(c) => c.bias.as_mut(),
            QOp::Linear(l) => l.bias.as_mut(),
            _ => None,
        };
        if let Some(bias) = bias.filter(|b| b.len() == shift.len()) {
            for (b, s) in bias.iter_mut().zip(&shift) {
                *b -= s;
            }
            corrected.push(Corrected {
                layer: node.name.clone(),
                shift,
            });
        }
    }
    Ok(corrected)
}

/// PyTorch's targets: an unfused quantized Conv2d or Linear with a bias.
fn is_target(op: &QOp) -> bool {
    match op {
        QOp::Conv(c) => !c.relu && c.bias.is_some() && c.params.stride.len() == 2,
        QOp::Linear(l) => !l.relu && l.bias.is_some(),
        _ => false,
    }
}

fn dequantized(q: &crate::tensor::QTensor) -> Result<ArrayD<f32>, WorkflowError> {
    ArrayD::from_shape_vec(IxDyn(q.shape()), q.dequantize()).map_err(|e| {
        WorkflowError::Graph(crate::graph::GraphError::BadInput {
            input: "quantized value".into(),
            detail: e.to_string(),
        })
    })
}
