//! The QAT forward and training loop on the float graph's training tape.
//!
//! Fake-quants plug into the tape as [`TrainHooks`]: weight fake-quants on Conv / Linear
//! weights, activation fake-quants on the values `prepare_qat` chose, both with their
//! straight-through masks. A Conv+BN group follows NUMERICS §5.3: the weight hook fake-quantizes
//! `W·k` (`k = γ / sqrt(running_var + eps)`, running statistics before the update), the conv
//! runs without its bias, the conv's output hook computes `y0 / k + b`, and the BatchNorm node
//! after it runs in train mode. The gradients the tape cannot see (through `k` into γ, and the
//! lifted conv bias) are added after the backward, as PyTorch's autograd computes them.

use super::qat::{QatError, QatModel};
use crate::fake_quant::{FakeQuantize, grad_mask};
use crate::graph::train::{
    Masked, Mode, Optimizer, Rng, TrainHooks, backward, cross_entropy, forward_train,
};
use crate::graph::{GraphError, Op, Value};
use ndarray::{Array1, ArrayD, Axis, IxDyn};
use std::collections::{BTreeMap, HashMap};

/// One Conv+BN group's per-step constants.
struct Scale {
    bn: String,
    /// The conv's output value.
    output: String,
    /// `sqrt(running_var + eps)` and `k = γ / std`, per output channel.
    std: Array1<f32>,
    k: Array1<f32>,
    /// The conv bias, lifted out of the conv for the step (`None` if it has none).
    bias: Option<Array1<f32>>,
}

/// `v` shaped to broadcast along `axis` of an `ndim`-d tensor.
fn channel_view(v: &Array1<f32>, ndim: usize, axis: usize) -> ArrayD<f32> {
    let mut shape = vec![1; ndim];
    shape[axis] = v.len();
    v.clone()
        .into_shape_with_order(IxDyn(&shape))
        .expect("channel vector")
}

/// The fake-quants and Conv+BN constants one forward uses; the first fake-quant error is kept
/// (hooks cannot fail) and returned after the forward.
struct Hooks<'m> {
    weights: &'m mut BTreeMap<String, FakeQuantize>,
    activations: Vec<(&'m mut FakeQuantize, &'m str)>,
    /// Activation fake-quant index by the node producing its value.
    by_node: HashMap<String, usize>,
    scales: &'m HashMap<String, Scale>,
    /// Raw conv outputs `y0` of Conv+BN groups, for the gradient into γ.
    y0: HashMap<String, ArrayD<f32>>,
    frozen: Vec<String>,
    error: Option<QatError>,
}

fn run_fake_quant(
    module: &str,
    fq: &mut FakeQuantize,
    x: &ArrayD<f32>,
) -> Result<Masked, QatError> {
    let x = x.as_standard_layout();
    let err = |source| QatError::FakeQuant {
        module: module.into(),
        source,
    };
    let y = fq
        .forward(x.as_slice().expect("standard"), x.shape())
        .map_err(err)?;
    let mask = grad_mask(fq.mask().expect("mask after a forward"));
    let shape = IxDyn(x.shape());
    Ok(Masked {
        value: ArrayD::from_shape_vec(shape.clone(), y).expect("same size"),
        mask: Some(ArrayD::from_shape_vec(shape, mask).expect("same size")),
    })
}

impl Hooks<'_> {
    fn keep(&mut self, r: Result<Masked, QatError>) -> Option<Masked> {
        match r {
            Ok(m) => Some(m),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
}

impl TrainHooks for Hooks<'_> {
    fn weight(&mut self, node: &str, weight: &ArrayD<f32>) -> Option<Masked> {
        let fq = self.weights.get_mut(node)?;
        let r = match self.scales.get(node) {
            // The mask stays the plain STE mask; the factor k of dW is applied after backward.
            Some(s) => run_fake_quant(node, fq, &(weight * &channel_view(&s.k, weight.ndim(), 0))),
            None => run_fake_quant(node, fq, weight),
        };
        self.keep(r)
    }

    fn output(&mut self, node: &str, value: &ArrayD<f32>) -> Option<Masked> {
        if let Some(s) = self.scales.get(node) {
            self.y0.insert(node.into(), value.clone());
            let k = channel_view(&s.k, value.ndim(), 1);
            let mut y1 = value / &k;
            if let Some(b) = &s.bias {
                y1 += &channel_view(b, value.ndim(), 1);
            }
            let inv = k.mapv(|k| 1.0 / k);
            return Some(Masked {
                value: y1,
                mask: Some(inv.broadcast(value.raw_dim()).expect("channels").to_owned()),
            });
        }
        let &i = self.by_node.get(node)?;
        let (fq, owner) = &mut self.activations[i];
        let owner = owner.to_string();
        let r = run_fake_quant(&owner, fq, value);
        self.keep(r)
    }

    fn freeze_batch_norm(&mut self, node: &str) -> bool {
        self.frozen.iter().any(|n| n == node)
    }
}

