//! Max / average pooling (PyTorch window and ceil_mode rules) and global average pooling.
//!
//! Like convolution, 1-d and 2-d pooling are lifted to 3 spatial dims so one loop serves all.

use crate::graph::{GraphError, PoolParams};
use crate::kernels::patches::{tap_index, tap_range};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

/// Output length of a pooled dim, PyTorch's rule: with ceil_mode the last window must still
/// start inside the input or its leading padding.
pub fn pool_output_len(len: usize, p: &PoolParams, d: usize) -> Option<usize> {
    let (k, s, dil) = (p.kernel[d], p.stride[d], p.dilation[d]);
    let (pb, pe) = (p.pad_begin[d], p.pad_end[d]);
    if k == 0 || dil == 0 {
        return None;
    }
    let span = dil.checked_mul(k - 1)?.checked_add(1)?;
    let padded = len.checked_add(pb)?.checked_add(pe)?;
    if padded < span || s == 0 {
        return None;
    }
    let extra = if p.ceil_mode { s - 1 } else { 0 };
    let mut out = (padded - span).checked_add(extra)? / s + 1;
    if p.ceil_mode && (out - 1) * s >= len + pb {
        out -= 1;
    }
    Some(out)
}

struct Windows {
    planes: usize,
    input: [usize; 3],
    out: [usize; 3],
    out_shape: Vec<usize>,
}

fn windows(node: &str, shape: &[usize], p: &PoolParams) -> Result<Windows, GraphError> {
    let sp = p.kernel.len();
    if !(1..=3).contains(&sp) || shape.len() != sp + 2 {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!("cannot pool {shape:?} with a {sp}-d kernel"),
        });
    }
    if [&p.stride, &p.dilation, &p.pad_begin, &p.pad_end]
        .iter()
        .any(|l| l.len() != sp)
    {
        return Err(GraphError::Invalid {
            node: node.into(),
            detail: format!("stride/dilation/padding lists must each have {sp} entries"),
        });
    }
    let mut input = [1; 3];
    let mut out = [1; 3];
    let mut out_shape = shape[..2].to_vec();
    for d in 0..sp {
        let len = shape[2 + d];
        let o = pool_output_len(len, p, d).ok_or_else(|| GraphError::Shape {
            node: node.into(),
            detail: format!("pool window larger than padded input {shape:?}"),
        })?;
        input[3 - sp + d] = len;
        out[3 - sp + d] = o;
        out_shape.push(o);
    }
    crate::graph::budget::check(node, &out_shape, 4)?;
    Ok(Windows {
        planes: shape[0] * shape[1],
        input,
        out,
        out_shape,
    })
}

/// Per lifted dim: (kernel, stride, dilation, pad_begin, pad_end).
fn lifted(p: &PoolParams) -> [(usize, usize, usize, usize, usize); 3] {
    let sp = p.kernel.len();
    let mut dims = [(1, 1, 1, 0, 0); 3];
    for d in 0..sp {
        dims[3 - sp + d] = (
            p.kernel[d],
            p.stride[d],
            p.dilation[d],
            p.pad_begin[d],
            p.pad_end[d],
        );
    }
    dims
}

