//! Convolution (1-d, 2-d, 3-d; stride, asymmetric padding, dilation, groups) as fused
//! multiply-add chains (`kernels::fchain`) over the im2col matrix, in PyTorch's summation order
//! (see `conv_order`), so the float activations calibration observes are PyTorch's bit for bit.
//!
//! Every rank is handled as 3-d by inserting unit dims. The im2col matrix is never built: the
//! chains pack the patches they need from the input (`kernels::patches`), and a pointwise conv
//! (1×1, stride 1, no padding) reads its input planes directly. Depthwise convs run their own
//! direct loop.

use super::conv_order::{Pointwise, SIMD, pointwise_reduce_block};
use crate::graph::{ConvParams, GraphError};
use crate::kernels::fchain::{self, Chains, Finish, Source, Start};
use crate::kernels::patches::{Patches, Window, tap_index, tap_range};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;
use std::ops::Range;

/// Output length of one spatial dim (PyTorch's floor rule).
pub fn conv_output_len(
    len: usize,
    k: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
    dilation: usize,
) -> Option<usize> {
    if k == 0 || dilation == 0 || stride == 0 {
        return None;
    }
    let span = dilation.checked_mul(k - 1)?.checked_add(1)?;
    let padded = len.checked_add(pad_begin)?.checked_add(pad_end)?;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

/// Geometry of one convolution, every rank lifted to 3 spatial dims (forward and backward
/// share it).
pub(crate) struct Geometry {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) o: usize,
    pub(crate) groups: usize,
    pub(crate) input: [usize; 3],
    pub(crate) kernel: [usize; 3],
    pub(crate) out: [usize; 3],
    pub(crate) stride: [usize; 3],
    /// Padding at the start of each dim (the end padding only shapes `out`).
    pub(crate) pad: [usize; 3],
    pub(crate) dilation: [usize; 3],
}

