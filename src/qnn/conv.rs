//! Quantized convolution (`nn.quantized.Conv1d/2d/3d`, `nn.intrinsic.quantized.ConvReLU1d/2d/3d`):
//! quint8 NC[D]HW activations × qint8 `[out, in/groups, k…]` weights → quint8 outputs.
//!
//! The exact accumulator is the semantic truth; which int16 pairs saturate is decided here from
//! the kernel PyTorch would dispatch to under the engine and host profile (NUMERICS §8, golden
//! README §3), then computed by the kernel of the conv's `ConvPlan`: `kernels::conv::depthwise`
//! (1-D and 2-D depthwise convs), `conv::nchw` (exact pointwise and short-K convs),
//! `conv::implicit` (other 1-D and 2-D convs) or `conv::reference` (the rest), which all return
//! the reference's accumulators:
//! * fbgemm: its depthwise fast path sums tap pairs in saturating int16 on every host; the
//!   im2col GEMM saturates its channels-last K pairs on AVX2 hosts only.
//! * x86: PyTorch sends convs with symmetric weights and at most 100 groups to oneDNN (exact on
//!   VNNI, depthwise included) and everything else to fbgemm.
//! * qnnpack: exact.

use super::linear::{Requantized, activation_qparams, quantized_output, u8_values};
use super::{PackedWeight, QnnError, RunStats};
use crate::engine::{Engine, HostProfile, Numerics};
use crate::kernels::conv::{
    self, ConvGeometry, PairModel, conv_u8_i8_i32_with, depthwise, depthwise_hwc, implicit, nchw,
};
use crate::kernels::gemm::{self, PackCache};
use crate::tensor::{QDType, QParams, QTensor};
use rayon::prelude::*;
use std::cell::Cell;

const OP: &str = "conv";

thread_local! {
    /// The accumulators of `forward`'s unfused fallback, reused across calls on a thread: a fresh
    /// multi-megabyte buffer would be page-faulted in on every call.
    static ACC: Cell<Vec<i32>> = Cell::default();
}

/// Stride, padding (the same at both ends of a dim, as PyTorch's modules take it), dilation:
/// one entry per spatial dim; and the group count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
}

impl ConvParams {
    /// Stride 1, no padding, dilation 1, one group, for `dims` spatial dims.
    pub fn unit(dims: usize) -> ConvParams {
        ConvParams {
            stride: vec![1; dims],
            padding: vec![0; dims],
            dilation: vec![1; dims],
            groups: 1,
        }
    }
}

/// A quantized 1-, 2- or 3-D convolution module (the rank of the weight decides which).
#[derive(Debug, Clone, PartialEq)]
pub struct QConv {
    pub weight: PackedWeight,
    /// The weight rows reordered to (tap, channel-of-group), channel fastest: the K order of
    /// channels-last kernels.
    taps_major: Vec<i8>,
    /// One per group: the GEMM panels of the group's `taps_major` rows, packed on first use.
    caches: Vec<PackCache>,
    /// The weight rows in the shifted form the exact NCHW path takes (`gemm::flip_weights`).
    flipped: Vec<u8>,
    pub bias: Option<Vec<f32>>,
    pub params: ConvParams,
    pub out_scale: f64,
    pub out_zero_point: i64,
    pub relu: bool,
}

/// Accumulators of one forward pass, before requantization.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvAccumulators {
    /// `[N, out, spatial…]`, row-major.
    pub values: Vec<i32>,
    pub shape: Vec<usize>,
    pub stats: RunStats,
}

fn shape_err(detail: String) -> QnnError {
    QnnError::Shape { op: OP, detail }
}

/// The kernel that computes a conv's accumulators ([`QConv::plan`] picks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvPlan {
    /// `conv::depthwise`: 1-D and 2-D depthwise convs, any pair model.
    Depthwise,
    /// `conv::nchw`: exact sums, for the pointwise and short-K convs it prefers.
    NchwExact,
    /// `conv::implicit`: the other 1-D and 2-D convs it supports.
    Implicit,
    /// `conv::reference`'s im2col driver over the dispatched GEMM: everything else.
    Reference,
}

