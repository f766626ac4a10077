//! Convolution backward (1-d / 2-d / 3-d, stride, asymmetric padding, dilation, groups).
//!
//! One patch map — for every element of the im2col matrix `[cg·kvol, ovol]`, the input offset
//! it reads or `None` for padding — drives both directions: im2col gathers through it for the
//! weight gradient, col2im scatter-adds through it for the input gradient.

use super::backward::{ModuleGrads, row_major};
use crate::graph::ops::conv::{Geometry, geometry};
use crate::graph::ops::gemm::{Mat, sgemm};
use crate::graph::{ConvParams, GraphError};
use ndarray::{Array1, ArrayD, IxDyn};

/// Input offsets (within one group's channel block) of every im2col element.
fn patch_map(g: &Geometry, cg: usize) -> Vec<Option<usize>> {
    let (input, kernel, out) = (g.input, g.kernel, g.out);
    let ivol: usize = input.iter().product();
    let mut map =
        Vec::with_capacity(cg * kernel.iter().product::<usize>() * out.iter().product::<usize>());
    let pos = |o: usize, k: usize, d: usize| {
        let i = (o * g.stride[d] + k * g.dilation[d]) as isize - g.pad[d] as isize;
        (0..input[d] as isize).contains(&i).then_some(i as usize)
    };
    for c in 0..cg {
        for a in 0..kernel[0] {
            for b in 0..kernel[1] {
                for e in 0..kernel[2] {
                    for z in 0..out[0] {
                        for y in 0..out[1] {
                            for x in 0..out[2] {
                                let at = pos(z, a, 0).zip(pos(y, b, 1)).zip(pos(x, e, 2));
                                map.push(at.map(|((zi, yi), xi)| {
                                    c * ivol + (zi * input[1] + yi) * input[2] + xi
                                }));
                            }
                        }
                    }
                }
            }
        }
    }
    map
}

