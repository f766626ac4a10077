//! The blocked, parallel GEMM driver: splits the output into fixed tasks, packs each task's
//! rows, runs a [`MicroKernel`]'s tiles, applies the zero-point corrections and hands each
//! corrected tile to its sink (i32 rows or columns, or requantized bytes).
//!
//! It is generic over the kernel and knows no tier by name: [`super::route`] picks the kernel,
//! and the task is compiled once per kernel with the features [`MicroKernel::TASK`] names.

use super::RunRows;
use super::micro::{MicroKernel, TaskBuild};
use super::pack::Panels;
use crate::kernels::requant::{Requant, TileBlock};
use crate::kernels::transpose::transpose_raw;
use rayon::prelude::*;
use std::borrow::Cow;

/// Rows of activations packed per block (a multiple of every kernel's `MR`).
const MC: usize = 192;

/// Packed weights at least this large are prefetched a panel ahead (see [`task`]); smaller
/// ones are assumed to stay in L2 from one call to the next.
const PREFETCH_WEIGHT_BYTES: usize = 256 << 10;

/// The widest panel of any kernel.
const MAX_NR: usize = 64;

/// The left operand of the tiled driver.
#[derive(Clone, Copy)]
pub(super) enum Left<'a> {
    /// Row-major `[m, k]`.
    Rows(&'a [u8]),
    Runs(RunRows<'a>),
}

/// The right-hand operand of the tiled driver: where its panels for a kernel come from.
pub(super) trait RightOperand {
    fn n(&self) -> usize;
    fn k(&self) -> usize;
    /// Panels `nr` columns wide (`slot` indexes a [`super::PackCache`]).
    fn panels(&self, nr: usize, slot: usize) -> Cow<'_, Panels>;
    /// One zero point or one per column.
    fn zero_points(&self) -> &[i32];
}

/// The blocked driver shared by every SIMD kernel: output tiles are split into fixed tasks (a
/// block of up to MC rows × some panels), each run by `K`'s [`task_fn`]; every output is
/// computed by one task with exact sums, so the result is the same for any thread count and
/// task order.
///
/// # Safety
/// As [`tiled_on`](super::route::tiled_on), for `K`'s target features.
pub(super) unsafe fn tiled<K: MicroKernel>(
    m: usize,
    a: Left,
    a_zp: i32,
    b: &dyn RightOperand,
    sink: Sink,
) -> u64 {
    let (n, k) = (b.n(), b.k());
    let panels = b.panels(K::NR, K::SLOT);
    let zero_points = b.zero_points();
    debug_assert_eq!((panels.nr, panels.n, panels.k), (K::NR, n, k));
    let kp = panels.kp;
    // The corrections split into a per-column constant and a per-column multiple of the row sum
    // (wrapping: equal to the reference wherever its i32 sums do not overflow), laid out so the
    // per-row loop of `task` is a plain element-wise pass the compiler vectorises.
    // Both are padded with zeros to whole panels, so `task` corrects whole tile rows: a fixed
    // trip count stores each row in full registers, which the epilogue's loads then forward
    // from (partial-register stores would stall them).
    let blocks = panels.data.len() / (kp * K::NR);
    let zw: Vec<i32> = (0..blocks * K::NR)
        .map(|c| match zero_points.len() {
            _ if c >= n => 0,
            1 => zero_points[0],
            _ => zero_points[c],
        })
        .collect();
    let kz = k as i32;
    let colterm: Vec<i32> = (0..blocks * K::NR)
        .map(|c| {
            let colsum = panels.colsum.get(c).copied().unwrap_or(0);
            a_zp.wrapping_mul(colsum)
                .wrapping_sub(kz.wrapping_mul(a_zp).wrapping_mul(zw[c]))
        })
        .collect();
    let threads = rayon::current_num_threads();
    let parallel = m * n * k >= PARALLEL_MACS && threads > 1;
    let Split {
        rows,
        panels: per_task,
    } = if parallel {
        split(m, blocks, threads, K::MR)
    } else {
        // On one thread a task takes all panels, so each row block is packed once.
        Split {
            rows: MC,
            panels: blocks.max(1),
        }
    };
    let tasks: Vec<(usize, usize)> = (0..m)
        .step_by(rows)
        .flat_map(|m0| (0..blocks).step_by(per_task).map(move |p0| (m0, p0)))
        .collect();
    let job = Job {
        m,
        n,
        k,
        kp,
        mc: rows,
        per_task,
        left: a,
        panels: &panels,
        colterm: &colterm,
        rowsums: zw.iter().any(|&z| z != 0),
        uniform_zw: match zero_points.split_first() {
            Some((&z, rest)) if rest.iter().all(|&v| v == z) => Some(z),
            Some(_) => None,
            None => Some(0),
        },
        zw: &zw,
        sink,
    };
    let task = task_fn::<K>();
    // SAFETY: forwarded from this function's contract; tasks write disjoint tiles of `acc`.
    let each = |t| unsafe { task(&job, t) };
    if parallel && tasks.len() > 1 {
        tasks.into_par_iter().map(each).sum()
    } else {
        tasks.into_iter().map(each).sum()
    }
}

/// What the tasks of one tiled GEMM share.
struct Job<'a> {
    m: usize,
    n: usize,
    k: usize,
    kp: usize,
    /// Rows per task (the last task of a column takes the rest).
    mc: usize,
    /// Panels per task.
    per_task: usize,
    left: Left<'a>,
    panels: &'a Panels,
    colterm: &'a [i32],
    zw: &'a [i32],
    /// Whether any `zw` is non-zero: otherwise the row sums are multiplied by 0 and not taken.
    rowsums: bool,
    /// The zero point every column shares, if they all share one (the activations' of the
    /// k-major GEMM, 0 for symmetric weights): the row term is then one product per row
    /// instead of a multiply per element.
    uniform_zw: Option<i32>,
    sink: Sink<'a>,
}

