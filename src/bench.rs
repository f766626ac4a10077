//! `qlab bench`: int8 linear and conv GOPS per ISA tier and contract, with two ratios measured in
//! the same run on the same host: the fraction of the tier's measured peak (where one is
//! measured) and the multiple of our own fp32 on the same shape. Peer figures (PyTorch's) come
//! only from a file the user measured on this host (`--against`, [`crate::bench_against`]): a
//! ratio against figures from another machine is not a ratio.
//!
//! The int8 figure is the whole `QLinear::forward` (borrowed activations, GEMM, requantization to
//! quint8) over `2·M·N·K` operations; fp32 is the float engine's `linear_forward` (PyTorch's
//! summation order). Conv is the whole `QConv::forward` (implicit channels-last GEMM on panels packed once,
//! requantization); its fp32 figure is the float engine's `conv_forward`. Depthwise conv is the whole
//! `QConv::forward` too, on MobileNet v2 shapes (`kernels::depthwise`), under fbgemm's and
//! qnnpack's pair models. Each figure is the median of a few repetitions after one warm-up,
//! single-threaded.
//!
//! Operands are deterministic pseudo-random bytes. Activations under the fbgemm engine are 7-bit
//! (`0..=127`), as its default qconfig's `reduce_range` observers make them; qnnpack's use the
//! full 8 bits. The speed of fbgemm's pair-saturating contract depends on the data: where no
//! pair can reach an int16 bound (7-bit activations: 127·256 < 32768) the exact kernels run
//! it, and the saturating kernels only count saturations on tiles that reach a bound. The
//! `pairsat, 8-bit` rows measure the worst case, full-range bytes that saturate on almost
//! every tile; the kernel column names the kernel the figure's data runs.

use crate::bench_against::{Against, AgainstInfo, PeerRatio, trailing};
use crate::bench_scaling::{self, Scaling};
use crate::engine::{Engine, HostProfile, Numerics};
use crate::isa::{Isa, IsaError};
use crate::kernels::gemm::{GemmWeights, PairSums, kernel_name, pair_sums};
use crate::qnn::{ConvParams, QConv, QLinear};
use crate::tensor::{QParams, QStorage, QTensor};
use serde::Serialize;
use std::hint::black_box;
use std::time::Instant;

/// A linear shape `qlab bench` measures (M×K×N; `y = x·Wᵀ`, x M×K, W N×K).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Anchor {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl Anchor {
    /// `MxKxN`, the name the table and a peer file use.
    pub fn name(&self) -> String {
        format!("{}x{}x{}", self.m, self.k, self.n)
    }
}

/// The linear shapes (M×K×N): a GEMV, a BERT-base FFN, and two square-ish GEMMs.
pub const ANCHORS: [Anchor; 4] = [
    Anchor {
        m: 1,
        k: 768,
        n: 768,
    },
    Anchor {
        m: 64,
        k: 768,
        n: 3072,
    },
    Anchor {
        m: 256,
        k: 1024,
        n: 1024,
    },
    Anchor {
        m: 1024,
        k: 1024,
        n: 1024,
    },
];

/// A conv2d shape `qlab bench` measures (batch 1, stride 1, same padding).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ConvAnchor {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: usize,
}

impl ConvAnchor {
    /// `CxHxW->O kxk`, the name the table and a peer file use.
    pub fn name(&self) -> String {
        format!(
            "{}x{}x{}->{} {}x{}",
            self.channels, self.height, self.width, self.out_channels, self.kernel, self.kernel
        )
    }
}

/// The conv shapes: ResNet's 3×3 stages at 56×56 and 14×14, and a wide 1×1.
pub const CONV_ANCHORS: [ConvAnchor; 3] = [
    conv_anchor(64, 56, 64, 3),
    conv_anchor(256, 14, 256, 3),
    conv_anchor(32, 112, 32, 1),
];

const fn conv_anchor(c: usize, hw: usize, o: usize, k: usize) -> ConvAnchor {
    ConvAnchor {
        channels: c,
        height: hw,
        width: hw,
        out_channels: o,
        kernel: k,
    }
}

/// The linear shape names a peer file may use.
pub fn linear_names() -> Vec<String> {
    ANCHORS.iter().map(Anchor::name).collect()
}

/// The conv shape names a peer file may use.
pub fn conv_names() -> Vec<String> {
    CONV_ANCHORS.iter().map(ConvAnchor::name).collect()
}

