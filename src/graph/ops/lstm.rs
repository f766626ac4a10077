//! LSTM forward in ONNX's sequence-first layout, PyTorch gate order (i, f, g, o).
//!
//! `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`; the reverse direction walks time
//! backwards. Gate pre-activations are `x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh`.

use super::activation::sigmoid;
use super::f32_arg;
use super::gemm::{Mat, sgemm};
use crate::graph::{GraphError, LstmParams, Node, Value};
use ndarray::{ArrayD, IxDyn};

/// Outputs of one LSTM node: `Y [T, dirs, B, H]`, `Y_h [dirs, B, H]`, `Y_c [dirs, B, H]`.
pub struct LstmOutput {
    pub y: ArrayD<f32>,
    pub h: ArrayD<f32>,
    pub c: ArrayD<f32>,
}

pub(super) fn eval(
    node: &Node,
    args: &[Option<&Value>],
    p: &LstmParams,
) -> Result<Vec<Value>, GraphError> {
    let x = f32_arg(node, args, 0)?;
    let state = |i: usize| {
        args.get(i)
            .copied()
            .flatten()
            .map(|_| f32_arg(node, args, i))
            .transpose()
    };
    let (h0, c0) = (state(5)?, state(6)?);
    if args.get(4).copied().flatten().is_some() {
        // sequence_lens would need per-batch masking; exporters of fixed-length models omit it.
        return Err(GraphError::Invalid {
            node: node.name.clone(),
            detail: "LSTM sequence_lens is not supported".into(),
        });
    }
    let out = lstm_forward(&node.name, x, h0, c0, p)?;
    Ok(vec![
        Value::F32(out.y),
        Value::F32(out.h),
        Value::F32(out.c),
    ])
}

/// Runs the LSTM on `x [T, B, I]` with optional initial states `[dirs, B, H]`.
pub fn lstm_forward(
    node: &str,
    x: &ArrayD<f32>,
    h0: Option<&ArrayD<f32>>,
    c0: Option<&ArrayD<f32>>,
    p: &LstmParams,
) -> Result<LstmOutput, GraphError> {
    let hsz = p.hidden_size;
    let dirs = p.directions.len();
    let bad = |detail: String| GraphError::Shape {
        node: node.into(),
        detail,
    };
    if x.ndim() != 3 {
        return Err(bad(format!(
            "LSTM input must be [T, B, I], got {:?}",
            x.shape()
        )));
    }
    let (t_len, b, i_len) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let state_shape = [dirs, b, hsz];
    for s in [h0, c0].into_iter().flatten() {
        if s.shape() != state_shape {
            return Err(bad(format!(
                "initial state {:?} should be {state_shape:?}",
                s.shape()
            )));
        }
    }
    crate::graph::budget::check(node, &[t_len, dirs, b, 4 * hsz], 4)?;
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard");
    let mut y = vec![0.0f32; t_len * dirs * b * hsz];
    let mut hn = vec![0.0f32; dirs * b * hsz];
    let mut cn = vec![0.0f32; dirs * b * hsz];
    for (d, w) in p.directions.iter().enumerate() {
        if w.w_ih.dim() != (4 * hsz, i_len) {
            return Err(bad(format!(
                "weight_ih {:?} does not fit input size {i_len}",
                w.w_ih.dim()
            )));
        }
        let init = |s: Option<&ArrayD<f32>>| {
            s.map_or_else(
                || vec![0.0; b * hsz],
                |a| {
                    a.as_standard_layout().as_slice().expect("standard")
                        [d * b * hsz..(d + 1) * b * hsz]
                        .to_vec()
                },
            )
        };
        let (mut h, mut c) = (init(h0), init(c0));
        let wih = w.w_ih.as_standard_layout();
        let whh = w.w_hh.as_standard_layout();
        let (wih, whh) = (
            wih.as_slice().expect("standard"),
            whh.as_slice().expect("standard"),
        );
        let mut gates = vec![0.0f32; b * 4 * hsz];
        let mut hg = vec![0.0f32; b * 4 * hsz];
        for step in 0..t_len {
            let t = if d == 0 { step } else { t_len - 1 - step };
            sgemm(
                b,
                i_len,
                4 * hsz,
                Mat::new(&xs[t * b * i_len..], i_len, 1),
                Mat::new(wih, 1, i_len),
                &mut gates,
            );
            sgemm(
                b,
                hsz,
                4 * hsz,
                Mat::new(&h, hsz, 1),
                Mat::new(whh, 1, hsz),
                &mut hg,
            );
            for bi in 0..b {
                let g = &mut gates[bi * 4 * hsz..][..4 * hsz];
                for (j, v) in g.iter_mut().enumerate() {
                    *v = *v + w.b_ih[j] + hg[bi * 4 * hsz + j] + w.b_hh[j];
                }
                for k in 0..hsz {
                    let ig = sigmoid(g[k]);
                    let fg = sigmoid(g[hsz + k]);
                    let gg = g[2 * hsz + k].tanh();
                    let og = sigmoid(g[3 * hsz + k]);
                    let cv = fg * c[bi * hsz + k] + ig * gg;
                    c[bi * hsz + k] = cv;
                    h[bi * hsz + k] = og * cv.tanh();
                }
            }
            y[((t * dirs + d) * b) * hsz..][..b * hsz].copy_from_slice(&h);
        }
        hn[d * b * hsz..][..b * hsz].copy_from_slice(&h);
        cn[d * b * hsz..][..b * hsz].copy_from_slice(&c);
    }
    let arr =
        |v: Vec<f32>, s: &[usize]| ArrayD::from_shape_vec(IxDyn(s), v).expect("lstm output shape");
    Ok(LstmOutput {
        y: arr(y, &[t_len, dirs, b, hsz]),
        h: arr(hn, &state_shape),
        c: arr(cn, &state_shape),
    })
}
