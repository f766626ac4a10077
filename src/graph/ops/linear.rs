//! Linear layers (`x · Wᵀ + b` over the last dim) and numpy-style batched MatMul.

use super::gemm::{Mat, sgemm};
use crate::graph::{GraphError, LinearParams};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

/// `y = x · Wᵀ + b` for `x` of shape `[..., in_features]`.
pub fn linear_forward(
    node: &str,
    x: &ArrayD<f32>,
    p: &LinearParams,
) -> Result<ArrayD<f32>, GraphError> {
    let (out_f, in_f) = p.weight.dim();
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != in_f {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!(
                "input of shape {:?} does not end in in_features={in_f}",
                x.shape()
            ),
        });
    }
    let m = x.len() / in_f.max(1);
    let x = x.as_standard_layout();
    let w = p.weight.as_standard_layout();
    let (xs, ws) = (
        x.as_slice().expect("standard"),
        w.as_slice().expect("standard"),
    );
    // Dot products in PyTorch's (MKL's) order, bias last: bit-identical float outputs. Work
    // items are fixed blocks of output features of one row, so a single row (a GEMV) spreads
    // over threads too, and the split never depends on the thread count.
    const FEATURES: usize = 64;
    let mut y = vec![0.0f32; m * out_f];
    y.par_chunks_mut(out_f.max(1))
        .zip(xs.par_chunks(in_f.max(1)))
        .for_each(|(row, xr)| {
            row.par_chunks_mut(FEATURES)
                .enumerate()
                .for_each(|(blk, out)| {
                    let first = blk * FEATURES;
                    let rows = &ws[first * in_f..][..out.len() * in_f];
                    super::torch_order::dot_rows(out, xr, rows);
                    if let Some(b) = &p.bias {
                        for (v, bo) in out.iter_mut().zip(&b.as_slice().expect("1-d")[first..]) {
                            *v += bo;
                        }
                    }
                });
        });
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = out_f;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("linear output shape"))
}

/// numpy `matmul`: 1-d operands are promoted, leading dims broadcast.
pub fn matmul(node: &str, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>, GraphError> {
    let bad = || GraphError::Shape {
        node: node.into(),
        detail: format!("cannot matmul {:?} by {:?}", a.shape(), b.shape()),
    };
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(bad());
    }
    let a2 = if a.ndim() == 1 {
        a.clone().insert_axis(ndarray::Axis(0))
    } else {
        a.clone()
    };
    let b2 = if b.ndim() == 1 {
        b.clone().insert_axis(ndarray::Axis(1))
    } else {
        b.clone()
    };
    let (m, k) = (a2.shape()[a2.ndim() - 2], a2.shape()[a2.ndim() - 1]);
    let (k2, n) = (b2.shape()[b2.ndim() - 2], b2.shape()[b2.ndim() - 1]);
    if k != k2 {
        return Err(bad());
    }
    let batch_a = &a2.shape()[..a2.ndim() - 2];
    let batch_b = &b2.shape()[..b2.ndim() - 2];
    let nb = batch_a.len().max(batch_b.len());
    let mut batch = Vec::with_capacity(nb);
    for i in 0..nb {
        let da = if i + batch_a.len() >= nb {
            batch_a[i + batch_a.len() - nb]
        } else {
            1
        };
        let db = if i + batch_b.len() >= nb {
            batch_b[i + batch_b.len() - nb]
        } else {
            1
        };
        batch.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(bad()),
        });
    }
    let mut full_a = batch.clone();
    full_a.extend([m, k]);
    let mut full_b = batch.clone();
    full_b.extend([k, n]);
    let mut full_y = batch.clone();
    full_y.extend([m, n]);
    for shape in [&full_a, &full_b, &full_y] {
        crate::graph::budget::check(node, shape, 4)?;
    }
    let av = a2
        .broadcast(IxDyn(&full_a))
        .ok_or_else(bad)?
        .as_standard_layout()
        .into_owned();
    let bv = b2
        .broadcast(IxDyn(&full_b))
        .ok_or_else(bad)?
        .as_standard_layout()
        .into_owned();
    let count: usize = batch.iter().product();
    let mut y = vec![0.0f32; count * m * n];
    let (asl, bsl) = (
        av.as_slice().expect("standard"),
        bv.as_slice().expect("standard"),
    );
    for i in 0..count {
        sgemm(
            m,
            k,
            n,
            Mat::new(&asl[i * m * k..], k, 1),
            Mat::new(&bsl[i * k * n..], n, 1),
            &mut y[i * m * n..],
        );
    }
    let mut shape = batch;
    if a.ndim() > 1 {
        shape.push(m);
    }
    if b.ndim() > 1 {
        shape.push(n);
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("matmul output shape"))
}