/// Visits every output position of pooling a tensor of `shape`, in output order, with its plane
/// index, the in-bounds input offsets of its window (within the plane) and the padded window size; returns the output
/// shape. Shared by the forward kernels and the training backward.
pub(crate) fn visit_windows(
    node: &str,
    shape: &[usize],
    p: &PoolParams,
    mut visit: impl FnMut(usize, &[usize], usize),
) -> Result<Vec<usize>, GraphError> {
    let w = windows(node, shape, p)?;
    let dims = lifted(p);
    let [id, ih, iw] = w.input;
    // The in-bounds offsets of window (oz, oy, ox), appended to `idx`; returns its padded size.
    let window = |o: [usize; 3], idx: &mut Vec<usize>| {
        let mut padded = 1;
        let mut ranges = [(0isize, 0isize, 0usize); 3];
        for (d, &o) in o.iter().enumerate() {
            let (k, s, dil, pb, pe) = dims[d];
            let start = (o * s) as isize - pb as isize;
            let end = (start + ((k - 1) * dil + 1) as isize).min((w.input[d] + pe) as isize);
            padded *= ((end - start) as usize).div_ceil(dil);
            ranges[d] = (start, end, dil);
        }
        for z in in_bounds(ranges[0], id) {
            for yy in in_bounds(ranges[1], ih) {
                for xx in in_bounds(ranges[2], iw) {
                    idx.push((z * ih + yy) * iw + xx);
                }
            }
        }
        padded
    };
    let positions = || {
        let [od, oh, ow] = w.out;
        (0..od).flat_map(move |z| (0..oh).flat_map(move |y| (0..ow).map(move |x| [z, y, x])))
    };
    let window_taps: usize = dims.iter().map(|d| d.0).product();
    let mut idx = Vec::new();
    // Every plane has the same windows: list them once when the list stays modest, else form
    // each window again per plane.
    const CACHED_TAPS: usize = 1 << 22;
    if w.out.iter().product::<usize>().saturating_mul(window_taps) <= CACHED_TAPS {
        let spans: Vec<(std::ops::Range<usize>, usize)> = positions()
            .map(|o| {
                let first = idx.len();
                let padded = window(o, &mut idx);
                (first..idx.len(), padded)
            })
            .collect();
        for plane in 0..w.planes {
            for (span, padded) in &spans {
                visit(plane, &idx[span.clone()], *padded);
            }
        }
    } else {
        for plane in 0..w.planes {
            for o in positions() {
                idx.clear();
                let padded = window(o, &mut idx);
                visit(plane, &idx, padded);
            }
        }
    }
    Ok(w.out_shape)
}

/// Runs `reduce` over every window (plane values, in-bounds offsets, padded size).
fn pool_with(
    node: &str,
    x: &ArrayD<f32>,
    p: &PoolParams,
    reduce: impl Fn(&[f32], &[usize], usize) -> f32,
) -> Result<ArrayD<f32>, GraphError> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let vol: usize = x.shape().iter().skip(2).product();
    let mut y = Vec::new();
    let shape = visit_windows(node, x.shape(), p, |plane, idx, padded| {
        y.push(reduce(&xs[plane * vol..][..vol], idx, padded));
    })?;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("pool output shape"))
}

fn in_bounds((start, end, dil): (isize, isize, usize), len: usize) -> impl Iterator<Item = usize> {
    (start..end)
        .step_by(dil)
        .filter(move |&i| i >= 0 && (i as usize) < len)
        .map(|i| i as usize)
}

/// Max pooling: padding never wins; NaN propagates (PyTorch's `val > max || isnan(val)`, so
/// among equal maxima the first in window order wins and among NaNs the last).
///
/// Each output row is reduced tap by tap in window order: one pass over a contiguous (or
/// strided) input run per tap, which vectorises, instead of gathering every window. Planes run
/// in parallel.
pub fn max_pool(node: &str, x: &ArrayD<f32>, p: &PoolParams) -> Result<ArrayD<f32>, GraphError> {
    let w = windows(node, x.shape(), p)?;
    let dims = lifted(p);
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let [id, ih, iw] = w.input;
    let ovol: usize = w.out.iter().product();
    let vol = id * ih * iw;
    let mut y = vec![f32::NEG_INFINITY; w.planes * ovol];
    let geometry = PlaneGeometry {
        input: w.input,
        out: w.out,
        dims,
    };
    if vol > 0 && ovol > 0 {
        y.par_chunks_mut(ovol)
            .zip(xs.par_chunks(vol))
            .for_each_init(Vec::new, |phases, (out, plane)| {
                max_plane(plane, &geometry, out, phases)
            });
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&w.out_shape), y).expect("pool output shape"))
}

/// The geometry every plane of one max pool shares: lifted input and output dims and, per dim,
/// (kernel, stride, dilation, pad_begin, pad_end).
#[derive(Clone, Copy)]
struct PlaneGeometry {
    input: [usize; 3],
    out: [usize; 3],
    dims: [(usize, usize, usize, usize, usize); 3],
}