/// Where the tasks put their corrected accumulators, row-major with `n` columns.
#[derive(Clone, Copy)]
pub(super) enum Sink<'a> {
    Acc(SharedOut<i32>),
    /// Requantized to u8 in the tile epilogue, row `i` as channel `first_channel + i` (the rows
    /// of the k-major GEMM are a conv's output channels).
    Requant {
        rq: &'a Requant,
        first_channel: usize,
        out: SharedOut<u8>,
    },
    /// Requantized to u8 in the tile epilogue, column `c` as channel `c` (a Linear layer).
    RequantByColumn {
        rq: &'a Requant,
        out: SharedOut<u8>,
    },
    /// Transposed (`[n, m]`, column `c` at `c·m`): the rows of [`super::gemm_runs_on`] are a
    /// conv's positions and its columns the channels.
    AccColumns(SharedOut<i32>),
    /// Transposed and requantized, column `c` as channel `first_channel + c`.
    RequantColumns {
        rq: &'a Requant,
        first_channel: usize,
        out: SharedOut<u8>,
    },
}

/// One task of [`tiled`]: `(first row, first panel)`; returns the saturated pairs.
type TaskFn = unsafe fn(&Job, (usize, usize)) -> u64;

/// Packs the task's row block, runs `K`'s tiles over its panels and writes the corrected
/// accumulators. A plain function (not a closure) so that it can be compiled per ISA below:
/// closures do not inherit the target features of the function they are written in.
///
/// # Safety
/// The host must support `K`'s target features, and on x86-64 this must be compiled with AVX2
/// (as [`task_avx2`] and [`task_avx512`] are); `job.sink` must hold `m·n` values, and no other
/// task may write this task's tiles.
#[inline(always)]
unsafe fn task<K: MicroKernel>(job: &Job, (m0, p0): (usize, usize)) -> u64 {
    let (n, kp) = (job.n, job.kp);
    let mb = job.mc.min(job.m - m0);
    // The thread's buffers, taken (not borrowed: a task that waits inside may run another on
    // this thread) and put back at the end; a fresh zeroed block per task cost more than
    // packing it for short-K convs.
    let mut scratch = SCRATCH.take();
    pack_rows(job, m0, mb, K::MR, &mut scratch.block, &mut scratch.rowsum);
    let (block, rowsum) = (&scratch.block[..], &scratch.rowsum[..]);
    let mut tile = vec![0i32; K::MR * K::NR];
    // Requantized column-sink rows are staged as bytes, `[mb, NR]`, and transposed into the
    // output once the panel is done (a byte transpose moves a quarter of an i32 one's data).
    let staged = matches!(job.sink, Sink::RequantColumns { .. });
    let bytes = &mut scratch.bytes;
    bytes.resize(if staged { mb * K::NR } else { 0 }, 0);
    let mut saturated = 0u64;
    let data = &job.panels.data;
    let last = (p0 + job.per_task).min(data.len() / (kp * K::NR));
    let tiles = mb.div_ceil(K::MR);
    let panels = data.chunks_exact(kp * K::NR).enumerate();
    for (p, panel) in panels.skip(p0).take(job.per_task) {
        // Weights too large to stay cached from one call to the next, read by several row
        // tiles: the first tile would pull the panel from L3 or memory faster than it arrives,
        // so each tile prefetches its share of the task's next panel instead. (One row tile
        // streams its panel once, at a pace the hardware prefetcher keeps up with.)
        let next = match p + 1 < last && tiles > 1 && data.len() >= PREFETCH_WEIGHT_BYTES {
            true => &data[(p + 1) * kp * K::NR..][..kp * K::NR],
            false => &[][..],
        };
        let c0 = p * K::NR;
        let cols = K::NR.min(n - c0);
        // The panel's column terms in a local array: the compiler then knows the tile rows
        // cannot alias them and vectorises the correction.
        let mut panel_terms = [0i32; MAX_NR];
        panel_terms[..K::NR].copy_from_slice(&job.colterm[c0..c0 + K::NR]);
        for r0 in (0..mb).step_by(K::MR) {
            let rows = K::MR.min(mb - r0);
            let share = next.len().div_ceil(tiles);
            let ahead = next.get(r0 / K::MR * share..).unwrap_or(&[]);
            let ahead = &ahead[..share.min(ahead.len())];
            // SAFETY: forwarded from this function's contract.
            saturated +=
                unsafe { K::tile_ahead(rows, &block[r0 * kp..], kp, panel, &mut tile, ahead) };
            for (r, row) in tile.chunks_exact_mut(K::NR).take(rows).enumerate() {
                let cols_at = c0..c0 + K::NR;
                let rs = rowsum[r0 + r];
                match job.uniform_zw {
                    Some(z) => {
                        let rt = z.wrapping_mul(rs);
                        for (t, &ct) in row.iter_mut().zip(&panel_terms[..K::NR]) {
                            *t = t.wrapping_sub(ct).wrapping_sub(rt);
                        }
                    }
                    None => {
                        let terms = job.colterm[cols_at.clone()].iter().zip(&job.zw[cols_at]);
                        for (t, (&ct, &z)) in row.iter_mut().zip(terms) {
                            *t = t.wrapping_sub(ct).wrapping_sub(z.wrapping_mul(rs));
                        }
                    }
                }
            }
            let at = Placed {
                i0: m0 + r0,
                rows,
                c0,
                cols,
            };
            // SAFETY: forwarded from this function's contract; `bytes` holds row r0 + rows.
            unsafe {
                store_tile::<K>(
                    job,
                    &tile,
                    at,
                    &mut bytes[if staged { r0 * K::NR } else { 0 }..],
                )
            };
        }
        if let Sink::RequantColumns { out, .. } = job.sink {
            // SAFETY: columns c0..c0 + cols, rows m0..m0 + mb of the transposed output belong
            // to this task; `bytes` holds its mb rows of NR.
            unsafe {
                transpose_raw(
                    bytes.as_ptr(),
                    K::NR,
                    mb,
                    cols,
                    out.ptr(c0 * job.m + m0),
                    job.m,
                )
            };
        }
    }
    SCRATCH.set(scratch);
    saturated
}