impl QConv {
    /// Builds the module from a qint8 weight `[out, in/groups, k…]` (per-tensor, or per-channel
    /// along axis 0), an optional float bias, the geometry and the output qparams.
    pub fn new(
        weight: &QTensor,
        bias: Option<Vec<f32>>,
        params: ConvParams,
        out_scale: f64,
        out_zero_point: i64,
        relu: bool,
    ) -> Result<QConv, QnnError> {
        let weight = PackedWeight::new(OP, weight)?;
        let rank = weight.shape.len();
        if !(3..=5).contains(&rank) {
            return Err(shape_err(format!(
                "weight must be [out, in/groups, k...] with 1 to 3 spatial dims, got {:?}",
                weight.shape
            )));
        }
        let dims = rank - 2;
        if weight.shape.contains(&0) {
            return Err(shape_err(format!("zero-size weight {:?}", weight.shape)));
        }
        for (name, v) in [
            ("stride", &params.stride),
            ("padding", &params.padding),
            ("dilation", &params.dilation),
        ] {
            if v.len() != dims {
                return Err(shape_err(format!(
                    "{name} has {} entries for {dims} spatial dims",
                    v.len()
                )));
            }
        }
        if params.stride.contains(&0) || params.dilation.contains(&0) {
            return Err(shape_err("stride and dilation must be at least 1".into()));
        }
        if params.groups == 0 || !weight.out.is_multiple_of(params.groups) {
            return Err(shape_err(format!(
                "groups={} does not divide out_channels={}",
                params.groups, weight.out
            )));
        }
        if let Some(b) = &bias
            && b.len() != weight.out
        {
            return Err(shape_err(format!(
                "bias has {} values for {} output channels",
                b.len(),
                weight.out
            )));
        }
        QParams::PerTensor {
            scale: out_scale,
            zero_point: out_zero_point,
        }
        .validate(QDType::QUInt8, &[])?;
        let (cg, taps) = (weight.shape[1], weight.k / weight.shape[1]);
        let taps_major = (0..weight.out)
            .flat_map(|o| {
                let row = weight.row(o);
                (0..taps).flat_map(move |t| (0..cg).map(move |c| row[c * taps + t]))
            })
            .collect();
        Ok(QConv {
            caches: vec![PackCache::default(); params.groups],
            flipped: gemm::flip_weights(&weight.data),
            weight,
            taps_major,
            bias,
            params,
            out_scale,
            out_zero_point,
            relu,
        })
    }

    /// The number of spatial dims (1, 2 or 3).
    pub fn spatial_dims(&self) -> usize {
        self.weight.shape.len() - 2
    }

    /// The geometry of a forward pass on an input of `shape`, validated.
    fn geometry(&self, shape: &[usize]) -> Result<ConvGeometry, QnnError> {
        let dims = self.spatial_dims();
        if shape.len() != dims + 2 {
            return Err(shape_err(format!(
                "input must be N, C and {dims} spatial dims, got {shape:?}"
            )));
        }
        if shape.contains(&0) {
            return Err(shape_err(format!("zero-size input {shape:?}")));
        }
        let groups = self.params.groups;
        let in_channels = self.weight.shape[1] * groups;
        if shape[1] != in_channels {
            return Err(shape_err(format!(
                "input has {} channels, the weight expects {} ({} per group × {groups} groups)",
                shape[1], in_channels, self.weight.shape[1]
            )));
        }
        let p = &self.params;
        let kernel = self.weight.shape[2..].to_vec();
        let mut output = Vec::with_capacity(dims);
        for d in 0..dims {
            let span = p.dilation[d] * (kernel[d] - 1) + 1;
            let padded = shape[2 + d] + 2 * p.padding[d];
            if span > padded {
                return Err(shape_err(format!(
                    "kernel extent {span} exceeds the padded input size {padded} in spatial dim {d}"
                )));
            }
            output.push((padded - span) / p.stride[d] + 1);
        }
        Ok(ConvGeometry {
            batch: shape[0],
            in_channels,
            out_channels: self.weight.out,
            groups,
            input: shape[2..].to_vec(),
            kernel,
            stride: p.stride.clone(),
            padding: p.padding.clone(),
            dilation: p.dilation.clone(),
            output,
        })
    }

