//! Convolution (1-d, 2-d, 3-d; stride, asymmetric padding, dilation, groups) by im2col + SGEMM.
//!
//! Every rank is handled as 3-d by inserting unit dims, so one im2col loop serves all; a
//! pointwise conv (1×1, stride 1, no padding) skips im2col and multiplies the input directly.

use super::gemm::{Mat, sgemm};
use crate::graph::{ConvParams, GraphError};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

/// Output channels per parallel GEMM tile.
const TILE_ROWS: usize = 32;

/// Output length of one spatial dim (PyTorch's floor rule).
pub fn conv_output_len(
    len: usize,
    k: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation * (k - 1) + 1;
    let padded = len + pad_begin + pad_end;
    (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
}

/// Geometry of one convolution, every rank lifted to 3 spatial dims.
struct Geometry {
    n: usize,
    c: usize,
    o: usize,
    groups: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    out: [usize; 3],
    stride: [usize; 3],
    pad: [usize; 3],
    dilation: [usize; 3],
}

fn lift(v: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

fn geometry(node: &str, x: &ArrayD<f32>, p: &ConvParams) -> Result<Geometry, GraphError> {
    let w = p.weight.shape();
    let spatial = w.len().saturating_sub(2);
    let bad = |detail: String| GraphError::Shape {
        node: node.into(),
        detail,
    };
    if !(1..=3).contains(&spatial) || x.ndim() != spatial + 2 {
        return Err(bad(format!(
            "input of shape {:?} does not fit a weight of shape {w:?}",
            x.shape()
        )));
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let groups = p.groups.max(1);
    if c != w[1] * groups || !w[0].is_multiple_of(groups) {
        return Err(bad(format!(
            "input has {c} channels; weight {w:?} with groups={groups} needs {}",
            w[1] * groups
        )));
    }
    let input = lift(&x.shape()[2..], 1);
    let kernel = lift(&w[2..], 1);
    let stride = lift(&p.stride, 1);
    let dilation = lift(&p.dilation, 1);
    let pad_b = lift(&p.pad_begin, 0);
    let pad_e = lift(&p.pad_end, 0);
    let mut out = [1; 3];
    for d in 0..3 {
        out[d] = conv_output_len(
            input[d],
            kernel[d],
            stride[d],
            pad_b[d],
            pad_e[d],
            dilation[d],
        )
        .ok_or_else(|| {
            bad(format!(
                "kernel {kernel:?} is larger than the padded input {:?}",
                x.shape()
            ))
        })?;
    }
    Ok(Geometry {
        n,
        c,
        o: w[0],
        groups,
        input,
        kernel,
        out,
        stride,
        pad: pad_b,
        dilation,
    })
}

/// `conv(x, weight, bias)` with PyTorch semantics; `x` is N, C, spatial...
pub fn conv_forward(
    node: &str,
    x: &ArrayD<f32>,
    p: &ConvParams,
) -> Result<ArrayD<f32>, GraphError> {
    let g = geometry(node, x, p)?;
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let w = p.weight.as_standard_layout();
    let ws = w.as_slice().expect("standard layout");
    let (cg, og) = (g.c / g.groups, g.o / g.groups);
    let kvol: usize = g.kernel.iter().product();
    let ivol: usize = g.input.iter().product();
    let ovol: usize = g.out.iter().product();
    let rows = cg * kvol;
    let pointwise = kvol == 1 && g.stride == [1; 3] && g.pad == [0; 3] && g.input == g.out;
    let mut y = vec![0.0f32; g.n * g.o * ovol];
    // One work item per (sample, group), then fixed tiles of output channels: the split never
    // depends on the thread count, so results are identical however many threads run.
    y.par_chunks_mut((og * ovol).max(1))
        .enumerate()
        .for_each(|(item, out)| {
            let (n, grp) = (item / g.groups, item % g.groups);
            let xg = &xs[(n * g.c + grp * cg) * ivol..][..cg * ivol];
            let col;
            let b: &[f32] = if pointwise {
                xg
            } else {
                let mut buf = vec![0.0f32; rows * ovol];
                im2col(&g, xg, cg, &mut buf);
                col = buf;
                &col
            };
            let a = &ws[grp * og * rows..][..og * rows];
            out.par_chunks_mut(TILE_ROWS * ovol)
                .enumerate()
                .for_each(|(t, c)| {
                    let m = c.len() / ovol.max(1);
                    sgemm(
                        m,
                        rows,
                        ovol,
                        Mat::new(&a[t * TILE_ROWS * rows..], rows, 1),
                        Mat::new(b, ovol, 1),
                        c,
                    );
                });
        });
    if let Some(bias) = &p.bias {
        for (chunk, o) in y.chunks_mut(ovol).zip((0..g.o).cycle()) {
            chunk.iter_mut().for_each(|v| *v += bias[o]);
        }
    }
    let mut shape = vec![g.n, g.o];
    shape.extend_from_slice(&g.out[3 - (p.weight.ndim() - 2)..]);
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("conv output shape"))
}

/// Fills `col` (`[cg·kvol, ovol]`, row-major) with the receptive fields of one group.
fn im2col(g: &Geometry, x: &[f32], cg: usize, col: &mut [f32]) {
    let [id, ih, iw] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [od, oh, ow] = g.out;
    let ovol = od * oh * ow;
    let mut row = 0;
    for c in 0..cg {
        let xc = &x[c * id * ih * iw..][..id * ih * iw];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let dst = &mut col[row * ovol..][..ovol];
                    let mut k = 0;
                    for z in 0..od {
                        let zi = (z * g.stride[0] + a * g.dilation[0]) as isize - g.pad[0] as isize;
                        for yy in 0..oh {
                            let yi =
                                (yy * g.stride[1] + b * g.dilation[1]) as isize - g.pad[1] as isize;
                            let inside =
                                (0..id as isize).contains(&zi) && (0..ih as isize).contains(&yi);
                            for xx in 0..ow {
                                let xi = (xx * g.stride[2] + e * g.dilation[2]) as isize
                                    - g.pad[2] as isize;
                                dst[k] = if inside && (0..iw as isize).contains(&xi) {
                                    xc[(zi as usize * ih + yi as usize) * iw + xi as usize]
                                } else {
                                    0.0
                                };
                                k += 1;
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}