/// Rows `m0..m0 + mb` of the left operand packed into `block` at stride `kp` (zero-padded,
/// whole tiles of `mr` rows), with their byte sums in `rowsum` when the corrections need them
/// (zeros otherwise). Only the padding is zeroed: every row's `k` bytes are written.
#[inline(always)]
fn pack_rows(
    job: &Job,
    m0: usize,
    mb: usize,
    mr: usize,
    block: &mut Vec<u8>,
    rowsum: &mut Vec<i32>,
) {
    let (k, kp) = (job.k, job.kp);
    block.resize(mb.div_ceil(mr) * mr * kp, 0);
    block[mb * kp..].fill(0);
    rowsum.clear();
    rowsum.resize(mb, 0);
    for (r, sum) in rowsum.iter_mut().enumerate() {
        let (row, pad) = block[r * kp..(r + 1) * kp].split_at_mut(k);
        pad.fill(0);
        match job.left {
            Left::Rows(a) => row.copy_from_slice(&a[(m0 + r) * k..(m0 + r + 1) * k]),
            Left::Runs(a) => a.gather(m0 + r, row),
        }
        if job.rowsums {
            *sum = row.iter().map(|&v| v as i32).sum();
        }
    }
}

/// A thread's reused buffers for [`task`].
#[derive(Default)]
struct Scratch {
    block: Vec<u8>,
    rowsum: Vec<i32>,
    bytes: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

/// Where a corrected tile belongs: output rows `i0..i0 + rows`, columns `c0..c0 + cols`.
#[derive(Clone, Copy)]
struct Placed {
    i0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
}

/// Hands a corrected tile (`rows` rows of `NR` in `tile`) to the job's sink: copied or
/// scattered as i32, or requantized whole (each channel's constants loaded once) into the
/// output rows or, for a transposed output, into `staged` (the tile's rows of `NR` bytes).
///
/// # Safety
/// As [`task`], whose tile this is.
#[inline(always)]
unsafe fn store_tile<K: MicroKernel>(job: &Job, tile: &[i32], at: Placed, staged: &mut [u8]) {
    let Placed { i0, rows, c0, cols } = at;
    let n = job.n;
    let rows_of = || tile.chunks_exact(K::NR).take(rows).map(|r| &r[..cols]);
    // SAFETY (every use of `out`): the tile's rows i0.., columns c0..c0 + cols lie inside the
    // output (at (i, c), or at (c, i) for column sinks) and belong to this task only.
    let (rq, first, by_row, out, stride) = match job.sink {
        Sink::Acc(out) => {
            for (r, row) in rows_of().enumerate() {
                unsafe { out.slice((i0 + r) * n + c0, cols) }.copy_from_slice(row);
            }
            return;
        }
        Sink::AccColumns(out) => {
            for (r, row) in rows_of().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    unsafe { *out.ptr((c0 + c) * job.m + i0 + r) = v };
                }
            }
            return;
        }
        Sink::Requant {
            rq,
            first_channel,
            out,
        } => (
            rq,
            first_channel + i0,
            true,
            unsafe { out.ptr(i0 * n + c0) },
            n,
        ),
        Sink::RequantByColumn { rq, out } => (rq, c0, false, unsafe { out.ptr(i0 * n + c0) }, n),
        Sink::RequantColumns {
            rq, first_channel, ..
        } => (rq, first_channel + c0, false, staged.as_mut_ptr(), K::NR),
    };
    let block = TileBlock {
        acc: tile,
        acc_stride: K::NR,
        rows,
        cols,
        first_channel: first,
        by_row,
        out,
        out_stride: stride,
    };
    // SAFETY: the block's rows are this task's (see above; `staged` holds rows × NR bytes);
    // the host supports K's features by this function's contract.
    unsafe { K::requant_tile(rq, &block) };
}