    /// How the kernel PyTorch would run sums its u8×s8 pairs.
    fn pair_model(&self, numerics: Numerics, g: &ConvGeometry) -> PairModel {
        match (numerics.engine, numerics.profile) {
            (Engine::Qnnpack, _) | (_, HostProfile::Exact) => PairModel::Exact,
            (Engine::X86, profile) if self.onednn_routed() => {
                // PyTorch routes on the CPU's VNNI flag, not on an ISA cap: the golden avx2 run
                // (VNNI host, kernels capped at AVX2) still chose oneDNN, and this profile
                // reproduces that. A genuinely AVX2-only host would get fbgemm instead.
                if profile == HostProfile::Avx2 && onednn_direct_kernel(g) {
                    PairModel::TapChannelPairs
                } else {
                    PairModel::Exact
                }
            }
            _ if fbgemm_depthwise_fast_path(g) || numerics.gemm_pairs_saturate() => {
                PairModel::Im2colPairs
            }
            _ => PairModel::Exact,
        }
    }

    /// PyTorch's x86 engine (`should_use_onednn_quant`): symmetric weights and ≤ 100 groups.
    fn onednn_routed(&self) -> bool {
        self.params.groups <= 100 && self.weight.zero_points.iter().all(|&z| z == 0)
    }

    /// The i32 accumulators (bias excluded) that `forward` requantizes.
    pub fn accumulate(
        &self,
        x: &QTensor,
        numerics: Numerics,
    ) -> Result<ConvAccumulators, QnnError> {
        self.accumulate_with(x, numerics, Vec::new())
    }

    /// [`QConv::accumulate`] into `values`, cleared and resized: a reused buffer spares the
    /// page faults of a fresh multi-megabyte allocation per call.
    fn accumulate_with(
        &self,
        x: &QTensor,
        numerics: Numerics,
        mut values: Vec<i32>,
    ) -> Result<ConvAccumulators, QnnError> {
        let (_, zx) = activation_qparams(OP, x)?;
        let g = self.geometry(x.shape())?;
        let a = u8_values(x);
        values.clear();
        values.resize(g.batch * g.out_channels * g.out_positions(), 0);
        let model = self.pair_model(numerics, &g);
        let zps = &self.weight.zero_points;
        let saturated = match self.plan(model, &g) {
            ConvPlan::Depthwise => {
                let op = self.operands(&g, &a, zx, model);
                depthwise::conv_depthwise_on(numerics.isa(), &op, &mut values)
                    .expect("a Numerics tier is one the host has")
            }
            ConvPlan::NchwExact => {
                let op = self.nchw_operands(&g, &a, zx);
                nchw::conv_u8_i8_i32_exact(numerics.isa(), &op, &mut values)
                    .expect("a Numerics tier is one the host has");
                0
            }
            ConvPlan::Implicit => {
                let op = self.operands(&g, &a, zx, model);
                implicit::conv_u8_i8_i32_on(numerics.isa(), &op, self.group_caches(&g), &mut values)
                    .expect("a Numerics tier is one the host has")
            }
            ConvPlan::Reference => conv_u8_i8_i32_with(
                &g,
                &a,
                zx,
                &self.taps_major,
                zps,
                model,
                &mut values,
                &|m, a, a_zp, w, saturate, acc| {
                    gemm::gemm_on(numerics.isa(), m, a, a_zp, w, saturate, acc)
                        .expect("a Numerics tier is one the host has")
                },
                self.group_caches(&g),
            ),
        };
        let mut shape = vec![g.batch, g.out_channels];
        shape.extend(&g.output);
        Ok(ConvAccumulators {
            values,
            shape,
            stats: RunStats {
                saturated_pairs: saturated,
            },
        })
    }

    /// Which kernel computes the accumulators of geometry `g` under `model`: the one routing
    /// ladder, so `forward` (requantizing inside the kernel) and `accumulate` (stopping at the
    /// accumulators) always run the same kernel and report the same saturated pairs.
    fn plan(&self, model: PairModel, g: &ConvGeometry) -> ConvPlan {
        if depthwise::supports(g) {
            ConvPlan::Depthwise
        } else if model == PairModel::Exact && nchw::preferred(g, &self.weight.zero_points) {
            ConvPlan::NchwExact
        } else if implicit::supports(g, model) {
            ConvPlan::Implicit
        } else {
            ConvPlan::Reference
        }
    }

