//! `nn.quantized.dynamic.LSTM`: every gate matrix (`weight_ih`, `weight_hh` of each layer and
//! direction) is a dynamic Linear with its bias inside, converted as a whole (all four gates share
//! one scale, NUMERICS §7.2).
//!
//! The input projection of a layer and direction runs once over all T·B rows, so the whole
//! sequence shares one set of activation qparams; the hidden projection is quantized per step
//! from `h_{t-1}` (modelled this way PyTorch matches to ~6e-8; per-step input quantization would
//! be off by ~7e-3). Gates `hh + ih` in f32, PyTorch order i, f, g, o:
//! `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`. PyTorch's transcendentals are Sleef's and
//! ours are rounded from f64, so a few outputs differ in the last bits: results agree with PyTorch
//! to float tolerance, not bit for bit.

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

/// `e^v` and `tanh v` rounded once from f64. PyTorch's vectorized (Sleef, 1-ulp) functions
/// return the correctly rounded value far more often than a platform's f32 `tanhf`: with these,
/// 95 % of the golden LSTM outputs are bit-exact instead of 48 %.
fn exp(v: f32) -> f32 {
    (v as f64).exp() as f32
}

fn tanh(v: f32) -> f32 {
    (v as f64).tanh() as f32
}

/// PyTorch's composition in f32: `1 / (1 + e^-v)`, each step rounded.
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + exp(-v))
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

        // Every layer reads sequence-first rows [T·B, in].
        let x = if cfg.batch_first {
            x.view().permuted_axes(IxDyn(&[1, 0, 2]))
        } else {
            x.view()
        };
        let mut layer_in: Vec<f32> = x.iter().copied().collect();
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
                            let (gg, og) = (tanh(gate(2, k)), sigmoid(gate(3, k)));
                            let cv = fg * c[bi * hsz + k] + ig * gg;
                            c[bi * hsz + k] = cv;
                            h[bi * hsz + k] = og * tanh(cv);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn array(shape: &[usize], v: Vec<f32>) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    fn config(batch_first: bool) -> LstmConfig {
        LstmConfig {
            input_size: 2,
            hidden_size: 3,
            num_layers: 2,
            bidirectional: true,
            batch_first,
        }
    }

    /// Deterministic, varied weights for `config`.
    fn params(cfg: LstmConfig) -> Vec<LstmFloatParams> {
        let h = cfg.hidden_size;
        let wave = |n: usize, phase: f32| -> Vec<f32> {
            (0..n)
                .map(|i| (i as f32 * 0.7 + phase).sin() * 0.6)
                .collect()
        };
        (0..cfg.num_layers * cfg.directions())
            .map(|i| {
                let cols = if i < cfg.directions() {
                    cfg.input_size
                } else {
                    h * cfg.directions()
                };
                let p = i as f32;
                LstmFloatParams {
                    w_ih: array(&[4 * h, cols], wave(4 * h * cols, p)),
                    w_hh: array(&[4 * h, h], wave(4 * h * h, p + 0.3)),
                    b_ih: Some(wave(4 * h, p + 0.5)),
                    b_hh: Some(wave(4 * h, p + 0.9)),
                }
            })
            .collect()
    }

    #[test]
    fn gate_order_is_i_f_g_o() {
        // Zero weights quantize to 0, so every gate is its bias: i 0.5, f -1, g 2, o 0.25.
        let cfg = LstmConfig {
            input_size: 1,
            hidden_size: 1,
            num_layers: 1,
            bidirectional: false,
            batch_first: false,
        };
        let p = LstmFloatParams {
            w_ih: array(&[4, 1], vec![0.0; 4]),
            w_hh: array(&[4, 1], vec![0.0; 4]),
            b_ih: Some(vec![0.5, -1.0, 2.0, 0.25]),
            b_hh: None,
        };
        let lstm = DynamicLstm::new(cfg, &[p], DynamicWeightDtype::QInt8PerTensor).unwrap();
        let c0 = array(&[1, 1, 1], vec![0.75]);
        let out = lstm
            .forward(
                &array(&[1, 1, 1], vec![0.3]),
                None,
                Some(&c0),
                Engine::Fbgemm,
            )
            .unwrap();
        // black_box keeps LLVM from constant-folding the expected value with its own rounding.
        let [i, f, g, o] = std::hint::black_box([0.5f32, -1.0, 2.0, 0.25]);
        let c = sigmoid(f) * 0.75 + sigmoid(i) * tanh(g);
        let h = sigmoid(o) * tanh(c);
        assert_eq!(out.c_n.iter().copied().collect::<Vec<_>>(), vec![c]);
        assert_eq!(out.h_n.iter().copied().collect::<Vec<_>>(), vec![h]);
        assert_eq!(out.output.iter().copied().collect::<Vec<_>>(), vec![h]);
    }

    #[test]
    fn batch_first_is_only_a_layout() {
        let (seq, bat) = (config(false), config(true));
        let a = DynamicLstm::new(seq, &params(seq), DynamicWeightDtype::QInt8PerTensor).unwrap();
        let b = DynamicLstm::new(bat, &params(bat), DynamicWeightDtype::QInt8PerTensor).unwrap();
        let x: Vec<f32> = (0..4 * 3 * 2).map(|i| (i as f32 * 0.37).cos()).collect();
        let x_seq = array(&[4, 3, 2], x);
        let x_bat = x_seq.view().permuted_axes(IxDyn(&[1, 0, 2])).to_owned();
        for engine in [Engine::Fbgemm, Engine::Qnnpack] {
            let ya = a.forward(&x_seq, None, None, engine).unwrap();
            let yb = b.forward(&x_bat, None, None, engine).unwrap();
            assert_eq!(ya.output, yb.output.view().permuted_axes(IxDyn(&[1, 0, 2])));
            assert_eq!((ya.h_n, ya.c_n), (yb.h_n, yb.c_n));
            assert_eq!(ya.output.shape(), [4, 3, 6]);
        }
    }

    #[test]
    fn errors_are_typed() {
        let cfg = config(false);
        let lstm = DynamicLstm::new(cfg, &params(cfg), DynamicWeightDtype::QInt8PerTensor).unwrap();
        let x = array(&[4, 3, 2], vec![0.1; 24]);
        let shape_err = |r: Result<DynamicLstmOutput, QnnError>| {
            assert!(matches!(r, Err(QnnError::Shape { .. })), "{r:?}")
        };
        shape_err(lstm.forward(&array(&[4, 2], vec![0.0; 8]), None, None, Engine::Fbgemm));
        shape_err(lstm.forward(
            &array(&[4, 3, 1], vec![0.0; 12]),
            None,
            None,
            Engine::Fbgemm,
        ));
        shape_err(lstm.forward(&array(&[0, 3, 2], vec![]), None, None, Engine::Fbgemm));
        let h0 = array(&[4, 2, 3], vec![0.0; 24]);
        shape_err(lstm.forward(&x, Some(&h0), None, Engine::Fbgemm));
        shape_err(lstm.forward(&x, None, Some(&h0), Engine::Fbgemm));
        let mut bad = params(cfg);
        bad[2].w_ih = array(&[12, 2], vec![0.0; 24]);
        assert!(matches!(
            DynamicLstm::new(cfg, &bad, DynamicWeightDtype::QInt8PerTensor),
            Err(QnnError::Shape { .. })
        ));
        assert!(matches!(
            DynamicLstm::new(cfg, &params(cfg)[..3], DynamicWeightDtype::QInt8PerTensor),
            Err(QnnError::Shape { .. })
        ));
        let half = DynamicLstm::new(cfg, &params(cfg), DynamicWeightDtype::Float16).unwrap();
        assert!(matches!(
            half.forward(&x, None, None, Engine::Qnnpack),
            Err(QnnError::EngineUnsupported { .. })
        ));
        let empty_batch = array(&[4, 0, 2], vec![]);
        assert_eq!(
            lstm.forward(&empty_batch, None, None, Engine::Fbgemm)
                .unwrap()
                .output
                .shape(),
            [4, 0, 6]
        );
    }
}