/// The version of `qlab bench --json`'s layout: 2 dropped the built-in PyTorch figures and added
/// `host_cpu`, peak and own-fp32 ratios, and `against` (version 1 was unversioned); 3 replaced
/// `peak_gops` (AVX-512 VNNI only) by `peaks`, one per tier with a peak loop.
pub const JSON_SCHEMA_VERSION: u32 = 3;

/// A MobileNet v2 depthwise conv2d shape (batch 1, one channel per group, k×k, same padding).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DepthwiseShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
}

/// MobileNet v2's most expensive depthwise convs: a stride-1 one of the 56×56 stage and the
/// stride-2 one entering it.
pub const DEPTHWISE_SHAPES: [DepthwiseShape; 2] = [
    DepthwiseShape {
        channels: 144,
        height: 56,
        width: 56,
        kernel: 3,
        stride: 1,
    },
    DepthwiseShape {
        channels: 96,
        height: 112,
        width: 112,
        kernel: 3,
        stride: 2,
    },
];

/// One measured int8 depthwise conv figure.
#[derive(Debug, Clone, Serialize)]
pub struct DepthwiseFigure {
    pub shape: DepthwiseShape,
    pub tier: String,
    /// `fbgemm` (its depthwise fast path: int16 tap pairs, saturating) or `qnnpack` (exact).
    pub contract: String,
    pub gops: f64,
}

/// One measured int8 conv figure.
#[derive(Debug, Clone, Serialize)]
pub struct ConvFigure {
    pub shape: ConvAnchor,
    pub tier: String,
    pub contract: String,
    pub gops: f64,
    /// Percent of the tier's measured peak; `None` where the tier has none measured.
    pub percent_of_peak: Option<f64>,
    /// GOPS over our fp32 GFLOPS on the same shape.
    pub ratio_to_our_fp32: Option<f64>,
    /// Peer figures (`--against`) for this shape.
    pub peers: Vec<PeerRatio>,
}

/// One measured fp32 conv figure (the float engine's `conv_forward`).
#[derive(Debug, Clone, Serialize)]
pub struct ConvFp32Figure {
    pub shape: ConvAnchor,
    pub gflops: f64,
    pub peers: Vec<PeerRatio>,
}

/// One measured int8 figure.
#[derive(Debug, Clone, Serialize)]
pub struct Int8Figure {
    pub shape: Anchor,
    pub tier: String,
    /// `exact` (fbgemm on a VNNI host), `pairs-saturating` (fbgemm on an AVX2 host),
    /// `qnnpack` (the qnnpack engine, exact) or `pairsat, 8-bit` (fbgemm on an AVX2 host,
    /// full-range activations).
    pub contract: String,
    pub kernel: String,
    pub gops: f64,
    /// Percent of the tier's measured peak; `None` where the tier has none measured.
    pub percent_of_peak: Option<f64>,
    /// GOPS over our fp32 GFLOPS on the same shape.
    pub ratio_to_our_fp32: Option<f64>,
    /// Peer figures (`--against`) for this shape: static and dynamic quantized Linear.
    pub peers: Vec<PeerRatio>,
}

/// One measured fp32 figure.
#[derive(Debug, Clone, Serialize)]
pub struct Fp32Figure {
    pub shape: Anchor,
    pub gflops: f64,
    pub peers: Vec<PeerRatio>,
}

/// Everything `qlab bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`JSON_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// This host's CPU model (`/proc/cpuinfo`), read when the figures were measured.
    pub host_cpu: String,
    pub repetitions: usize,
    pub int8: Vec<Int8Figure>,
    pub fp32: Vec<Fp32Figure>,
    pub conv: Vec<ConvFigure>,
    pub conv_fp32: Vec<ConvFp32Figure>,
    pub depthwise: Vec<DepthwiseFigure>,
    /// The measured peak of each tier the host has and a peak loop exists for: the ceiling
    /// that tier's GEMM figures are a fraction of.
    pub peaks: Vec<TierPeak>,
    /// Tiers not measured, with the reason.
    pub skipped: Vec<String>,
    /// The peer file, when `--against` gave one.
    pub against: Option<AgainstInfo>,
    /// The 1024³ GEMM at one thread and at the process's thread count.
    pub scaling: Vec<Scaling>,
}

/// One tier's measured int8 peak.
#[derive(Debug, Clone, Serialize)]
pub struct TierPeak {
    pub tier: String,
    pub gops: f64,
    /// The instructions the register-only loop repeats.
    pub instructions: String,
}