    /// The depthwise and implicit-GEMM kernels' operands for the input bytes `x` of zero point
    /// `x_zp`.
    fn operands<'a>(
        &'a self,
        g: &'a ConvGeometry,
        x: &'a [u8],
        x_zp: i32,
        model: PairModel,
    ) -> conv::Operands<'a> {
        conv::Operands {
            g,
            x,
            x_zp,
            w: &self.taps_major,
            w_zp: &self.weight.zero_points,
            model,
        }
    }

    /// The per-group panel caches, or none for a module whose public fields were rewritten to
    /// another group count (it packs per call).
    fn group_caches(&self, g: &ConvGeometry) -> &[PackCache] {
        if self.caches.len() == g.groups {
            &self.caches
        } else {
            &[]
        }
    }

    /// The NCHW path's operands for the input bytes `x` of zero point `x_zp`.
    fn nchw_operands<'a>(
        &'a self,
        g: &'a ConvGeometry,
        x: &'a [u8],
        x_zp: i32,
    ) -> nchw::Operands<'a> {
        nchw::Operands {
            g,
            x,
            x_zp,
            w_flipped: &self.flipped,
            w_zp: &self.weight.zero_points,
        }
    }

    /// Runs on `x` of shape `[N, C, spatial…]`.
    pub fn forward(
        &self,
        x: &QTensor,
        numerics: Numerics,
    ) -> Result<(QTensor, RunStats), QnnError> {
        let (sx, zx) = activation_qparams(OP, x)?;
        let rq = self.requant(numerics, sx);
        let g = self.geometry(x.shape())?;
        let mut shape = vec![g.batch, g.out_channels];
        shape.extend(&g.output);
        let positions = g.out_positions();
        let mut out = vec![0u8; g.batch * g.out_channels * positions];
        let model = self.pair_model(numerics, &g);
        let a = u8_values(x);
        // The kernels that take one image at a time run the batch's images in parallel, each
        // as a batch of one (the implicit GEMM takes the whole batch as rows instead).
        let one = ConvGeometry {
            batch: 1,
            ..g.clone()
        };
        let item_in = g.in_channels * g.input.iter().product::<usize>();
        let items = |out: &mut [u8], run: &(dyn Fn(&[u8], &mut [u8]) -> u64 + Sync)| {
            by_item(&a, item_in, out, g.out_channels * positions, run)
        };
        let saturated = match self.plan(model, &g) {
            ConvPlan::Depthwise
                if channels_last_depthwise(positions, g.in_channels)
                    && depthwise_hwc::supports(&self.operands(&g, &a, zx, model)) =>
            {
                // Small planes with exact sums (symmetric weights, no pair that can saturate):
                // channels-last, every channel of a position at once.
                items(&mut out, &|x, out| {
                    let op = self.operands(&one, x, zx, model);
                    depthwise_hwc::conv_u8_i8_u8_on(numerics.isa(), &op, &rq, out)
                        .expect("a Numerics tier is one the host has");
                    0
                })
            }
            ConvPlan::Depthwise => {
                // Each output plane is requantized as the kernel finishes it, still in cache.
                items(&mut out, &|x, out| {
                    let op = self.operands(&one, x, zx, model);
                    depthwise::conv_depthwise_with(numerics.isa(), &op, &mut |c, plane| {
                        let o = &mut out[c * positions..][..positions];
                        let (acc, stride, cols) = (plane.flat, plane.stride, plane.cols);
                        rq.apply_rows(numerics.isa(), acc, stride, cols, c, o)
                    })
                    .expect("a Numerics tier is one the host has")
                })
            }
            ConvPlan::NchwExact => {
                // Requantized inside the GEMM's tiles: no i32 accumulator tensor at all.
                items(&mut out, &|x, out| {
                    let op = self.nchw_operands(&one, x, zx);
                    nchw::conv_u8_i8_u8_exact(numerics.isa(), &op, &rq, out)
                        .expect("a Numerics tier is one the host has");
                    0
                })
            }
            ConvPlan::Implicit => {
                // Requantized as the GEMM's tiles finish, straight into NCHW.
                let op = self.operands(&g, &a, zx, model);
                let caches = self.group_caches(&g);
                implicit::conv_u8_i8_u8_on(numerics.isa(), &op, caches, &rq, &mut out)
                    .expect("a Numerics tier is one the host has")
            }
            ConvPlan::Reference => {
                // The thread's accumulator buffer, taken (not borrowed) and put back below.
                let acc = self.accumulate_with(x, numerics, ACC.take())?;
                rq.apply_runs(
                    numerics.isa(),
                    &acc.values,
                    positions,
                    self.weight.out,
                    &mut out,
                );
                ACC.set(acc.values);
                acc.stats.saturated_pairs
            }
        };
        quantized_output(out, &shape, self.out_scale, self.out_zero_point, saturated)
    }
}