/// [`task`] compiled for AVX2, so its own loops (row sums, corrections) are not SSE2 code.
///
/// # Safety
/// As [`task`], on a host with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task_avx2<K: MicroKernel>(job: &Job, t: (usize, usize)) -> u64 {
    // SAFETY: forwarded from this function's contract.
    unsafe { task::<K>(job, t) }
}

/// [`task`] compiled for AVX-512.
///
/// # Safety
/// As [`task`], on a host with AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
unsafe fn task_avx512<K: MicroKernel>(job: &Job, t: (usize, usize)) -> u64 {
    // SAFETY: forwarded from this function's contract.
    unsafe { task::<K>(job, t) }
}

/// [`task`] built as `K::TASK` names, so the tile inlines into a task with its features.
#[inline(always)]
fn task_fn<K: MicroKernel>() -> TaskFn {
    match K::TASK {
        #[cfg(not(target_arch = "x86_64"))]
        TaskBuild::Baseline => task::<K>,
        #[cfg(target_arch = "x86_64")]
        TaskBuild::Avx2 => task_avx2::<K>,
        #[cfg(target_arch = "x86_64")]
        TaskBuild::Avx512 => task_avx512::<K>,
    }
}

/// How a parallel GEMM is cut into tasks: rows per task and panels per task.
#[derive(Debug, PartialEq)]
struct Split {
    rows: usize,
    panels: usize,
}