/// The peaks of the tiers this host has that have a peak loop: AVX2 (`vpmaddubsw`, `vpmaddwd`
/// with ones, `vpaddd`: the sequence fbgemm's and our bounded-pair AVX2 tiles run) and AVX-512
/// VNNI (`vpdpbusd`). Each is the best of `reps` timings of a register-only loop.
fn peaks(reps: usize) -> Vec<TierPeak> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::x86::{avx2_bounded_gemm as avx2, avx512vnni_gemm as vnni};
        /// A tier's peak loop: `(iterations, a, b) -> checksum`, needing the tier's features.
        type PeakLoop = unsafe fn(usize, i32, i32) -> i32;
        let loops: [(Isa, PeakLoop, usize, &str); 2] = [
            (
                Isa::Avx2,
                avx2::peak_loop,
                avx2::PEAK_MACS_PER_ITER,
                "vpmaddubsw + vpmaddwd + vpaddd",
            ),
            (
                Isa::Avx512Vnni,
                vnni::peak_loop,
                vnni::PEAK_MACS_PER_ITER,
                "vpdpbusd",
            ),
        ];
        let available = loops.into_iter().filter(|(tier, ..)| tier.check().is_ok());
        available
            .map(|(tier, peak_loop, macs, instructions)| {
                // SAFETY: the host has the tier (filtered above); `best_peak` passes iters > 0.
                let run = |iters| unsafe { peak_loop(iters, 0x0101_0101, 1) };
                TierPeak {
                    tier: tier.name().into(),
                    gops: best_peak(reps, macs, run),
                    instructions: instructions.into(),
                }
            })
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = reps;
        Vec::new()
    }
}