/// `run` on each image of a batch: its `item_in` input bytes of `x` and its `item_out` bytes of
/// `out`, images in parallel when there are several; returns the summed saturated pairs.
fn by_item(
    x: &[u8],
    item_in: usize,
    out: &mut [u8],
    item_out: usize,
    run: &(dyn Fn(&[u8], &mut [u8]) -> u64 + Sync),
) -> u64 {
    if item_out == 0 {
        0
    } else if out.len() == item_out {
        run(&x[..item_in], out)
    } else {
        out.par_chunks_mut(item_out)
            .enumerate()
            .map(|(n, out)| run(&x[n * item_in..][..item_in], out))
            .sum()
    }
}

/// Whether a depthwise conv with exact sums of `positions` outputs per plane and `channels`
/// channels runs channels-last ([`depthwise_hwc`]); larger planes amortise the per-plane
/// kernel's setup. Measured one conv at a time on an AVX-512 host (3×3, one thread): 192
/// channels 28×28 0.083 ms channels-last vs 0.103 per plane, 144 channels 56×56 → 28×28 0.122
/// vs 0.144, while MobileNet v2's 56×56 outputs (144 channels 0.37 vs 0.22, 96 channels from
/// 112×112 0.37 vs 0.27) stay per plane. On 28×28 planes it needs a whole 64-channel run: the
/// AVX-512 body leaves fewer channels to its portable loop, and ShuffleNet's 24-channel 28×28
/// convs ran 3× slower channels-last (0.025 → 0.07 ms in `compare engines … timing=on`).
fn channels_last_depthwise(positions: usize, channels: usize) -> bool {
    positions <= 14 * 14 || (positions <= 28 * 28 && channels >= 64)
}

/// fbgemm's depthwise fast path (golden README §3.2; fbgemm `takeDepthWiseFastPath`): a 2-D
/// conv with one input channel per group, a multiple of 8 of them, 1× or 2× as many outputs, a
/// square 3x3, 5x5 or 7x7 kernel, "same" padding `(k-1)/2`, dilation 1, stride 1 or 2. conv1d
/// reaches fbgemm as a 1×k 2-D conv and never qualifies. fbgemm also has a 3-D depthwise kernel,
/// but no golden case pins its pairing, so 3-D convs keep the GEMM model.
fn fbgemm_depthwise_fast_path(g: &ConvGeometry) -> bool {
    g.input.len() == 2
        && g.groups == g.in_channels
        && g.in_channels.is_multiple_of(8)
        && (g.out_channels == g.in_channels || g.out_channels == 2 * g.in_channels)
        && g.kernel[0] == g.kernel[1]
        && matches!(g.kernel[0], 3 | 5 | 7)
        && (0..2).all(|d| {
            g.padding[d] == (g.kernel[d] - 1) / 2
                && g.dilation[d] == 1
                && matches!(g.stride[d], 1 | 2)
        })
}