fn lift(v: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

/// Checks `x` against `p` and lifts the geometry to 3 spatial dims.
pub(crate) fn geometry(
    node: &str,
    x: &ArrayD<f32>,
    p: &ConvParams,
) -> Result<Geometry, GraphError> {
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
    let lists = [&p.stride, &p.dilation, &p.pad_begin, &p.pad_end];
    if lists.iter().any(|l| l.len() != spatial) {
        return Err(bad(format!(
            "stride/dilation/padding lists must each have {spatial} entries"
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
    let mut out_shape = vec![n, w[0]];
    out_shape.extend_from_slice(&out[3 - spatial..]);
    crate::graph::budget::check(node, &out_shape, 4)?;
    // The im2col buffer of one group: every tap of every output position.
    let mut columns = vec![c / groups];
    columns.extend(kernel.iter().chain(&out));
    crate::graph::budget::check(node, &columns, 4)?;
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
    let bias = p.bias.as_ref().map(|b| b.to_vec());
    let bias = bias.as_deref();
    let y = if g.c == g.groups && g.o == g.groups {
        depthwise_forward(&g, xs, ws, bias)
    } else {
        dense_forward(&g, xs, ws, bias)
    };
    let mut shape = vec![g.n, g.o];
    shape.extend_from_slice(&g.out[3 - (p.weight.ndim() - 2)..]);
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("conv output shape"))
}

/// One channel per group: each (sample, channel) plane runs [`depthwise`] directly.
fn depthwise_forward(g: &Geometry, xs: &[f32], ws: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let kvol: usize = g.kernel.iter().product();
    let ivol: usize = g.input.iter().product();
    let ovol: usize = g.out.iter().product();
    let mut y = vec![0.0f32; g.n * g.o * ovol];
    // Each rayon task keeps one scratch buffer for all the channels it runs.
    y.par_chunks_mut(ovol.max(1))
        .enumerate()
        .for_each_init(Vec::new, |scratch, (item, out)| {
            let grp = item % g.groups;
            let channel = Channel {
                g,
                x: &xs[item * ivol..][..ivol],
                w: &ws[grp * kvol..][..kvol],
                init: bias.map_or(0.0, |b| b[grp]),
            };
            depthwise(channel, out, scratch);
        });
    y
}

/// Every other conv: per (sample, group) a matrix product of the weight (`og` rows by
/// `cg·kvol` columns) and the group's im2col matrix ([`Patches`], read in place; a pointwise
/// conv reads its input planes as they are), as FMA chains over the reduction blocks of
/// `conv_order`. The work is cut into rectangles of output rows × positions
/// ([`dense_tasks`]); each chains all the blocks into its own buffer, which is then copied into
/// place. No element's chain depends on the cut, so neither do the results.
fn dense_forward(g: &Geometry, xs: &[f32], ws: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (cg, og) = (g.c / g.groups, g.o / g.groups);
    let kvol: usize = g.kernel.iter().product();
    let ivol: usize = g.input.iter().product();
    let ovol: usize = g.out.iter().product();
    let rows = cg * kvol;
    let pointwise = kvol == 1 && g.stride == [1; 3] && g.pad == [0; 3] && g.input == g.out;
    let block = pointwise_reduce_block(Pointwise {
        ic: cg,
        oc: og,
        spatial: g.out[0] * g.out[1],
        os: ovol,
        mb: g.n,
        nthr: torch_threads(),
    });
    // oneDNN runs every unpadded 1×1 conv of one group through its 1×1 kernel, a
    // strided one after copying the strided input dense ("reduce to unit stride").
    let one_by_one = kvol == 1 && g.pad == [0; 3] && g.groups == 1;
    // The reduction blocks and their order (module `conv_order`): pointwise sums input
    // channels in reduce blocks, the first one started at the bias; the direct kernel
    // sums (tap, channel) over blocks of 16 channels and adds the bias to the first.
    let blocks: Vec<Vec<usize>> = if one_by_one {
        (0..cg)
            .step_by(block.max(1))
            .map(|c0| (c0..(c0 + block).min(cg)).collect())
            .collect()
    } else {
        (0..cg)
            .step_by(SIMD)
            .map(|c0| {
                (0..kvol)
                    .flat_map(|t| (c0..(c0 + SIMD).min(cg)).map(move |c| c * kvol + t))
                    .collect()
            })
            .collect()
    };
    let cut = dense_tasks(g.n * g.groups, og, ovol, rayon::current_num_threads());
    let window = Window {
        input: g.input,
        kernel: g.kernel,
        out: g.out,
        stride: g.stride,
        pad: g.pad,
        dilation: g.dilation,
    };
    let pieces: Vec<Vec<f32>> = (0..cut.count())
        .into_par_iter()
        .map(|t| {
            let (item, rs, cs) = cut.task(t);
            let grp = item % g.groups;
            let xg = &xs[item * cg * ivol..][..cg * ivol];
            // Pointwise: the input planes are the im2col rows (one per channel) as they lie.
            let source = if pointwise {
                Source::Rows { x: xg, len: ivol }
            } else {
                Source::Patches(Patches {
                    x: xg,
                    channels: cg,
                    window,
                })
            };
            let first = grp * og + rs.start;
            let tile_bias = bias.map(|b| &b[first..first + rs.len()]);
            let mut piece = vec![0.0f32; rs.len() * cs.len()];
            for (i, ks) in blocks.iter().enumerate() {
                // The first block starts at the bias (1×1) or adds it after its products
                // (direct); every later block is added to the running sum.
                let (start, finish) = match (one_by_one, i, tile_bias) {
                    (_, 1.., _) => (Start::Zero, Finish::Accumulate),
                    (true, 0, Some(b)) => (Start::Bias(b), Finish::Store),
                    (false, 0, Some(b)) => (Start::Zero, Finish::AddRow(b)),
                    (_, 0, None) => (Start::Zero, Finish::Store),
                };
                let chains = Chains {
                    n: cs.len(),
                    p0: cs.start,
                    start,
                    finish,
                    w: &ws[first * rows..][..rs.len() * rows],
                    w_stride: rows,
                    x: source,
                    ks,
                };
                fchain::chain(&mut piece, &chains);
            }
            piece
        })
        .collect();
    let mut y = vec![0.0f32; g.n * g.o * ovol];
    // Output row `r` of item `i` gathers its column pieces (in parallel: the copy touches as
    // many bytes as the output).
    y.par_chunks_mut(ovol.max(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let (item, o) = (row / og, row % og);
            for (t, rs, cs) in cut.row_pieces(item, o) {
                let from = &pieces[t][(o - rs.start) * cs.len()..][..cs.len()];
                dst[cs].copy_from_slice(from);
            }
        });
    y
}

/// Output elements one dense task aims at: its buffer, with the packed input, stays in L2.
const TASK_ELEMS: usize = 64 * 1024;
/// The fewest output rows worth a task of their own: each task packs its input positions
/// again, which pays off only over enough rows.
const MIN_TASK_ROWS: usize = 24;

/// How [`dense_forward`] cuts `items` matrices of `rows × positions` outputs into tasks:
/// positions into column pieces that keep a task's buffer near [`TASK_ELEMS`], then rows into
/// pieces until there are about four tasks per thread when more than one runs (the cut never
/// changes a result, only how the work spreads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DenseCut {
    items: usize,
    rows: usize,
    row_step: usize,
    row_pieces: usize,
    positions: usize,
    col_step: usize,
    col_pieces: usize,
}

fn dense_tasks(items: usize, rows: usize, positions: usize, threads: usize) -> DenseCut {
    let (rows1, pos1) = (rows.max(1), positions.max(1));
    let col_pieces = pos1.div_ceil((TASK_ELEMS / rows1).max(64)).min(pos1);
    let col_step = pos1.div_ceil(col_pieces).next_multiple_of(16).min(pos1);
    let col_pieces = pos1.div_ceil(col_step);
    // One thread gains nothing from a cut; more want a few tasks each, to even out.
    let want = if threads > 1 { 4 * threads } else { 1 };
    let have = items.max(1) * col_pieces;
    let row_pieces = want
        .div_ceil(have)
        .min(rows1.div_ceil(MIN_TASK_ROWS))
        .max(1);
    // Whole 12-row groups (the AVX-512 and AVX2 register tiles are 6 and 4 rows).
    let row_step = rows1.div_ceil(row_pieces).next_multiple_of(12).min(rows1);
    DenseCut {
        items,
        rows,
        row_step,
        row_pieces: rows1.div_ceil(row_step),
        positions,
        col_step,
        col_pieces,
    }
}

impl DenseCut {
    fn count(&self) -> usize {
        self.items * self.row_pieces * self.col_pieces
    }

    /// Task `t`: its item, output rows and positions.
    fn task(&self, t: usize) -> (usize, Range<usize>, Range<usize>) {
        let (item, rest) = (
            t / (self.row_pieces * self.col_pieces),
            t % (self.row_pieces * self.col_pieces),
        );
        let (r, c) = (rest / self.col_pieces, rest % self.col_pieces);
        let rs = r * self.row_step..((r + 1) * self.row_step).min(self.rows);
        let cs = c * self.col_step..((c + 1) * self.col_step).min(self.positions);
        (item, rs, cs)
    }

    /// The tasks holding output row `o` of `item`, with their rows and positions.
    fn row_pieces(
        &self,
        item: usize,
        o: usize,
    ) -> impl Iterator<Item = (usize, Range<usize>, Range<usize>)> + '_ {
        let r = o / self.row_step;
        (0..self.col_pieces).map(move |c| {
            let t = (item * self.row_pieces + r) * self.col_pieces + c;
            let (_, rs, cs) = self.task(t);
            (t, rs, cs)
        })
    }
}

/// The thread count PyTorch would run with here (its default: the host's CPUs), which
/// oneDNN's 1×1 blocking reads. Looked up once: on Linux it reads cgroup files.
fn torch_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One channel of a depthwise conv: its geometry, input plane, `kvol` weights, and the value
/// every output starts from (the bias).
#[derive(Clone, Copy)]
struct Channel<'a> {
    g: &'a Geometry,
    x: &'a [f32],
    w: &'a [f32],
    init: f32,
}

crate::isa::avx2_fma_twin! {
    /// One channel of a depthwise conv (one input and one output channel per group), computed
    /// directly: a GEMM with a single output row wastes most of its tile, and im2col would copy the
    /// input `kvol` times. Each output is one fused multiply-add chain started at `init` (the
    /// bias, as PyTorch's depthwise kernel starts it) over the taps in row-major kernel order.
    /// `scratch` is working memory, of any length and content.
    ///
    /// Also compiled for AVX2 + FMA, used when the process's tier has them (wider vectors, the
    /// same IEEE operations, so the same results).
    fn depthwise(
        ch: Channel<'_>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) when crate::isa::selected().is_x86_simd() && std::arch::is_x86_feature_detected!("fma") => {
        if ch.w.iter().all(|v| v.is_finite()) {
            depthwise_planes(ch, out, scratch)
        } else {
            depthwise_rows(ch, out)
        }
    }
}

/// Output rows per band of [`depthwise_planes`]: about 8 KiB of sums, which stay in L1 with the
/// input rows the taps read.
const BAND_ELEMS: usize = 2048;

/// [`depthwise_rows`] for finite weights, bit for bit, in long vector runs. The input is
/// zero-padded once and split into stride phases (plane (r, c) holds padded rows r, r + sh, …
/// and columns c, c + sw, …), so a tap reads one contiguous run for a whole band of output rows
/// (computed at the plane width; the extra columns are dropped). A padding tap adds `w·0 = ±0`,
/// which changes no sum other than the sign of a zero. A non-finite weight would make
/// those products NaN, hence the finite-weight condition.
#[inline(always)]
fn depthwise_planes(
    Channel { g, x, w, init }: Channel<'_>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let [id, ih, iw] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [od, oh, ow] = g.out;
    let [_, sh, sw] = g.stride;
    let [_, dh, dw] = g.dilation;
    let [_, ph, pw] = g.pad;
    // A plane holds every row / column any output reads at its largest tap offset.
    let (rows, cols) = (oh + (kh - 1) * dh / sh, ow + (kw - 1) * dw / sw);
    // One spare row: a band's run at the largest column offset reads past the last row.
    let stride = (rows + 1) * cols;
    let band = (BAND_ELEMS / cols).max(1);
    let planes_len = id * sh * sw * stride;
    // Every element used is written below, so the buffer is only grown, never cleared.
    if scratch.len() < planes_len + band * cols {
        scratch.resize(planes_len + band * cols, 0.0);
    }
    let (planes, acc) = scratch.split_at_mut(planes_len);
    for (k, plane) in planes.chunks_exact_mut(stride).enumerate() {
        let (zi, r, c) = (k / (sh * sw), k / sw % sh, k % sw);
        // Plane columns whose input column q·sw + c - pw lies inside the row.
        let lo = pw.saturating_sub(c).div_ceil(sw).min(cols);
        let hi = (iw + pw).saturating_sub(c).div_ceil(sw).min(cols).max(lo);
        for (q, dst) in plane.chunks_exact_mut(cols).enumerate() {
            let Some(yi) = (q * sh + r).checked_sub(ph).filter(|&y| q < rows && y < ih) else {
                dst.fill(0.0);
                continue;
            };
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            if lo == hi {
                continue;
            }
            let src = &x[(zi * ih + yi) * iw + lo * sw + c - pw..];
            let dst = &mut dst[lo..hi];
            if sw == 1 {
                // The common case as one memcpy (a strided loop copies element by element).
                dst.copy_from_slice(&src[..dst.len()]);
            } else {
                for (d, &v) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                    *d = v;
                }
            }
        }
    }
    for z in 0..od {
        for y0 in (0..oh).step_by(band) {
            let n = band.min(oh - y0);
            let acc = &mut acc[..n * cols];
            acc.fill(init);
            for a in 0..kd {
                let Some(zi) = tap_index(z, g.stride[0], a, g.dilation[0], g.pad[0], id) else {
                    continue;
                };
                for b in 0..kh {
                    let (r, dy) = (b * dh % sh, b * dh / sh);
                    for e in 0..kw {
                        let (c, dx) = (e * dw % sw, e * dw / sw);
                        let wv = w[(a * kh + b) * kw + e];
                        let plane = &planes[((zi * sh + r) * sw + c) * stride..][..stride];
                        let src = &plane[(y0 + dy) * cols + dx..][..n * cols];
                        for (d, &v) in acc.iter_mut().zip(src) {
                            *d = wv.mul_add(v, *d);
                        }
                    }
                }
            }
            for (yy, row) in acc.chunks_exact(cols).enumerate() {
                out[(z * oh + y0 + yy) * ow..][..ow].copy_from_slice(&row[..ow]);
            }
        }
    }
}