/// GOPS of the best of `reps` (at least 3) timings of `run(ITERS)`, a peak loop doing
/// `macs_per_iter` multiply-adds per iteration.
#[cfg(target_arch = "x86_64")]
fn best_peak(reps: usize, macs_per_iter: usize, run: impl Fn(usize) -> i32) -> f64 {
    const ITERS: usize = 1 << 22;
    let secs = (0..reps.max(3))
        .map(|_| {
            let t = Instant::now();
            black_box(run(black_box(ITERS)));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    2.0 * (ITERS * macs_per_iter) as f64 / secs / 1e9
}

/// Median seconds of `reps` runs of `f` after one warm-up run.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// What one figure runs: the numerics contract, and whether its activations are 7-bit (see
/// the module note).
#[derive(Clone, Copy)]
struct Setup {
    numerics: Numerics,
    seven_bit: bool,
}

/// Activation bytes for `setup`.
fn activation_bytes(len: usize, seed: u64, setup: Setup) -> Vec<u8> {
    let mask = if setup.seven_bit { 0x7f } else { 0xff };
    bytes(len, seed).into_iter().map(|v| v & mask).collect()
}

/// Deterministic bytes (xorshift), no rand dependency.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// The weight bytes of [`int8_gops`].
fn int8_weight(s: &Anchor) -> Vec<i8> {
    bytes(s.n * s.k, 7).into_iter().map(|v| v as i8).collect()
}

/// The activation bytes of [`int8_gops`].
fn int8_activations(s: &Anchor, setup: Setup) -> Vec<u8> {
    activation_bytes(s.m * s.k, 11, setup)
}

/// The pair sums [`int8_gops`]'s operands have on `tier` (which kernel its figure measures):
/// saturating requests run an exact kernel where no pair can saturate (7-bit bytes).
fn int8_sums(s: &Anchor, setup: Setup, tier: Isa) -> PairSums {
    let w = int8_weight(s);
    let weights = GemmWeights {
        data: &w,
        n: s.n,
        k: s.k,
        zero_points: &[0],
        cache: None,
    };
    let saturate = setup.numerics.gemm_pairs_saturate();
    pair_sums(tier, saturate, &int8_activations(s, setup), &weights)
}

fn int8_gops(s: &Anchor, setup: Setup, reps: usize) -> f64 {
    let (layer, x) = int8_layer(s, setup);
    let secs = median_secs(reps, || {
        black_box(layer.forward(black_box(&x), setup.numerics).expect("runs"));
    });
    2.0 * (s.m * s.n * s.k) as f64 / secs / 1e9
}

/// The quantized Linear layer and input [`int8_gops`] times.
fn int8_layer(s: &Anchor, setup: Setup) -> (QLinear, QTensor) {
    let w = QTensor::from_int_repr(
        QStorage::I8(int8_weight(s)),
        &[s.n, s.k],
        QParams::PerTensor {
            scale: 0.01,
            zero_point: 0,
        },
    )
    .expect("valid weight");
    let layer = QLinear::new(&w, Some(vec![0.5; s.n]), 0.2, 128, false).expect("valid layer");
    let x = QTensor::from_int_repr(
        QStorage::U8(int8_activations(s, setup)),
        &[s.m, s.k],
        QParams::PerTensor {
            scale: 0.02,
            zero_point: 128,
        },
    )
    .expect("valid input");
    (layer, x)
}

/// Repetitions of each side of the 1024³ scaling figure, at least.
const SCALING_REPS: usize = 25;

/// The 1024³ int8 linear at one thread and at [`bench_scaling::threads`] (nothing when that is
/// 1), on the best tier and on AVX2 where the host has it, under fbgemm's exact contract.
fn scaling(reps: usize) -> Result<Vec<Scaling>, IsaError> {
    let threads = bench_scaling::threads();
    let s = &ANCHORS[3];
    let mut out = Vec::new();
    let mut tiers = vec![crate::isa::selected()];
    if tiers[0] != Isa::Avx2 && Isa::Avx2.check().is_ok() {
        tiers.push(Isa::Avx2);
    }
    for tier in tiers {
        let setup = Setup {
            numerics: Numerics::new(Engine::Fbgemm, HostProfile::Vnni).on(tier)?,
            seven_bit: true,
        };
        let (layer, x) = int8_layer(s, setup);
        let what = format!("int8 linear {} {tier}", s.name());
        let run = || layer.forward(&x, setup.numerics).map(|(y, _)| y);
        let bits = |y: QTensor| y.int_repr();
        // A few milliseconds each: more repetitions than the shapes' steady the median.
        let reps = reps.max(SCALING_REPS);
        if let Ok(Some(figure)) = bench_scaling::measure(&what, threads, reps, run, bits) {
            out.push(figure);
        }
    }
    Ok(out)
}

fn conv_gops(s: &ConvAnchor, setup: Setup, reps: usize) -> f64 {
    let c = s.channels;
    let shape = [1, c, s.height, s.width];
    qconv_gops(shape, s.out_channels, 1, s.kernel, 1, setup, reps)
}

fn depthwise_gops(s: &DepthwiseShape, setup: Setup, reps: usize) -> f64 {
    let (c, k) = (s.channels, s.kernel);
    let shape = [1, c, s.height, s.width];
    qconv_gops(shape, c, c, k, s.stride, setup, reps)
}

/// GOPS of `QConv::forward` on an input of `shape` with a k×k kernel, same padding.
fn qconv_gops(
    shape: [usize; 4],
    out: usize,
    groups: usize,
    k: usize,
    stride: usize,
    setup: Setup,
    reps: usize,
) -> f64 {
    let [n, c, h, w] = shape;
    let cg = c / groups;
    let weight = QTensor::from_int_repr(
        QStorage::I8(
            bytes(out * cg * k * k, 13)
                .into_iter()
                .map(|v| v as i8)
                .collect(),
        ),
        &[out, cg, k, k],
        QParams::PerTensor {
            scale: 0.01,
            zero_point: 0,
        },
    )
    .expect("valid weight");
    let params = ConvParams {
        stride: vec![stride; 2],
        padding: vec![k / 2; 2],
        groups,
        ..ConvParams::unit(2)
    };
    let layer = QConv::new(&weight, Some(vec![0.5; out]), params, 0.2, 128, false).expect("valid");
    let x = QTensor::from_int_repr(
        QStorage::U8(activation_bytes(n * c * h * w, 17, setup)),
        &shape,
        QParams::PerTensor {
            scale: 0.02,
            zero_point: 128,
        },
    )
    .expect("valid input");
    let secs = median_secs(reps, || {
        black_box(layer.forward(black_box(&x), setup.numerics).expect("runs"));
    });
    let positions = (h + 2 * (k / 2) - k) / stride + 1;
    let positions = positions * ((w + 2 * (k / 2) - k) / stride + 1);
    2.0 * (n * out * cg * k * k * positions) as f64 / secs / 1e9
}

/// GFLOPS of the float engine's `conv_forward` on `s` (the same operation count as the int8
/// figure, so the two divide into a speedup).
fn conv_fp32_gflops(s: &ConvAnchor, reps: usize) -> f64 {
    let (c, o, k) = (s.channels, s.out_channels, s.kernel);
    let floats = |len: usize, seed: u64| -> Vec<f32> {
        bytes(len, seed).iter().map(|&v| v as f32 / 255.0).collect()
    };
    let weight = ndarray::ArrayD::from_shape_vec(vec![o, c, k, k], floats(o * c * k * k, 13))
        .expect("sized to its shape");
    let params = crate::graph::ConvParams {
        weight,
        bias: Some(ndarray::Array1::from_elem(o, 0.5)),
        stride: vec![1; 2],
        pad_begin: vec![k / 2; 2],
        pad_end: vec![k / 2; 2],
        dilation: vec![1; 2],
        groups: 1,
    };
    let x = ndarray::ArrayD::from_shape_vec(
        vec![1, c, s.height, s.width],
        floats(c * s.height * s.width, 17),
    )
    .expect("sized to its shape");
    let secs = median_secs(reps, || {
        black_box(crate::graph::ops::conv_forward("bench", black_box(&x), &params).expect("runs"));
    });
    2.0 * (o * c * k * k * s.height * s.width) as f64 / secs / 1e9
}

/// GFLOPS of the float engine's `linear_forward` on `s` (PyTorch's summation order, bias
/// included), the path a float model's Linear runs.
fn fp32_gflops(s: &Anchor, reps: usize) -> f64 {
    let floats = |len: usize, seed: u64| -> Vec<f32> {
        bytes(len, seed).iter().map(|&v| v as f32 / 255.0).collect()
    };
    let (m, k, n) = (s.m, s.k, s.n);
    let params = crate::graph::LinearParams::new(
        ndarray::Array2::from_shape_vec((n, k), floats(n * k, 5)).expect("sized to its shape"),
        Some(ndarray::Array1::from_elem(n, 0.5)),
    );
    let x = ndarray::ArrayD::from_shape_vec(vec![m, k], floats(m * k, 3)).expect("sized");
    let secs = median_secs(reps, || {
        black_box(
            crate::graph::ops::linear_forward("bench", black_box(&x), &params).expect("runs"),
        );
    });
    2.0 * (m * n * k) as f64 / secs / 1e9
}

/// Measures every available SIMD tier (scalar is left out: it is the correctness reference and
/// would take seconds per shape) under both fbgemm contracts and the qnnpack engine, and fp32, on the ANCHORS shapes.
/// Each figure's tier travels in its `Numerics`; nothing process-wide is switched.
///
/// Every figure is measured on a one-thread pool, as the report's header says: the kernels
/// parallelise with rayon, and a figure must not depend on how many cores the host has free.
pub fn run(reps: usize) -> Result<Report, IsaError> {
    let mut report = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(|| run_here(reps)),
        // No pool (the OS refused a thread): measure on the caller's, as before.
        Err(_) => run_here(reps),
    }?;
    report.scaling = scaling(reps)?;
    Ok(report)
}

fn run_here(reps: usize) -> Result<Report, IsaError> {
    let mut report = Report {
        schema_version: JSON_SCHEMA_VERSION,
        host_cpu: crate::bench_against::host_cpu(),
        repetitions: reps,
        int8: Vec::new(),
        fp32: Vec::new(),
        conv: Vec::new(),
        conv_fp32: Vec::new(),
        depthwise: Vec::new(),
        peaks: peaks(reps),
        skipped: vec!["scalar: reference only, not benchmarked".into()],
        against: None,
        scaling: Vec::new(),
    };
    // fbgemm's two host contracts, and the qnnpack engine (exact, int32-bias requant), whose
    // figures are compared with torch fbgemm's too: qnnpack numerics need not be slow on x86.
    // The last row: fbgemm's AVX2 contract on full-range bytes, which saturate on almost every
    // tile (the saturating kernels' worst case; with 7-bit bytes the exact kernels run it).
    let contracts = [
        ("exact", Engine::Fbgemm, HostProfile::Vnni, true),
        ("pairs-saturating", Engine::Fbgemm, HostProfile::Avx2, true),
        ("qnnpack", Engine::Qnnpack, HostProfile::Vnni, false),
        ("pairsat, 8-bit", Engine::Fbgemm, HostProfile::Avx2, false),
    ];
    for tier in [Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni] {
        if let Err(e) = tier.check() {
            report.skipped.push(format!("{tier}: {e}"));
            continue;
        }
        for (contract, engine, profile, seven_bit) in contracts {
            let numerics = Numerics::new(engine, profile).on(tier)?;
            let setup = Setup {
                numerics,
                seven_bit,
            };
            for s in &ANCHORS {
                let gops = int8_gops(s, setup, reps);
                report.int8.push(Int8Figure {
                    shape: *s,
                    tier: tier.name().into(),
                    contract: contract.into(),
                    kernel: kernel_name(tier, int8_sums(s, setup, tier)).into(),
                    gops,
                    percent_of_peak: None,
                    ratio_to_our_fp32: None,
                    peers: Vec::new(),
                });
            }
            for s in &CONV_ANCHORS {
                report.conv.push(ConvFigure {
                    shape: *s,
                    tier: tier.name().into(),
                    contract: contract.into(),
                    gops: conv_gops(s, setup, reps),
                    percent_of_peak: None,
                    ratio_to_our_fp32: None,
                    peers: Vec::new(),
                });
            }
        }
        // fbgemm takes its depthwise fast path on every host (saturating pairs); qnnpack is exact.
        for (contract, engine) in [("fbgemm", Engine::Fbgemm), ("qnnpack", Engine::Qnnpack)] {
            let setup = Setup {
                numerics: Numerics::new(engine, HostProfile::Vnni).on(tier)?,
                seven_bit: engine == Engine::Fbgemm,
            };
            for s in &DEPTHWISE_SHAPES {
                report.depthwise.push(DepthwiseFigure {
                    shape: *s,
                    tier: tier.name().into(),
                    contract: contract.into(),
                    gops: depthwise_gops(s, setup, reps),
                });
            }
        }
    }
    for s in &ANCHORS {
        report.fp32.push(Fp32Figure {
            shape: *s,
            gflops: fp32_gflops(s, reps),
            peers: Vec::new(),
        });
    }
    for s in &CONV_ANCHORS {
        report.conv_fp32.push(ConvFp32Figure {
            shape: *s,
            gflops: conv_fp32_gflops(s, reps),
            peers: Vec::new(),
        });
    }
    report.relate();
    Ok(report)
}

/// `ours / theirs` where both are measured.
fn ratio(ours: f64, theirs: Option<f64>) -> Option<f64> {
    theirs.map(|t| ours / t)
}

/// A ratio cell: `0.95x`, or `-` where there is nothing to divide by.
fn cell(r: Option<f64>, suffix: &str) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}{suffix}"))
}