/// Parameter gradients by graph parameter name.
type ParamGrads = BTreeMap<String, ArrayD<f32>>;

/// One epoch's training data: inputs `x` (samples on axis 0), one label per sample, and the
/// mini-batch size.
#[derive(Debug, Clone, Copy)]
pub struct Epoch<'a> {
    pub x: &'a ArrayD<f32>,
    pub labels: &'a [i64],
    pub batch_size: usize,
}

/// What one QAT step produced.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub loss: f32,
    /// The forward output before the update.
    pub logits: ArrayD<f32>,
}

impl QatModel {
    /// Per-step Conv+BN constants from the current parameters, with the conv biases lifted out.
    fn lift_scales(&mut self) -> HashMap<String, Scale> {
        let mut out = HashMap::new();
        for cb in self.conv_bn.clone() {
            let Some(bn) = self.graph.nodes.iter().find(|n| n.name == cb.bn) else {
                continue;
            };
            let Op::BatchNorm(p) = &bn.op else { continue };
            let std = p.running_var.mapv(|v| (v + p.eps).sqrt());
            let k = &p.weight / &std;
            let Some(conv) = self.graph.nodes.iter_mut().find(|n| n.name == cb.conv) else {
                continue;
            };
            let output = conv.outputs[0].clone();
            let Op::Conv(c) = &mut conv.op else { continue };
            let bias = c.bias.take();
            out.insert(
                cb.conv.clone(),
                Scale {
                    bn: cb.bn,
                    output,
                    std,
                    k,
                    bias,
                },
            );
        }
        out
    }

    fn restore_biases(&mut self, scales: &mut HashMap<String, Scale>) {
        for node in &mut self.graph.nodes {
            if let (Some(s), Op::Conv(c)) = (scales.get_mut(&node.name), &mut node.op) {
                c.bias = s.bias.take();
            }
        }
    }

    /// One forward of `x` in the current train / eval mode (fake-quants and observers run as
    /// their flags say, BN running statistics update in train mode). With `labels`, also the
    /// loss, backward and optimizer step.
    fn step(
        &mut self,
        x: ArrayD<f32>,
        labels: Option<(&[i64], &mut dyn Optimizer)>,
    ) -> Result<StepResult, QatError> {
        let (labels, optimizer) = labels.unzip();
        let mut scales = self.lift_scales();
        let r = self.step_lifted(x, labels, &scales);
        self.restore_biases(&mut scales);
        let (result, grads) = r?;
        if let (Some(grads), Some(opt)) = (grads, optimizer) {
            opt.step(&mut self.graph, &grads)?;
        }
        Ok(result)
    }

