//! `nn.quantized.dynamic.LSTM`: every gate matrix (`weight_ih`, `weight_hh` of each layer and
//! direction) is a dynamic Linear with its bias inside, converted as a whole (all four gates share
//! one scale, NUMERICS §7.2).
//!
//! The input projection of a layer and direction runs once over all T·B rows, so the whole
//! sequence shares one set of activation qparams; the hidden projection is quantized per step
//! from `h_{t-1}` (modelled this way PyTorch matches to ~6e-8; per-step input quantization would
//! be off by ~7e-3). Gates `hh + ih` in f32, PyTorch order i, f, g, o:
//! `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`. Transcendentals are the platform's f32
//! functions, so results agree with PyTorch to float tolerance, not bit for bit.

use super::linear::DynamicLinear;
use super::weight::DynamicWeightDtype;
use crate::engine::Engine;
use crate::qnn::QnnError;
use ndarray::{ArrayD, IxDyn};

const OP: &str = "lstm_dynamic";

/// The module's hyper-parameters (`nn.LSTM` constructor arguments; no projection, no dropout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmConfig {
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    /// Input and output are `[B, T, ·]` instead of `[T, B, ·]` (states stay `[L·D, B, H]`).
    pub batch_first: bool,
}

impl LstmConfig {
    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        1 + self.bidirectional as usize
    }
}

/// The float parameters of one layer and direction, in PyTorch's layout and gate order.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmFloatParams {
    /// `[4H, in]` (`in` = input_size for layer 0, H·directions above).
    pub w_ih: ArrayD<f32>,
    /// `[4H, H]`.
    pub w_hh: ArrayD<f32>,
    pub b_ih: Option<Vec<f32>>,
    pub b_hh: Option<Vec<f32>>,
}

/// One layer and direction after conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicLstmCell {
    pub ih: DynamicLinear,
    pub hh: DynamicLinear,
}

/// A dynamically quantized LSTM.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicLstm {
    pub config: LstmConfig,
    /// Index `layer · directions + direction`, as PyTorch orders `_l{k}` / `_l{k}_reverse`.
    pub cells: Vec<DynamicLstmCell>,
}

/// `output [T, B, D·H]` (or `[B, T, D·H]` when batch_first), `h_n` and `c_n` `[L·D, B, H]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicLstmOutput {
    pub output: ArrayD<f32>,
    pub h_n: ArrayD<f32>,
    pub c_n: ArrayD<f32>,
}