/// Whether oneDNN's AVX2 direct kernel (u8×s8 `vpmaddubsw`) runs the conv: ungrouped convs, as
/// the golden `isa_variants` show; grouped convs qualify only with whole 8-lane channel blocks
/// per group (oneDNN's blocking), otherwise oneDNN falls back to paths that were exact.
fn onednn_direct_kernel(g: &ConvGeometry) -> bool {
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    g.groups == 1 || (cg.is_multiple_of(8) && og.is_multiple_of(8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::QStorage;

    /// A conv with `[out, in/groups, k…]` weights of zero point `w_zp` and the given padding.
    fn conv(weight: &[usize], groups: usize, padding: usize, w_zp: i64) -> QConv {
        let n: usize = weight.iter().product();
        let w = QTensor::from_int_repr(
            QStorage::from_i32(QDType::QInt8, (0..n).map(|i| (i % 5) as i32)),
            weight,
            QParams::PerTensor {
                scale: 0.1,
                zero_point: w_zp,
            },
        )
        .unwrap();
        let dims = weight.len() - 2;
        let params = ConvParams {
            padding: vec![padding; dims],
            groups,
            ..ConvParams::unit(dims)
        };
        QConv::new(&w, None, params, 1.0, 0, false).unwrap()
    }

    fn model(m: &QConv, input: &[usize], engine: Engine, profile: HostProfile) -> PairModel {
        let g = m.geometry(input).unwrap();
        m.pair_model(Numerics::new(engine, profile), &g)
    }

    #[test]
    fn fbgemm_depthwise_fast_path_saturates_on_vnni_only_when_it_qualifies() {
        use {
            Engine::*,
            HostProfile::{Avx2, Vnni},
            PairModel::*,
        };
        let dw = conv(&[8, 1, 3, 3], 8, 1, 0);
        assert_eq!(model(&dw, &[1, 8, 6, 6], Fbgemm, Vnni), Im2colPairs);
        assert_eq!(model(&dw, &[1, 8, 6, 6], Fbgemm, HostProfile::Exact), Exact);
        assert_eq!(model(&dw, &[1, 8, 6, 6], Qnnpack, Vnni), Exact);
        // x86 sends symmetric depthwise convs to oneDNN (exact), asymmetric ones to fbgemm.
        assert_eq!(model(&dw, &[1, 8, 6, 6], X86, Vnni), Exact);
        assert_eq!(model(&dw, &[1, 8, 6, 6], X86, Avx2), Exact);
        let dw_asym = conv(&[8, 1, 3, 3], 8, 1, 3);
        assert_eq!(model(&dw_asym, &[1, 8, 6, 6], X86, Vnni), Im2colPairs);
        // No "same" padding, or 4 channels: the generic GEMM, exact on VNNI.
        let unpadded = conv(&[8, 1, 3, 3], 8, 0, 0);
        assert_eq!(model(&unpadded, &[1, 8, 6, 6], Fbgemm, Vnni), Exact);
        assert_eq!(model(&unpadded, &[1, 8, 6, 6], Fbgemm, Avx2), Im2colPairs);
        let four = conv(&[4, 1, 3, 3], 4, 1, 0);
        assert_eq!(model(&four, &[1, 4, 6, 6], Fbgemm, Vnni), Exact);
        // Kernels fbgemm's fast path does not take: 1-D, non-square, 9x9; and 3-D ones.
        let dw1 = conv(&[8, 1, 3], 8, 1, 0);
        assert_eq!(model(&dw1, &[1, 8, 9], Fbgemm, Vnni), Exact);
        let rect = QConv {
            params: ConvParams {
                padding: vec![1, 2],
                groups: 8,
                ..ConvParams::unit(2)
            },
            ..conv(&[8, 1, 3, 5], 8, 1, 0)
        };
        assert_eq!(model(&rect, &[1, 8, 9, 9], Fbgemm, Vnni), Exact);
        let nine = conv(&[8, 1, 9, 9], 8, 4, 0);
        assert_eq!(model(&nine, &[1, 8, 9, 9], Fbgemm, Vnni), Exact);
        let five = conv(&[16, 1, 5, 5], 8, 2, 0);
        assert_eq!(model(&five, &[1, 8, 9, 9], Fbgemm, Vnni), Im2colPairs);
        let dw3 = conv(&[8, 1, 3, 3, 3], 8, 1, 0);
        assert_eq!(model(&dw3, &[1, 8, 4, 4, 4], Fbgemm, Vnni), Exact);
    }

    #[test]
    fn x86_onednn_saturates_on_avx2_for_ungrouped_convs_only() {
        use {
            Engine::*,
            HostProfile::{Avx2, Vnni},
            PairModel::*,
        };
        let plain = conv(&[4, 3, 3, 3], 1, 1, 0);
        assert_eq!(model(&plain, &[1, 3, 5, 5], X86, Avx2), TapChannelPairs);
        assert_eq!(model(&plain, &[1, 3, 5, 5], X86, Vnni), Exact);
        assert_eq!(model(&plain, &[1, 3, 5, 5], Fbgemm, Avx2), Im2colPairs);
        let grouped = conv(&[6, 2, 3, 3], 2, 0, 0);
        assert_eq!(model(&grouped, &[1, 4, 5, 5], X86, Avx2), Exact);
        let asym = conv(&[4, 3, 3, 3], 1, 1, -5);
        assert_eq!(model(&asym, &[1, 3, 5, 5], X86, Avx2), Im2colPairs);
    }
}