/// The reference form of [`depthwise`]: each output row sums only the taps inside the input.
#[inline(always)]
fn depthwise_rows(Channel { g, x, w, init }: Channel<'_>, out: &mut [f32]) {
    out.fill(init);
    let [id, ih, iw] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [od, oh, ow] = g.out;
    // With a column stride s, the input is split once into s column phases (phase r of a row
    // holds columns r, r + s, …), so every tap reads a contiguous run and the loop vectorises.
    let s = g.stride[2];
    let pw = iw.div_ceil(s);
    let rows = id * ih;
    let mut phases = vec![0.0f32; if s == 1 { 0 } else { s * rows * pw }];
    if s > 1 {
        for r in 0..s {
            let phase = &mut phases[r * rows * pw..(r + 1) * rows * pw];
            for (dst, src) in phase.chunks_exact_mut(pw).zip(x.chunks_exact(iw)) {
                // `skip`, not `src[r..]`: a row may be narrower than the stride.
                for (d, &v) in dst.iter_mut().zip(src.iter().skip(r).step_by(s)) {
                    *d = v;
                }
            }
        }
    }
    // Output row by output row, so the row being summed stays in L1 across all its taps (a
    // whole channel plane spills it); each element still adds its taps in kernel order.
    for z in 0..od {
        for yy in 0..oh {
            let dst = &mut out[(z * oh + yy) * ow..][..ow];
            for a in 0..kd {
                let Some(zi) = tap_index(z, g.stride[0], a, g.dilation[0], g.pad[0], id) else {
                    continue;
                };
                for b in 0..kh {
                    let Some(yi) = tap_index(yy, g.stride[1], b, g.dilation[1], g.pad[1], ih)
                    else {
                        continue;
                    };
                    for e in 0..kw {
                        let wv = w[(a * kh + b) * kw + e];
                        let xs = tap_range(ow, g.stride[2], g.dilation[2], g.pad[2], iw, e);
                        if xs.is_empty() {
                            // No output reaches the input through this tap (its first column
                            // may lie left of the input).
                            continue;
                        }
                        // Slices rather than indices, so the loop vectorises (the per-element
                        // arithmetic, one fused multiply-add, is unchanged).
                        let first = xs.start * s + e * g.dilation[2] - g.pad[2];
                        let src = if s == 1 {
                            &x[(zi * ih + yi) * iw + first..][..xs.len()]
                        } else {
                            let phase = &phases[(first % s) * rows * pw..];
                            &phase[(zi * ih + yi) * pw + first / s..][..xs.len()]
                        };
                        for (d, &v) in dst[xs].iter_mut().zip(src) {
                            *d = wv.mul_add(v, *d);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense conv's output never depends on how it is cut into tasks: the same conv in
    /// pools of 1, 2, 3 and 5 threads (different cuts, shown by `dense_tasks`), strided and
    /// padded, grouped and pointwise, bit for bit.
    #[test]
    fn dense_results_do_not_depend_on_the_cut() {
        // (batch, in, out, side, kernel, stride, pad, groups)
        let cases = [
            (1, 24, 40, 17, 3, 1, 1, 1),
            (2, 20, 72, 15, 3, 2, 1, 2),
            (1, 32, 64, 33, 1, 1, 0, 1),
            (3, 8, 30, 9, 5, 2, 2, 1),
        ];
        for (n, c, o, side, k, s, pad, groups) in cases {
            let x = ArrayD::from_shape_fn(IxDyn(&[n, c, side, side]), |d| {
                ((d[0] * 7 + d[1] * 13 + d[2] * 3 + d[3]) as f32 * 0.37).sin()
            });
            let p = ConvParams {
                weight: ArrayD::from_shape_fn(IxDyn(&[o, c / groups, k, k]), |d| {
                    ((d[0] * 5 + d[1] * 11 + d[2] * 2 + d[3]) as f32 * 0.29).cos()
                }),
                bias: Some(ndarray::Array1::from_shape_fn(o, |i| i as f32 * 0.1)),
                stride: vec![s, s],
                pad_begin: vec![pad, pad],
                pad_end: vec![pad, pad],
                dilation: vec![1, 1],
                groups,
            };
            let ovol = ((side + 2 * pad - k) / s + 1).pow(2);
            let runs: Vec<(DenseCut, Vec<u32>)> = [1, 2, 3, 5]
                .into_iter()
                .map(|threads| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let y = pool.install(|| conv_forward("t", &x, &p)).unwrap();
                    let cut = dense_tasks(n * groups, o / groups, ovol, threads);
                    (cut, y.iter().map(|v| v.to_bits()).collect())
                })
                .collect();
            assert!(
                runs.iter().any(|(cut, _)| *cut != runs[0].0),
                "the thread counts cut {c}→{o} differently"
            );
            for (cut, bits) in &runs[1..] {
                assert_eq!(bits, &runs[0].1, "{cut:?}");
            }
        }
    }

    /// Every task's rectangle lies inside its item and the tasks cover each output once.
    #[test]
    fn dense_tasks_tile_the_output() {
        for (items, rows, positions, threads) in [
            (1, 512, 49, 2),
            (1, 64, 3136, 2),
            (8, 64, 3136, 2),
            (3, 7, 5, 4),
            (1, 1, 1, 1),
        ] {
            let cut = dense_tasks(items, rows, positions, threads);
            let mut seen = vec![0u8; items * rows * positions];
            for t in 0..cut.count() {
                let (item, rs, cs) = cut.task(t);
                assert!(
                    item < items && rs.end <= rows && cs.end <= positions,
                    "{cut:?}"
                );
                for r in rs {
                    for c in cs.clone() {
                        seen[(item * rows + r) * positions + c] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{cut:?}");
        }
    }

    /// The direct depthwise path agrees with the same conv written densely (block-diagonal
    /// weight, groups = 1), which runs through im2col and the chains.
    /// (channels, input hw, kernel, stride, pad, dilation)
    type Case = (
        usize,
        [usize; 2],
        [usize; 2],
        [usize; 2],
        [usize; 2],
        [usize; 2],
    );

    /// The padded-plane depthwise equals the reference row loop bit for bit (zeros of both
    /// signs included), over strides, dilations, asymmetric padding and 3-d kernels.
    #[test]
    fn depthwise_planes_match_rows_bitwise() {
        // (input dhw, kernel dhw, stride, pad begin, pad end, dilation)
        type Geo = [[usize; 3]; 6];
        #[rustfmt::skip]
        let cases: [Geo; 8] = [
            [[1, 7, 6], [1, 3, 3], [1, 1, 1], [0, 1, 1], [0, 1, 1], [1, 1, 1]],
            [[1, 9, 9], [1, 5, 3], [1, 2, 2], [0, 2, 1], [0, 2, 1], [1, 1, 1]],
            [[1, 6, 8], [1, 3, 3], [1, 1, 2], [0, 0, 3], [0, 1, 0], [1, 2, 1]],
            [[1, 7, 11], [1, 3, 3], [1, 1, 3], [0, 1, 2], [0, 2, 2], [1, 1, 2]],
            [[1, 2, 2], [1, 3, 3], [1, 3, 3], [0, 1, 1], [0, 1, 1], [1, 1, 1]],
            [[3, 5, 6], [2, 3, 2], [2, 1, 2], [1, 1, 0], [0, 1, 1], [1, 1, 2]],
            [[1, 40, 37], [1, 3, 3], [1, 2, 2], [0, 1, 1], [0, 1, 1], [1, 1, 1]],
            [[1, 1, 1], [1, 3, 3], [1, 3, 3], [0, 2, 2], [0, 2, 2], [1, 1, 1]],
        ];
        let value = |i: usize| match i % 11 {
            0 => 0.0,
            1 => -0.0,
            _ => (i * 7919 % 251) as f32 * 0.125 - 15.5,
        };
        // Shared across cases and starting as NaN: stale scratch content must never show.
        let mut scratch = vec![f32::NAN; 5000];
        for [input, kernel, stride, pad_b, pad_e, dilation] in cases {
            let x = ArrayD::from_shape_fn(IxDyn(&[1, 1, input[0], input[1], input[2]]), |i| {
                value((i[2] * input[1] + i[3]) * input[2] + i[4])
            });
            let weight =
                ArrayD::from_shape_fn(IxDyn(&[1, 1, kernel[0], kernel[1], kernel[2]]), |i| {
                    value(((i[2] * kernel[1] + i[3]) * kernel[2] + i[4]) * 3 + 1)
                });
            let p = ConvParams {
                weight,
                bias: None,
                stride: stride.to_vec(),
                pad_begin: pad_b.to_vec(),
                pad_end: pad_e.to_vec(),
                dilation: dilation.to_vec(),
                groups: 1,
            };
            let g = geometry("dw", &x, &p).unwrap();
            let (x, w) = (x.as_slice().unwrap(), p.weight.as_slice().unwrap());
            let ovol = g.out.iter().product();
            let (mut a, mut b) = (vec![0.0f32; ovol], vec![0.0f32; ovol]);
            let ch = Channel {
                g: &g,
                x,
                w,
                init: 0.75,
            };
            depthwise_planes(ch, &mut a, &mut scratch);
            depthwise_rows(ch, &mut b);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{input:?} {kernel:?} {stride:?}");
        }
    }

    #[test]
    fn depthwise_matches_dense_equivalent() {
        let cases: [Case; 5] = [
            (3, [7, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
            (4, [9, 9], [5, 3], [2, 2], [2, 1], [1, 1]),
            (2, [6, 8], [3, 3], [1, 2], [0, 3], [2, 1]),
            (5, [4, 5], [1, 1], [2, 1], [0, 0], [1, 1]),
            (3, [7, 11], [3, 3], [1, 3], [1, 2], [1, 2]),
        ];
        for (c, [h, w], k, stride, pad, dilation) in cases {
            let x = ArrayD::from_shape_fn(IxDyn(&[2, c, h, w]), |i| {
                ((i[1] * 31 + i[2] * 7 + i[3] * 3 + i[0]) % 13) as f32 * 0.25 - 1.0
            });
            let wd = ArrayD::from_shape_fn(IxDyn(&[c, 1, k[0], k[1]]), |i| {
                ((i[0] * 5 + i[2] * 3 + i[3]) % 7) as f32 * 0.5 - 1.5
            });
            let dense = ArrayD::from_shape_fn(IxDyn(&[c, c, k[0], k[1]]), |i| {
                if i[0] == i[1] {
                    wd[[i[0], 0, i[2], i[3]]]
                } else {
                    0.0
                }
            });
            let params = |weight: ArrayD<f32>, groups: usize| ConvParams {
                weight,
                bias: Some(ndarray::Array1::from_iter((0..c).map(|v| v as f32 * 0.1))),
                stride: stride.to_vec(),
                pad_begin: pad.to_vec(),
                pad_end: pad.to_vec(),
                dilation: dilation.to_vec(),
                groups,
            };
            let a = conv_forward("dw", &x, &params(wd.clone(), c)).unwrap();
            let b = conv_forward("dense", &x, &params(dense, 1)).unwrap();
            assert_eq!(a.shape(), b.shape());
            for (p, q) in a.iter().zip(b.iter()) {
                assert!((p - q).abs() <= 1e-5 * q.abs().max(1.0), "{p} vs {q}");
            }
        }
    }
}