    /// [`QatModel::step`] with the conv biases lifted into `scales`: the forward, and with
    /// `labels` the parameter gradients.
    fn step_lifted(
        &mut self,
        x: ArrayD<f32>,
        labels: Option<&[i64]>,
        scales: &HashMap<String, Scale>,
    ) -> Result<(StepResult, Option<ParamGrads>), QatError> {
        let mode = if self.training {
            Mode::Train
        } else {
            Mode::Eval
        };
        let by_value: HashMap<&str, usize> = self
            .activations
            .iter()
            .enumerate()
            .map(|(i, a)| (a.value.as_str(), i))
            .collect();
        let by_node = self
            .graph
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), *by_value.get(n.outputs.first()?.as_str())?)))
            .collect();
        let frozen = if self.bn_frozen {
            self.conv_bn.iter().map(|c| c.bn.clone()).collect()
        } else {
            Vec::new()
        };
        let mut hooks = Hooks {
            weights: &mut self.weights,
            activations: self
                .activations
                .iter_mut()
                .map(|a| (&mut a.fake_quant, a.owner.as_str()))
                .collect(),
            by_node,
            scales,
            y0: HashMap::new(),
            frozen: frozen.clone(),
            error: None,
        };
        let (outputs, tape) =
            forward_train(&mut self.graph, vec![Value::F32(x)], mode, &mut hooks)?;
        if let Some(e) = hooks.error {
            return Err(e);
        }
        let y0 = hooks.y0;
        if mode == Mode::Train {
            for (bn, n) in &mut self.num_batches_tracked {
                if !frozen.contains(bn) {
                    *n += 1;
                }
            }
        }
        let logits = outputs
            .first()
            .ok_or_else(|| GraphError::Invalid {
                node: "<qat>".into(),
                detail: "the model has no output".into(),
            })?
            .f32("<logits>")?
            .clone();
        let Some(labels) = labels else {
            return Ok((StepResult { loss: 0.0, logits }, None));
        };
        let (loss, dlogits) = cross_entropy(&logits, labels)?;
        let mut seeds = vec![dlogits];
        seeds.extend(outputs[1..].iter().map(|o| ArrayD::zeros(IxDyn(o.shape()))));
        let grads = backward(&self.graph, &tape, seeds)?;
        let mut params = grads.params;
        for (conv, s) in scales {
            let (Some(dy1), Some(y0)) = (grads.values.get(&s.output), y0.get(conv)) else {
                continue;
            };
            let Some(Op::Conv(c)) = self
                .graph
                .nodes
                .iter()
                .find(|n| &n.name == conv)
                .map(|n| &n.op)
            else {
                continue;
            };
            let key = format!("{conv}.weight");
            let Some(gw) = params.get_mut(&key) else {
                continue;
            };
            // d(W·k)/dk through the weight, then d(y0/k)/dk through the output.
            let mut dk: Array1<f32> = (0..s.k.len())
                .map(|o| (&gw.index_axis(Axis(0), o) * &c.weight.index_axis(Axis(0), o)).sum())
                .collect();
            *gw *= &channel_view(&s.k, gw.ndim(), 0);
            let kb = channel_view(&s.k, y0.ndim(), 1);
            let through_out = -(dy1 * &(&(y0 / &kb) / &kb));
            for (o, d) in dk.iter_mut().enumerate() {
                *d += through_out.index_axis(Axis(1), o).sum();
            }
            let dgamma = &dk / &s.std;
            let gkey = format!("{}.weight", s.bn);
            if let Some(g) = params.get_mut(&gkey) {
                *g += &dgamma.into_dyn();
            }
            if s.bias.is_some() {
                let db: Array1<f32> = (0..s.k.len())
                    .map(|o| dy1.index_axis(Axis(1), o).sum())
                    .collect();
                params.insert(format!("{conv}.bias"), db.into_dyn());
            }
        }
        Ok((StepResult { loss, logits }, Some(params)))
    }

    /// PyTorch's training step on one batch: zero_grad, forward (train mode), cross-entropy
    /// (mean), backward, `optimizer.step()`. Returns the loss and the logits before the update.
    pub fn train_step(
        &mut self,
        x: ArrayD<f32>,
        labels: &[i64],
        optimizer: &mut dyn Optimizer,
    ) -> Result<StepResult, QatError> {
        self.step(x, Some((labels, optimizer)))
    }

    /// A forward without training (fake-quants and enabled observers still run, as in
    /// PyTorch); returns the logits.
    pub fn forward(&mut self, x: ArrayD<f32>) -> Result<ArrayD<f32>, QatError> {
        Ok(self.step(x, None)?.logits)
    }

    /// One epoch over `data` in seeded shuffled mini-batches; returns the mean loss.
    pub fn train_epoch(
        &mut self,
        data: Epoch,
        rng: &mut Rng,
        optimizer: &mut dyn Optimizer,
    ) -> Result<f32, QatError> {
        let loss = self.train_epoch_until(data, rng, optimizer, &mut || false)?;
        Ok(loss.expect("never stopped"))
    }

    /// [`QatModel::train_epoch`], asking `stop` before every mini-batch: `None` when it said to
    /// stop (the model then holds a partly trained state the caller should discard).
    pub fn train_epoch_until(
        &mut self,
        Epoch {
            x,
            labels,
            batch_size,
        }: Epoch,
        rng: &mut Rng,
        optimizer: &mut dyn Optimizer,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Option<f32>, QatError> {
        let n = labels.len();
        if x.ndim() == 0 || x.shape()[0] != n || n == 0 || batch_size == 0 {
            return Err(GraphError::BadInput {
                input: "<training data>".into(),
                detail: format!(
                    "{n} labels for inputs {:?}, batch size {batch_size}",
                    x.shape()
                ),
            }
            .into());
        }
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut total = 0.0f32;
        for batch in order.chunks(batch_size) {
            if stop() {
                return Ok(None);
            }
            let xb = x.select(Axis(0), batch);
            let yb: Vec<i64> = batch.iter().map(|&i| labels[i]).collect();
            total += self.train_step(xb, &yb, optimizer)?.loss * batch.len() as f32;
        }
        Ok(Some(total / n as f32))
    }
}
