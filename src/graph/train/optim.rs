//! Optimizers with PyTorch's update formulas (`torch.optim.SGD` and `torch.optim.Adam`,
//! single-tensor implementation, L2 weight decay added to the gradient), applied in place to a
//! graph's parameters by name.

use super::params::parameters_mut;
use crate::graph::{Graph, GraphError};
use ndarray::{ArrayD, ArrayViewMutD, Zip};
use std::collections::{BTreeMap, HashMap};

/// Updates a graph's parameters from their gradients.
pub trait Optimizer {
    /// One step; parameters without a gradient are left alone.
    fn step(
        &mut self,
        graph: &mut Graph,
        grads: &BTreeMap<String, ArrayD<f32>>,
    ) -> Result<(), GraphError>;
}

/// Visits every parameter that has a gradient, after checking the shapes agree.
fn for_each_param(
    graph: &mut Graph,
    grads: &BTreeMap<String, ArrayD<f32>>,
    mut f: impl FnMut(&str, ArrayViewMutD<'_, f32>, &ArrayD<f32>),
) -> Result<(), GraphError> {
    for (name, p) in parameters_mut(graph) {
        let Some(g) = grads.get(&name) else { continue };
        if g.shape() != p.shape() {
            return Err(GraphError::Shape {
                node: name,
                detail: format!(
                    "gradient {:?} for a parameter of shape {:?}",
                    g.shape(),
                    p.shape()
                ),
            });
        }
        f(&name, p, g);
    }
    Ok(())
}

/// SGD (dampening 0):
/// `g = grad + wd·p`; with momentum `buf = g` on the first step, then `buf = μ·buf + g`;
/// `g = buf` (or `g + μ·buf` with Nesterov); `p = p - lr·g`.
#[derive(Debug, Clone)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    buffers: HashMap<String, ArrayD<f32>>,
}

impl Sgd {
    pub fn new(lr: f32, momentum: f32, weight_decay: f32, nesterov: bool) -> Self {
        Sgd {
            lr,
            momentum,
            weight_decay,
            nesterov,
            buffers: HashMap::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(
        &mut self,
        graph: &mut Graph,
        grads: &BTreeMap<String, ArrayD<f32>>,
    ) -> Result<(), GraphError> {
        let Sgd {
            lr,
            momentum,
            weight_decay,
            nesterov,
            buffers,
        } = self;
        for_each_param(graph, grads, |name, mut p, grad| {
            let mut g = grad.clone();
            if *weight_decay != 0.0 {
                Zip::from(&mut g)
                    .and(&p)
                    .for_each(|g, &w| *g += *weight_decay * w);
            }
            if *momentum != 0.0 {
                let buf = match buffers.get_mut(name) {
                    Some(buf) => {
                        Zip::from(&mut *buf)
                            .and(&g)
                            .for_each(|b, &g| *b = *momentum * *b + g);
                        buf
                    }
                    None => buffers.entry(name.into()).or_insert_with(|| g.clone()),
                };
                if *nesterov {
                    Zip::from(&mut g)
                        .and(&*buf)
                        .for_each(|g, &b| *g += *momentum * b);
                } else {
                    g.assign(buf);
                }
            }
            Zip::from(&mut p).and(&g).for_each(|w, &g| *w -= *lr * g);
        })
    }
}

/// Adam (no AMSGrad), step t from 1:
/// `g = grad + wd·p`; `m = m + (1-β1)·(g - m)` (PyTorch's lerp); `v = β2·v + (1-β2)·g·g`;
/// `p = p - (lr / (1-β1ᵗ)) · m / (sqrt(v) / sqrt(1-β2ᵗ) + eps)`.
/// Hyperparameters are f64 like the Python floats PyTorch receives: `1-β1`, `1-β2` are formed
/// in f64 and rounded to f32, the bias corrections and the step size stay f64 until the final
/// rounding, as in `torch.optim.Adam`'s single-tensor path.
#[derive(Debug, Clone)]
pub struct Adam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    state: HashMap<String, (i32, ArrayD<f32>, ArrayD<f32>)>,
}

impl Adam {
    pub fn new(lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> Self {
        Adam {
            lr,
            betas,
            eps,
            weight_decay,
            state: HashMap::new(),
        }
    }
}

impl Optimizer for Adam {
    fn step(
        &mut self,
        graph: &mut Graph,
        grads: &BTreeMap<String, ArrayD<f32>>,
    ) -> Result<(), GraphError> {
        let (b1, b2) = self.betas;
        let (w1, w2, beta2) = ((1.0 - b1) as f32, (1.0 - b2) as f32, b2 as f32);
        let (eps, wd, lr) = (self.eps as f32, self.weight_decay as f32, self.lr);
        let state = &mut self.state;
        for_each_param(graph, grads, |name, mut p, grad| {
            let mut g = grad.clone();
            if wd != 0.0 {
                Zip::from(&mut g).and(&p).for_each(|g, &w| *g += wd * w);
            }
            let (t, m, v) = state
                .entry(name.into())
                .or_insert_with(|| (0, ArrayD::zeros(g.raw_dim()), ArrayD::zeros(g.raw_dim())));
            *t += 1;
            Zip::from(&mut *m)
                .and(&mut *v)
                .and(&g)
                .for_each(|m, v, &g| {
                    *m += w1 * (g - *m);
                    *v = *v * beta2 + w2 * g * g;
                });
            let bc1 = 1.0 - b1.powi(*t);
            let bc2 = 1.0 - b2.powi(*t);
            let step = (lr / bc1) as f32;
            let bc2_sqrt = bc2.sqrt() as f32;
            Zip::from(&mut p)
                .and(&*m)
                .and(&*v)
                .for_each(|w, &m, &v| *w -= step * (m / (v.sqrt() / bc2_sqrt + eps)));
        })
    }
}