/// The tasks of a parallel GEMM of `m` rows and `blocks` panels on `threads` threads. Each task
/// packs its rows, so rows are split first: into a multiple of `threads` chunks of at most
/// [`MC`] (rounded to whole `mr`-row tiles) that each take every panel, which packs each row
/// once and loads the threads evenly. Too few rows for that (a GEMV, a small batch) split the
/// panels instead, into at least two tasks per thread: their rows are few, so packing them
/// again per task costs little.
fn split(m: usize, blocks: usize, threads: usize, mr: usize) -> Split {
    let chunks = m.div_ceil(MC).div_ceil(threads) * threads;
    let rows = m.div_ceil(chunks).div_ceil(mr) * mr;
    if m.div_ceil(rows) >= threads && rows >= MIN_SPLIT_ROWS {
        return Split {
            rows,
            panels: blocks.max(1),
        };
    }
    let rows = MC.min(m.max(1));
    let column_tasks = (2 * threads).div_ceil(m.div_ceil(rows));
    Split {
        rows,
        panels: blocks.div_ceil(column_tasks).max(1),
    }
}

/// Fewer rows per task than this and a parallel GEMM splits its panels instead.
const MIN_SPLIT_ROWS: usize = 48;

/// Below this many multiply-adds a GEMM runs on the calling thread (spawning costs more).
const PARALLEL_MACS: usize = 1 << 21;

/// The output matrix shared by the tasks of [`tiled`], each of which writes only its own tile.
pub(super) struct SharedOut<T>(pub(super) *mut T);

// Not derived: the derives would require `T: Copy` for a pointer that is always Copy.
impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}

// SAFETY: tasks write disjoint tiles (see `tiled`), and the matrix outlives them.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// # Safety
    /// `start..start + len` must be in bounds and written by no other task.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: forwarded from this function's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }

    /// # Safety
    /// `at` must be in bounds.
    unsafe fn ptr(&self, at: usize) -> *mut T {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.0.add(at) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows split evenly over the threads when there are enough of them; otherwise the panels.
    #[test]
    fn tasks_split_rows_evenly_then_panels() {
        // 1024 rows on 2 threads: six tasks of at most 180 rows, each with all 32 panels.
        assert_eq!(
            split(1024, 32, 2, 12),
            Split {
                rows: 180,
                panels: 32
            }
        );
        // A 56×56 conv's positions: 18 tasks.
        assert_eq!(
            split(3136, 4, 2, 6),
            Split {
                rows: 180,
                panels: 4
            }
        );
        // A batch of 64 rows: every row in each task, the 96 panels in four tasks.
        assert_eq!(
            split(64, 96, 2, 12),
            Split {
                rows: 64,
                panels: 24
            }
        );
        // More threads than row chunks: panels too.
        assert_eq!(
            split(200, 10, 8, 12),
            Split {
                rows: 192,
                panels: 2
            }
        );
        // Never zero panels per task (`step_by(0)` would panic).
        assert_eq!(split(1, 0, 2, 4).panels, 1);
        for (m, blocks, threads, mr) in [(1000, 7, 3, 4), (97, 3, 2, 6), (5000, 1, 2, 12)] {
            let s = split(m, blocks, threads, mr);
            assert!(s.rows > 0 && s.panels > 0 && s.rows <= MC.max(mr * MC.div_ceil(mr)));
        }
    }
}