/// Gradients of `y = conv(x, w) + b` for `dy` of y's shape; `w` is the weight the
/// forward used.
pub(crate) fn conv_backward(
    node: &str,
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    p: &ConvParams,
    dy: &ArrayD<f32>,
) -> Result<ModuleGrads, GraphError> {
    let bad = || GraphError::Shape {
        node: node.into(),
        detail: format!(
            "conv gradient {:?} does not fit input {:?} and weight {:?}",
            dy.shape(),
            x.shape(),
            w.shape()
        ),
    };
    if w.shape() != p.weight.shape() {
        return Err(bad());
    }
    let g = geometry(node, x, p)?;
    let (n, c, o, groups) = (g.n, g.c, g.o, g.groups);
    let (cg, og) = (c / groups, o / groups);
    let spatial = w.ndim() - 2;
    let mut want = vec![n, o];
    want.extend_from_slice(&g.out[3 - spatial..]);
    if dy.shape() != want.as_slice() {
        return Err(bad());
    }
    let kvol: usize = g.kernel.iter().product();
    let ivol: usize = g.input.iter().product();
    let ovol: usize = g.out.iter().product();
    let rows = cg * kvol;
    let map = patch_map(&g, cg);
    let (xs, ws, dys) = (row_major(x), row_major(w), row_major(dy));
    let (xs, ws, dys) = (&*xs, &*ws, &*dys);
    let mut dx = vec![0.0f32; xs.len()];
    let mut dw = vec![0.0f32; ws.len()];
    let mut col = vec![0.0f32; rows * ovol];
    let mut dw_part = vec![0.0f32; og * rows];
    for b in 0..n {
        for grp in 0..groups {
            let base = (b * c + grp * cg) * ivol;
            let xg = &xs[base..][..cg * ivol];
            for (dst, at) in col.iter_mut().zip(&map) {
                *dst = at.map_or(0.0, |i| xg[i]);
            }
            let dyg = &dys[(b * o + grp * og) * ovol..][..og * ovol];
            let wg = &ws[grp * og * rows..][..og * rows];
            // dW_g += dY_g · colᵀ
            sgemm(
                og,
                ovol,
                rows,
                Mat::new(dyg, ovol, 1),
                Mat::new(&col, 1, ovol),
                &mut dw_part,
            );
            dw[grp * og * rows..][..og * rows]
                .iter_mut()
                .zip(&dw_part)
                .for_each(|(d, v)| *d += v);
            // dcol = W_gᵀ · dY_g, scattered back through the patch map (col2im).
            sgemm(
                rows,
                og,
                ovol,
                Mat::new(wg, 1, rows),
                Mat::new(dyg, ovol, 1),
                &mut col,
            );
            let dxg = &mut dx[base..][..cg * ivol];
            for (v, at) in col.iter().zip(&map) {
                if let Some(i) = at {
                    dxg[*i] += v;
                }
            }
        }
    }
    let db = p.bias.as_ref().map(|_| {
        Array1::from_iter((0..o).map(|ch| {
            (0..n)
                .map(|b| dys[(b * o + ch) * ovol..][..ovol].iter().sum::<f32>())
                .sum()
        }))
    });
    Ok(ModuleGrads {
        dx: ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("dx shape"),
        dw: ArrayD::from_shape_vec(IxDyn(w.shape()), dw).expect("dw shape"),
        db,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ops::conv_forward;
    use crate::graph::train::Rng;

    fn rand(rng: &mut Rng, shape: &[usize]) -> ArrayD<f32> {
        let n = shape.iter().product();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.next_f32() - 0.5).collect())
            .unwrap()
    }

    type Case = (
        &'static [usize],
        &'static [usize],
        [&'static [usize]; 4],
        usize,
    );

    /// Convolution is bilinear, so `<conv(x, w), dy> = <x, dx> = <w, dw>` for every geometry.
    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        let mut rng = Rng::new(11);
        // (input, weight, [stride, pad_begin, pad_end, dilation], groups)
        let cases: [Case; 4] = [
            (
                &[2, 4, 7, 6],
                &[6, 2, 3, 3],
                [&[2, 1], &[1, 0], &[2, 1], &[1, 2]],
                2,
            ),
            (&[1, 3, 9], &[3, 1, 4], [&[3], &[0], &[2], &[2]], 3),
            (
                &[1, 2, 3, 5, 4],
                &[2, 2, 2, 2, 2],
                [&[1, 2, 1], &[1, 1, 0], &[0, 0, 1], &[1, 1, 2]],
                1,
            ),
            (
                &[2, 2, 4, 4],
                &[3, 2, 1, 1],
                [&[1, 1], &[0, 0], &[0, 0], &[1, 1]],
                1,
            ),
        ];
        for (xs, ws, [stride, pb, pe, dil], groups) in cases {
            let p = ConvParams {
                weight: rand(&mut rng, ws),
                bias: None,
                stride: stride.to_vec(),
                pad_begin: pb.to_vec(),
                pad_end: pe.to_vec(),
                dilation: dil.to_vec(),
                groups,
            };
            let x = rand(&mut rng, xs);
            let y = conv_forward("c", &x, &p).unwrap();
            let dy = rand(&mut rng, y.shape());
            let g = conv_backward("c", &x, &p.weight, &p, &dy).unwrap();
            let lhs = (&y * &dy).sum();
            let via_x = (&x * &g.dx).sum();
            let via_w = (&p.weight * &g.dw).sum();
            assert!((lhs - via_x).abs() < 1e-4, "{xs:?}: {lhs} vs {via_x}");
            assert!((lhs - via_w).abs() < 1e-4, "{xs:?}: {lhs} vs {via_w}");
        }
    }

    #[test]
    fn mismatched_gradient_is_a_shape_error() {
        let p = ConvParams {
            weight: ArrayD::zeros(IxDyn(&[1, 1, 2])),
            bias: None,
            stride: vec![1],
            pad_begin: vec![0],
            pad_end: vec![0],
            dilation: vec![1],
            groups: 1,
        };
        let x = ArrayD::zeros(IxDyn(&[1, 1, 4]));
        let dy = ArrayD::zeros(IxDyn(&[1, 1, 4]));
        assert!(matches!(
            conv_backward("c", &x, &p.weight, &p, &dy),
            Err(GraphError::Shape { .. })
        ));
    }
}