impl Report {
    /// The tier's measured peak, GOPS, where it has a peak loop.
    pub fn peak_of(&self, tier: &str) -> Option<f64> {
        self.peaks.iter().find(|p| p.tier == tier).map(|p| p.gops)
    }

    /// Fills in the ratios between figures of this run: each int8 figure's percent of its
    /// tier's peak and its multiple of our fp32 on the same shape.
    pub fn relate(&mut self) {
        let fp32 = |name: String| self.fp32.iter().find(|f| f.shape.name() == name);
        let conv_fp32 = |name: String| self.conv_fp32.iter().find(|f| f.shape.name() == name);
        let peak = |tier: &str| self.peak_of(tier);
        let int8: Vec<_> = self
            .int8
            .iter()
            .map(|f| {
                let percent = peak(&f.tier).map(|p| 100.0 * f.gops / p);
                let fp = fp32(f.shape.name()).map(|g| g.gflops);
                (percent, ratio(f.gops, fp))
            })
            .collect();
        let conv: Vec<_> = self
            .conv
            .iter()
            .map(|f| {
                let percent = peak(&f.tier).map(|p| 100.0 * f.gops / p);
                let fp = conv_fp32(f.shape.name()).map(|g| g.gflops);
                (percent, ratio(f.gops, fp))
            })
            .collect();
        for (f, (percent, x_fp32)) in self.int8.iter_mut().zip(int8) {
            (f.percent_of_peak, f.ratio_to_our_fp32) = (percent, x_fp32);
        }
        for (f, (percent, x_fp32)) in self.conv.iter_mut().zip(conv) {
            (f.percent_of_peak, f.ratio_to_our_fp32) = (percent, x_fp32);
        }
    }