crate::isa::avx2_fma_twin! {
    /// One plane of [`max_pool`]: `out` starts at -inf and takes each tap's run in window order.
    /// With a column stride `s`, every input row is first split into `s` phases (phase `r` holds
    /// columns `r, r + s, …`, in `phases`), so each tap's run is contiguous and the loop
    /// vectorises. Also compiled for AVX2 (wider compares and blends, the same results).
    fn max_plane(
        plane: &[f32],
        g: &PlaneGeometry,
        out: &mut [f32],
        phases: &mut Vec<f32>,
    ) when crate::isa::selected().is_x86_simd() && std::arch::is_x86_feature_detected!("fma") => {
        max_plane_body(plane, g, out, phases)
    }
}

#[inline(always)]
fn max_plane_body(plane: &[f32], g: &PlaneGeometry, out: &mut [f32], phases: &mut Vec<f32>) {
    let ([id, ih, iw], [_, oh, ow]) = (g.input, g.out);
    let [
        (kd, sd, dd, pd, _),
        (kh, sh, dh, ph, _),
        (kw, sw, dw, pw, _),
    ] = g.dims;
    let (rows, width) = (id * ih, iw.div_ceil(sw));
    let plane = if sw == 1 {
        plane
    } else {
        phases.resize(sw * rows * width, 0.0);
        let (even, odd) = phases.split_at_mut(rows * width);
        if sw == 2 {
            // The common stride as a loop the compiler vectorises (a de-interleave).
            for ((e, o), src) in even
                .chunks_exact_mut(width)
                .zip(odd.chunks_exact_mut(width))
                .zip(plane.chunks_exact(iw))
            {
                let pairs = src.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    e[width - 1] = *last;
                }
                for ((e, o), pair) in e.iter_mut().zip(o.iter_mut()).zip(pairs) {
                    (*e, *o) = (pair[0], pair[1]);
                }
            }
        } else {
            for r in 0..sw {
                let phase = &mut phases[r * rows * width..][..rows * width];
                for (dst, src) in phase.chunks_exact_mut(width).zip(plane.chunks_exact(iw)) {
                    // `skip`, not `src[r..]`: a row may be narrower than the stride.
                    for (d, &v) in dst.iter_mut().zip(src.iter().skip(r).step_by(sw)) {
                        *d = v;
                    }
                }
            }
        }
        &phases[..]
    };
    // Per column tap: the outputs it reaches and where its run starts (phase offset + column).
    let taps: Vec<(std::ops::Range<usize>, usize)> = (0..kw)
        .map(|e| {
            let cols = tap_range(ow, sw, dw, pw, iw, e);
            if cols.is_empty() {
                // Reads nothing (and its first column may lie left of the input).
                return (cols, 0);
            }
            let first = cols.start * sw + e * dw - pw;
            (cols, (first % sw) * rows * width + first / sw)
        })
        .collect();
    for (r, dst) in out.chunks_exact_mut(ow).enumerate() {
        let (oz, oy) = (r / oh, r % oh);
        for a in 0..kd {
            let Some(zi) = tap_index(oz, sd, a, dd, pd, id) else {
                continue;
            };
            for b in 0..kh {
                let Some(yi) = tap_index(oy, sh, b, dh, ph, ih) else {
                    continue;
                };
                for (cols, start) in &taps {
                    let src = &plane[start + (zi * ih + yi) * width..][..cols.len()];
                    for (m, &v) in dst[cols.clone()].iter_mut().zip(src) {
                        *m = if v > *m || v.is_nan() { v } else { *m };
                    }
                }
            }
        }
    }
}

/// Average pooling: the divisor counts padding when `count_include_pad`.
pub fn avg_pool(node: &str, x: &ArrayD<f32>, p: &PoolParams) -> Result<ArrayD<f32>, GraphError> {
    pool_with(node, x, p, |plane, idx, padded| {
        let sum: f32 = idx.iter().map(|&i| plane[i]).sum();
        let div = if p.count_include_pad {
            padded
        } else {
            idx.len()
        };
        if div == 0 { 0.0 } else { sum / div as f32 }
    })
}