fn shape_error(detail: String) -> QnnError {
    QnnError::Shape { op: OP, detail }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// An initial state as a flat `[L·D, B, H]` buffer: the given one, or zeros.
fn initial_state(
    what: &str,
    s: Option<&ArrayD<f32>>,
    shape: [usize; 3],
) -> Result<Vec<f32>, QnnError> {
    match s {
        None => Ok(vec![0.0; shape.iter().product()]),
        Some(a) if a.shape() == shape => Ok(a.as_standard_layout().iter().copied().collect()),
        Some(a) => Err(shape_error(format!(
            "{what} must be {shape:?}, got {:?}",
            a.shape()
        ))),
    }
}

impl DynamicLstm {
    /// Converts `params` (one per layer and direction, in `cells` order) to `dtype`.
    pub fn new(
        config: LstmConfig,
        params: &[LstmFloatParams],
        dtype: DynamicWeightDtype,
    ) -> Result<DynamicLstm, QnnError> {
        let dirs = config.directions();
        if params.len() != config.num_layers * dirs {
            return Err(shape_error(format!(
                "{} parameter sets for {} layers × {dirs} directions",
                params.len(),
                config.num_layers
            )));
        }
        let h = config.hidden_size;
        let cells = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let in_size = if i < dirs {
                    config.input_size
                } else {
                    h * dirs
                };
                for (name, w, cols) in [("weight_ih", &p.w_ih, in_size), ("weight_hh", &p.w_hh, h)]
                {
                    if w.shape() != [4 * h, cols] {
                        return Err(shape_error(format!(
                            "{name} of cell {i} must be [{}, {cols}], got {:?}",
                            4 * h,
                            w.shape()
                        )));
                    }
                }
                Ok(DynamicLstmCell {
                    ih: DynamicLinear::new(&p.w_ih, p.b_ih.clone(), dtype, false)?,
                    hh: DynamicLinear::new(&p.w_hh, p.b_hh.clone(), dtype, false)?,
                })
            })
            .collect::<Result<_, QnnError>>()?;
        Ok(DynamicLstm { config, cells })
    }

    /// Runs on `x` with optional initial states `h0`, `c0` `[L·D, B, H]` (zeros when absent).
    ///
    /// An empty sequence (T = 0) is rejected; an empty batch gives empty outputs.
    pub fn forward(
        &self,
        x: &ArrayD<f32>,
        h0: Option<&ArrayD<f32>>,
        c0: Option<&ArrayD<f32>>,
        engine: Engine,
    ) -> Result<DynamicLstmOutput, QnnError> {
        let cfg = self.config;
        let &[d0, d1, i_len] = x.shape() else {
            return Err(shape_error(format!(
                "input must be 3-D, got {:?}",
                x.shape()
            )));
        };
        if i_len != cfg.input_size {
            return Err(shape_error(format!(
                "input has {i_len} features, the LSTM expects {}",
                cfg.input_size
            )));
        }
        let (t_len, b) = if cfg.batch_first { (d1, d0) } else { (d0, d1) };
        if t_len == 0 {
            return Err(shape_error("the sequence is empty (T = 0)".into()));
        }
        let (hsz, dirs) = (cfg.hidden_size, cfg.directions());
        let state_shape = [cfg.num_layers * dirs, b, hsz];
        let mut h_n = initial_state("h0", h0, state_shape)?;
        let mut c_n = initial_state("c0", c0, state_shape)?;

        // Sequence-first rows [T·B, in] for every layer.
        let seq_first = |a: &ArrayD<f32>| -> Vec<f32> {
            if cfg.batch_first {
                a.view()
                    .permuted_axes(IxDyn(&[1, 0, 2]))
                    .iter()
                    .copied()
                    .collect()
            } else {
                a.as_standard_layout().iter().copied().collect()
            }
        };
        let mut layer_in = seq_first(x);
        let width = dirs * hsz;
        for layer in 0..cfg.num_layers {
            let mut layer_out = vec![0.0f32; t_len * b * width];
            for d in 0..dirs {
                let idx = layer * dirs + d;
                let cell = &self.cells[idx];
                let projected = cell.ih.forward_rows(&layer_in, t_len * b, engine)?;
                let state = idx * b * hsz..(idx + 1) * b * hsz;
                let (h, c) = (&mut h_n[state.clone()], &mut c_n[state]);
                for step in 0..t_len {
                    let t = if d == 0 { step } else { t_len - 1 - step };
                    let hidden = cell.hh.forward_rows(h, b, engine)?;
                    for bi in 0..b {
                        let row = (t * b + bi) * 4 * hsz;
                        let gate = |g: usize, k: usize| {
                            let j = g * hsz + k;
                            hidden[bi * 4 * hsz + j] + projected[row + j]
                        };
                        for k in 0..hsz {
                            let (ig, fg) = (sigmoid(gate(0, k)), sigmoid(gate(1, k)));
                            let (gg, og) = (gate(2, k).tanh(), sigmoid(gate(3, k)));
                            let cv = fg * c[bi * hsz + k] + ig * gg;
                            c[bi * hsz + k] = cv;
                            h[bi * hsz + k] = og * cv.tanh();
                        }
                        let out = (t * b + bi) * width + d * hsz;
                        layer_out[out..out + hsz].copy_from_slice(&h[bi * hsz..(bi + 1) * hsz]);
                    }
                }
            }
            layer_in = layer_out;
        }
        let seq = ArrayD::from_shape_vec(IxDyn(&[t_len, b, width]), layer_in).expect("shape");
        let output = if cfg.batch_first {
            seq.permuted_axes(IxDyn(&[1, 0, 2]))
                .as_standard_layout()
                .into_owned()
        } else {
            seq
        };
        let state = |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(&state_shape), v).expect("shape");
        Ok(DynamicLstmOutput {
            output,
            h_n: state(h_n),
            c_n: state(c_n),
        })
    }
}