    /// Sets the peer figures of `against` beside ours (ratios only when it is comparable).
    pub fn compare(&mut self, against: &Against) {
        let peer = &against.peer;
        for f in &mut self.int8 {
            let engines = ["fbgemm", "fbgemm_dynamic"];
            f.peers = against.throughput(&peer.linear_gops, &f.shape.name(), &engines, f.gops);
        }
        for f in &mut self.fp32 {
            f.peers = against.throughput(&peer.linear_gops, &f.shape.name(), &["fp32"], f.gflops);
        }
        for f in &mut self.conv {
            f.peers = against.throughput(&peer.conv_gops, &f.shape.name(), &["fbgemm"], f.gops);
        }
        for f in &mut self.conv_fp32 {
            f.peers = against.throughput(&peer.conv_gops, &f.shape.name(), &["fp32"], f.gflops);
        }
        self.against = Some(against.info());
    }

    /// The human-readable table `qlab bench` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "host: {}; single thread, median of {} runs\nratios measured in this run: % peak = of the tier's measured int8 peak on this host, x fp32 = over our fp32 on the same shape\n",
            self.host_cpu, self.repetitions
        );
        if let Some(a) = &self.against {
            out.push_str(&a.line());
        }
        out.push_str(&format!(
            "\nint8 linear (M×K×N)\n{:<15} {:<11} {:<17} {:<22} {:>9} {:>7} {:>7}\n",
            "shape", "tier", "contract", "kernel", "GOPS", "% peak", "x fp32"
        ));
        for f in &self.int8 {
            out.push_str(&format!(
                "{:<15} {:<11} {:<17} {:<22} {:>9.1} {:>7} {:>7}{}\n",
                f.shape.name(),
                f.tier,
                f.contract,
                f.kernel,
                f.gops,
                cell(f.percent_of_peak, "%"),
                cell(f.ratio_to_our_fp32, "x"),
                trailing(&f.peers)
            ));
        }
        out.push_str(&self.peak_lines());
        out.push_str(&format!(
            "\nfp32 linear (matrixmultiply sgemm)\n{:<15} {:>9}\n",
            "shape", "GFLOPS"
        ));
        for f in &self.fp32 {
            let row = format!("{:<15} {:>9.1}", f.shape.name(), f.gflops);
            out.push_str(&format!("{row}{}\n", trailing(&f.peers)));
        }
        out.push_str(&format!(
            "\nint8 conv2d (C×H×W → O, k×k; batch 1, stride 1, same padding)\n{:<22} {:<11} {:<17} {:>9} {:>7} {:>7}\n",
            "shape", "tier", "contract", "GOPS", "% peak", "x fp32"
        ));
        // The columns the conv and depthwise tables share.
        let conv_row = |shape: String, tier: &str, contract: &str, gops: f64| {
            format!("{shape:<22} {tier:<11} {contract:<17} {gops:>9.1}")
        };
        for f in &self.conv {
            out.push_str(&format!(
                "{} {:>7} {:>7}{}\n",
                conv_row(f.shape.name(), &f.tier, &f.contract, f.gops),
                cell(f.percent_of_peak, "%"),
                cell(f.ratio_to_our_fp32, "x"),
                trailing(&f.peers)
            ));
        }
        out.push_str(&format!(
            "\nfp32 conv2d (the float engine's conv_forward)\n{:<22} {:>9}\n",
            "shape", "GFLOPS"
        ));
        for f in &self.conv_fp32 {
            let row = format!("{:<22} {:>9.1}", f.shape.name(), f.gflops);
            out.push_str(&format!("{row}{}\n", trailing(&f.peers)));
        }
        out.push_str(&format!(
            "\nint8 depthwise conv2d (C×H×W, k×k / stride; batch 1, same padding)\n{:<22} {:<11} {:<17} {:>9}\n",
            "shape", "tier", "contract", "GOPS"
        ));
        for f in &self.depthwise {
            let s = &f.shape;
            let shape = format!(
                "{}x{}x{} {}x{}/{}",
                s.channels, s.height, s.width, s.kernel, s.kernel, s.stride
            );
            out.push_str(&conv_row(shape, &f.tier, &f.contract, f.gops));
            out.push('\n');
        }
        for s in &self.skipped {
            out.push_str(&format!("skipped {s}\n"));
        }
        if !self.scaling.is_empty() {
            out.push_str("\nthread scaling (same run; RAYON_NUM_THREADS sets the count)\n");
        }
        for s in &self.scaling {
            out.push_str(&format!("{}\n", s.line()));
        }
        out
    }

    /// The peak each measured tier is a fraction of, and the tiers that have none measured
    /// (their `% peak` cells are `-`: no peak is assumed from a datasheet).
    fn peak_lines(&self) -> String {
        let mut tiers: Vec<&str> = self.int8.iter().map(|f| f.tier.as_str()).collect();
        tiers.dedup();
        let mut out = String::new();
        let mut unmeasured = Vec::new();
        for tier in tiers {
            let Some(peak) = self.peaks.iter().find(|p| p.tier == tier) else {
                unmeasured.push(tier);
                continue;
            };
            out.push_str(&format!(
                "{tier} peak {:.1} GOPS (register-only {} loop on this host)",
                peak.gops, peak.instructions
            ));
            let largest: Vec<String> = self
                .int8
                .iter()
                .filter(|f| f.shape.m == 1024 && f.tier == tier)
                .map(|f| format!("{} {:.1}%", f.contract, 100.0 * f.gops / peak.gops))
                .collect();
            if let Some(f) = self.int8.iter().find(|f| f.shape.m == 1024) {
                let shape = f.shape.name();
                out.push_str(&format!("; {shape} reaches {}", largest.join(", ")));
            }
            out.push('\n');
        }
        if !unmeasured.is_empty() {
            out.push_str(&format!(
                "no measured peak for {} (no peak loop for the tier): % peak not shown\n",
                unmeasured.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report of fixed figures, as `run` would return it before `relate`: int8 at 239 GOPS
    /// on avx512vnni and 100 on avx2, fp32 68 GFLOPS, on 1024³; conv 300 GOPS against fp32 60.
    pub(crate) fn synthetic() -> Report {
        let int8 = |tier: &str, gops: f64| Int8Figure {
            shape: ANCHORS[3],
            tier: tier.into(),
            contract: "exact".into(),
            kernel: kernel_name(Isa::Avx512Vnni, PairSums::Exact).into(),
            gops,
            percent_of_peak: None,
            ratio_to_our_fp32: None,
            peers: Vec::new(),
        };
        Report {
            schema_version: JSON_SCHEMA_VERSION,
            host_cpu: "Test CPU".into(),
            repetitions: 3,
            int8: vec![
                int8("avx512vnni", 239.0),
                int8("avx2", 100.0),
                int8("avxvnni", 150.0),
            ],
            fp32: vec![Fp32Figure {
                shape: ANCHORS[3],
                gflops: 68.0,
                peers: Vec::new(),
            }],
            conv: vec![ConvFigure {
                shape: CONV_ANCHORS[0],
                tier: "avx512vnni".into(),
                contract: "exact".into(),
                gops: 300.0,
                percent_of_peak: None,
                ratio_to_our_fp32: None,
                peers: Vec::new(),
            }],
            conv_fp32: vec![ConvFp32Figure {
                shape: CONV_ANCHORS[0],
                gflops: 60.0,
                peers: Vec::new(),
            }],
            depthwise: vec![DepthwiseFigure {
                shape: DEPTHWISE_SHAPES[1],
                tier: "avx2".into(),
                contract: "fbgemm".into(),
                gops: 21.5,
            }],
            peaks: vec![
                TierPeak {
                    tier: "avx512vnni".into(),
                    gops: 478.0,
                    instructions: "vpdpbusd".into(),
                },
                TierPeak {
                    tier: "avx2".into(),
                    gops: 250.0,
                    instructions: "vpmaddubsw + vpmaddwd + vpaddd".into(),
                },
            ],
            skipped: vec!["scalar: reference only".into()],
            against: None,
            scaling: Vec::new(),
        }
    }

    /// The table and the JSON carry the same figures and ratios (nothing is timed here): % of
    /// the peak only for the tiers that have one, x fp32 on the same shape.
    #[test]
    fn render_and_json_carry_peak_and_fp32_ratios() {
        let mut report = synthetic();
        report.relate();
        let text = report.render();
        assert!(text.contains("host: Test CPU"), "{text}");
        assert!(text.contains("1024x1024x1024"), "{text}");
        assert!(text.contains("239.0") && text.contains("50.00%"), "{text}");
        // 239 / 68 and 300 / 60.
        assert!(text.contains("3.51x") && text.contains("5.00x"), "{text}");
        assert!(text.contains("no measured peak for avxvnni"), "{text}");
        assert!(text.contains("skipped scalar: reference only"), "{text}");
        assert!(
            text.contains("96x112x112 3x3/2") && text.contains("21.5"),
            "{text}"
        );
        assert!(!text.to_lowercase().contains("torch"), "{text}");
        assert!(
            text.contains("avx512vnni peak 478.0 GOPS (register-only vpdpbusd loop")
                && text.contains("reaches exact 50.0%"),
            "{text}"
        );
        // 100 / 250 on the AVX2 tier.
        assert!(
            text.contains("avx2 peak 250.0 GOPS") && text.contains("exact 40.0%"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&report).expect("serializable");
        assert_eq!(json["schema_version"], JSON_SCHEMA_VERSION);
        assert_eq!(json["host_cpu"], "Test CPU");
        assert_eq!(json["int8"][0]["percent_of_peak"], 50.0);
        assert_eq!(json["int8"][1]["percent_of_peak"], 40.0);
        assert_eq!(json["int8"][2]["percent_of_peak"], serde_json::Value::Null);
        assert_eq!(json["int8"][0]["ratio_to_our_fp32"], 239.0 / 68.0);
        assert_eq!(json["conv"][0]["ratio_to_our_fp32"], 5.0);
        assert_eq!(json["depthwise"][0]["shape"]["stride"], 2);
        assert_eq!(json["peaks"][0]["gops"], 478.0);
        assert_eq!(json["peaks"][1]["tier"], "avx2");
        assert_eq!(json["against"], serde_json::Value::Null);
    }
}
