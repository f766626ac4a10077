//! Backward of Linear (`y = x·Wᵀ + b` over the last dim, any leading dims) and of numpy-style
//! batched MatMul (1-d promotion, broadcast batch dims reduced back).

use super::backward::{ModuleGrads, row_major};
use super::pointwise::{broadcast_shape, reduce_to};
use crate::graph::GraphError;
use crate::graph::ops::gemm::{Mat, sgemm};
use ndarray::{Array1, ArrayD, Axis, IxDyn};

fn shape_err(node: &str, detail: String) -> GraphError {
    GraphError::Shape {
        node: node.into(),
        detail,
    }
}

/// Gradients of Linear with `w` `[out, in]` the weight the forward used.
pub(crate) fn linear_backward(
    node: &str,
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    has_bias: bool,
    dy: &ArrayD<f32>,
) -> Result<ModuleGrads, GraphError> {
    let (out_f, in_f) = (w.shape()[0], w.shape()[1]);
    let m = x.len() / in_f.max(1);
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != in_f || dy.len() != m * out_f {
        return Err(shape_err(
            node,
            format!(
                "linear gradient {:?} does not fit input {:?} and weight {:?}",
                dy.shape(),
                x.shape(),
                w.shape()
            ),
        ));
    }
    let (xs, ws, dys) = (row_major(x), row_major(w), row_major(dy));
    let (xs, ws, dys) = (&*xs, &*ws, &*dys);
    let mut dx = vec![0.0f32; m * in_f];
    sgemm(
        m,
        out_f,
        in_f,
        Mat::new(dys, out_f, 1),
        Mat::new(ws, in_f, 1),
        &mut dx,
    );
    let mut dw = vec![0.0f32; out_f * in_f];
    sgemm(
        out_f,
        m,
        in_f,
        Mat::new(dys, 1, out_f),
        Mat::new(xs, in_f, 1),
        &mut dw,
    );
    let db = has_bias.then(|| {
        let mut db = Array1::zeros(out_f);
        for row in dys.chunks(out_f) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
        db
    });
    Ok(ModuleGrads {
        dx: ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("dx shape"),
        dw: ArrayD::from_shape_vec(IxDyn(w.shape()), dw).expect("dw shape"),
        db,
    })
}

/// Gradients of `matmul(a, b)`: (da, db).
pub(crate) fn matmul_backward(
    node: &str,
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    dy: &ArrayD<f32>,
) -> Result<(ArrayD<f32>, ArrayD<f32>), GraphError> {
    let bad = || {
        shape_err(
            node,
            format!(
                "matmul gradient {:?} does not fit {:?} by {:?}",
                dy.shape(),
                a.shape(),
                b.shape()
            ),
        )
    };
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(bad());
    }
    let a2 = if a.ndim() == 1 {
        a.clone().insert_axis(Axis(0))
    } else {
        a.clone()
    };
    let b2 = if b.ndim() == 1 {
        b.clone().insert_axis(Axis(1))
    } else {
        b.clone()
    };
    let (ra, rb) = (a2.ndim(), b2.ndim());
    let (m, k, n) = (a2.shape()[ra - 2], a2.shape()[ra - 1], b2.shape()[rb - 1]);
    let batch = broadcast_shape(&a2.shape()[..ra - 2], &b2.shape()[..rb - 2]).ok_or_else(bad)?;
    let count: usize = batch.iter().product();
    if b2.shape()[rb - 2] != k || dy.len() != count * m * n {
        return Err(bad());
    }
    let full = |tail: [usize; 2]| -> Vec<usize> { batch.iter().copied().chain(tail).collect() };
    let av = a2
        .broadcast(IxDyn(&full([m, k])))
        .ok_or_else(bad)?
        .as_standard_layout()
        .into_owned();
    let bv = b2
        .broadcast(IxDyn(&full([k, n])))
        .ok_or_else(bad)?
        .as_standard_layout()
        .into_owned();
    let dy = dy.as_standard_layout();
    let (asl, bsl, dys) = (
        av.as_slice().expect("standard"),
        bv.as_slice().expect("standard"),
        dy.as_slice().expect("standard"),
    );
    let mut da = vec![0.0f32; count * m * k];
    let mut db = vec![0.0f32; count * k * n];
    for i in 0..count {
        let g = &dys[i * m * n..][..m * n];
        // dA = dY · Bᵀ, dB = Aᵀ · dY
        sgemm(
            m,
            n,
            k,
            Mat::new(g, n, 1),
            Mat::new(&bsl[i * k * n..], 1, n),
            &mut da[i * m * k..],
        );
        sgemm(
            k,
            m,
            n,
            Mat::new(&asl[i * m * k..], 1, k),
            Mat::new(g, n, 1),
            &mut db[i * k * n..],
        );
    }
    let da = ArrayD::from_shape_vec(IxDyn(&full([m, k])), da).expect("da shape");
    let db = ArrayD::from_shape_vec(IxDyn(&full([k, n])), db).expect("db shape");
    let da = reduce_to(da, a2.shape())
        .into_shape_with_order(IxDyn(a.shape()))
        .map_err(|_| bad())?;
    let db = reduce_to(db, b2.shape())
        .into_shape_with_order(IxDyn(b.shape()))
        .map_err(|_| bad())?;
    Ok((da, db))
}