/// Mean over every spatial dim, keeping them as size 1.
pub fn global_avg_pool(node: &str, x: &ArrayD<f32>) -> Result<ArrayD<f32>, GraphError> {
    if x.ndim() < 3 {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!(
                "global pooling needs N, C and spatial dims, got {:?}",
                x.shape()
            ),
        });
    }
    let spatial: usize = x.shape()[2..].iter().product();
    let x = x.as_standard_layout();
    let y: Vec<f32> = x
        .as_slice()
        .expect("standard")
        .chunks(spatial.max(1))
        .map(|c| super::torch_order::sum(c) / spatial as f32)
        .collect();
    let mut shape = x.shape()[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, x.ndim() - 2));
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("pool output shape"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition [`max_pool`] reproduces: each window's in-bounds values folded in window
    /// order with PyTorch's comparison.
    fn max_pool_by_windows(x: &ArrayD<f32>, p: &PoolParams) -> ArrayD<f32> {
        pool_with("ref", x, p, |plane, idx, _| {
            idx.iter().fold(f32::NEG_INFINITY, |m, &i| {
                if plane[i] > m || plane[i].is_nan() {
                    plane[i]
                } else {
                    m
                }
            })
        })
        .expect("valid pool")
    }

    /// Bit for bit (NaN payloads and zero signs included) over 1-d, 2-d and 3-d windows with
    /// strides, dilations, asymmetric padding and ceil mode, on inputs full of ties, ±0 and
    /// NaNs of different payloads.
    #[test]
    fn tap_runs_match_the_window_fold() {
        let values = [
            0.0,
            -0.0,
            1.5,
            -2.0,
            1.5,
            f32::NAN,
            f32::from_bits(0x7fc0_1234),
            f32::NEG_INFINITY,
            3.0,
        ];
        // (input spatial, kernel, stride, dilation, pad_begin, pad_end, ceil_mode)
        type Case = (
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                vec![9, 10],
                vec![3, 3],
                vec![2, 2],
                vec![1, 1],
                vec![1, 1],
                vec![1, 1],
                false,
            ),
            (
                vec![9, 10],
                vec![3, 2],
                vec![2, 3],
                vec![2, 1],
                vec![1, 0],
                vec![0, 1],
                true,
            ),
            (
                vec![7, 7],
                vec![2, 2],
                vec![2, 2],
                vec![1, 1],
                vec![0, 0],
                vec![0, 0],
                true,
            ),
            (vec![13], vec![4], vec![3], vec![2], vec![2], vec![1], true),
            (
                vec![3, 5, 6],
                vec![2, 3, 2],
                vec![1, 2, 2],
                vec![1, 1, 2],
                vec![1, 1, 0],
                vec![0, 1, 1],
                false,
            ),
            (
                vec![1, 1],
                vec![1, 1],
                vec![1, 1],
                vec![1, 1],
                vec![0, 0],
                vec![0, 0],
                false,
            ),
            // A leading pad wider than the input (ONNX allows it): taps that reach nothing.
            (
                vec![1, 2],
                vec![4, 4],
                vec![1, 1],
                vec![1, 1],
                vec![5, 5],
                vec![0, 0],
                false,
            ),
        ];
        for (spatial, kernel, stride, dilation, pad_begin, pad_end, ceil_mode) in cases {
            let p = PoolParams {
                kernel,
                stride,
                pad_begin,
                pad_end,
                dilation,
                ceil_mode,
                count_include_pad: false,
            };
            let mut shape = vec![2, 3];
            shape.extend(&spatial);
            let len: usize = shape.iter().product();
            for seed in 0..4u64 {
                let data: Vec<f32> = (0..len as u64)
                    .map(|i| {
                        let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15 ^ seed) >> 58;
                        values[h as usize % values.len()]
                    })
                    .collect();
                let x = ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap();
                let got = max_pool("t", &x, &p).unwrap();
                let want = max_pool_by_windows(&x, &p);
                assert_eq!(got.shape(), want.shape(), "{p:?}");
                let bits = |a: &ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{p:?} seed {seed}");
            }
        }
    }
}
