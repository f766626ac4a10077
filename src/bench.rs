//! `qlab bench`: int8 linear GOPS per ISA tier and contract beside our own fp32 GFLOPS and the
//! PyTorch figures of `shared/bench/ANCHORS.md`, measured in one run so ratios are comparable.
//!
//! The int8 figure is the whole `QLinear::forward` (borrowed activations, GEMM, requantization to
//! quint8) over `2·M·N·K` operations; fp32 is `matrixmultiply::sgemm`, as the float engine runs
//! it. Conv is the whole `QConv::forward` (implicit channels-last GEMM on panels packed once,
//! requantization); there is no fp32 conv figure of ours yet. Depthwise conv is the whole
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

use crate::engine::{Engine, HostProfile, Numerics};
use crate::isa::{Isa, IsaError};
use crate::kernels::gemm::kernel_name;
use crate::qnn::{ConvParams, QConv, QLinear};
use crate::tensor::{QParams, QStorage, QTensor};
use serde::Serialize;
use std::hint::black_box;
use std::time::Instant;

/// A linear shape of ANCHORS.md with PyTorch's figures on this machine kind.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Anchor {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// torch fbgemm int8 linear, GOPS.
    pub torch_fbgemm_gops: f64,
    /// torch fp32 linear, GFLOPS.
    pub torch_fp32_gflops: f64,
}

/// The four linear shapes of ANCHORS.md (M×K×N).
pub const ANCHORS: [Anchor; 4] = [
    anchor(1, 768, 768, 40.0, 16.0),
    anchor(64, 768, 3072, 429.0, 108.0),
    anchor(256, 1024, 1024, 505.0, 143.0),
    anchor(1024, 1024, 1024, 478.0, 136.0),
];

const fn anchor(m: usize, k: usize, n: usize, fbgemm: f64, fp32: f64) -> Anchor {
    Anchor {
        m,
        k,
        n,
        torch_fbgemm_gops: fbgemm,
        torch_fp32_gflops: fp32,
    }
}

/// A conv2d shape of ANCHORS.md (batch 1, stride 1, same padding) with PyTorch's figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ConvAnchor {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: usize,
    /// torch fbgemm int8 conv2d, GOPS.
    pub torch_fbgemm_gops: f64,
}

/// The three conv shapes of ANCHORS.md.
pub const CONV_ANCHORS: [ConvAnchor; 3] = [
    conv_anchor(64, 56, 64, 3, 248.0),
    conv_anchor(256, 14, 256, 3, 532.0),
    conv_anchor(32, 112, 32, 1, 42.0),
];

const fn conv_anchor(c: usize, hw: usize, o: usize, k: usize, fbgemm: f64) -> ConvAnchor {
    ConvAnchor {
        channels: c,
        height: hw,
        width: hw,
        out_channels: o,
        kernel: k,
        torch_fbgemm_gops: fbgemm,
    }
}

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
    pub ratio_to_torch_fbgemm: f64,
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
    pub ratio_to_torch_fbgemm: f64,
}

/// One measured fp32 figure.
#[derive(Debug, Clone, Serialize)]
pub struct Fp32Figure {
    pub shape: Anchor,
    pub gflops: f64,
    pub ratio_to_torch_fp32: f64,
}

/// Everything `qlab bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub repetitions: usize,
    pub int8: Vec<Int8Figure>,
    pub fp32: Vec<Fp32Figure>,
    pub conv: Vec<ConvFigure>,
    pub depthwise: Vec<DepthwiseFigure>,
    /// The AVX-512 VNNI tier's measured peak (a register-only `vpdpbusd` loop), GOPS, when the
    /// host has the tier: the ceiling the GEMM figures are a fraction of.
    pub peak_gops: Option<f64>,
    /// Tiers not measured, with the reason.
    pub skipped: Vec<String>,
}

/// The AVX-512 VNNI peak: best of `reps` timings of a register-only `vpdpbusd` loop, or `None`
/// off x86 or without the tier.
fn peak_gops(reps: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512Vnni.check().is_ok() {
        use crate::kernels::x86::avx512vnni_gemm::{PEAK_MACS_PER_ITER, peak_loop};
        const ITERS: usize = 1 << 22;
        let secs = (0..reps.max(3))
            .map(|_| {
                let t = std::time::Instant::now();
                // SAFETY: the host has the tier (checked above).
                black_box(unsafe { peak_loop(ITERS, black_box(0x0101_0101), black_box(1)) });
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        return Some(2.0 * (ITERS * PEAK_MACS_PER_ITER) as f64 / secs / 1e9);
    }
    let _ = reps;
    None
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

fn int8_gops(s: &Anchor, setup: Setup, reps: usize) -> f64 {
    let w = QTensor::from_int_repr(
        QStorage::I8(bytes(s.n * s.k, 7).into_iter().map(|v| v as i8).collect()),
        &[s.n, s.k],
        QParams::PerTensor {
            scale: 0.01,
            zero_point: 0,
        },
    )
    .expect("valid weight");
    let layer = QLinear::new(&w, Some(vec![0.5; s.n]), 0.2, 128, false).expect("valid layer");
    let x = QTensor::from_int_repr(
        QStorage::U8(activation_bytes(s.m * s.k, 11, setup)),
        &[s.m, s.k],
        QParams::PerTensor {
            scale: 0.02,
            zero_point: 128,
        },
    )
    .expect("valid input");
    let secs = median_secs(reps, || {
        black_box(layer.forward(black_box(&x), setup.numerics).expect("runs"));
    });
    2.0 * (s.m * s.n * s.k) as f64 / secs / 1e9
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

fn fp32_gflops(s: &Anchor, reps: usize) -> f64 {
    let a: Vec<f32> = bytes(s.m * s.k, 3)
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect();
    let w: Vec<f32> = bytes(s.n * s.k, 5)
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect();
    let mut c = vec![0f32; s.m * s.n];
    let (m, k, n) = (s.m, s.k, s.n);
    let secs = median_secs(reps, || {
        // SAFETY: a is m×k (row stride k), w is n×k read as its k×n transpose (row stride 1,
        // column stride k), c is m×n (row stride n); all three buffers have those sizes.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                w.as_ptr(),
                1,
                k as isize,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        black_box(&c);
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
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(|| run_here(reps)),
        // No pool (the OS refused a thread): measure on the caller's, as before.
        Err(_) => run_here(reps),
    }
}

fn run_here(reps: usize) -> Result<Report, IsaError> {
    let mut report = Report {
        repetitions: reps,
        int8: Vec::new(),
        fp32: Vec::new(),
        conv: Vec::new(),
        depthwise: Vec::new(),
        peak_gops: peak_gops(reps),
        skipped: vec!["scalar: reference only, not benchmarked".into()],
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
            // Saturating requests run the exact kernel where no pair can saturate: 7-bit bytes.
            let saturating = numerics.gemm_pairs_saturate() && !seven_bit;
            for s in &ANCHORS {
                let gops = int8_gops(s, setup, reps);
                report.int8.push(Int8Figure {
                    shape: *s,
                    tier: tier.name().into(),
                    contract: contract.into(),
                    kernel: kernel_name(tier, saturating).into(),
                    gops,
                    ratio_to_torch_fbgemm: gops / s.torch_fbgemm_gops,
                });
            }
            for s in &CONV_ANCHORS {
                let gops = conv_gops(s, setup, reps);
                report.conv.push(ConvFigure {
                    shape: *s,
                    tier: tier.name().into(),
                    contract: contract.into(),
                    gops,
                    ratio_to_torch_fbgemm: gops / s.torch_fbgemm_gops,
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
        let gflops = fp32_gflops(s, reps);
        report.fp32.push(Fp32Figure {
            shape: *s,
            gflops,
            ratio_to_torch_fp32: gflops / s.torch_fp32_gflops,
        });
    }
    Ok(report)
}

impl Report {
    /// The human-readable table `qlab bench` prints.
    pub fn render(&self) -> String {
        let shape = |s: &Anchor| format!("{}x{}x{}", s.m, s.k, s.n);
        let mut out = format!(
            "int8 linear (M×K×N), single thread, median of {} runs; ratios to PyTorch on this machine kind (ANCHORS.md)\n",
            self.repetitions
        );
        out.push_str(&format!(
            "{:<15} {:<11} {:<17} {:<22} {:>9} {:>13} {:>7}\n",
            "shape", "tier", "contract", "kernel", "GOPS", "torch fbgemm", "ratio"
        ));
        for f in &self.int8 {
            out.push_str(&format!(
                "{:<15} {:<11} {:<17} {:<22} {:>9.1} {:>13.0} {:>7.2}\n",
                shape(&f.shape),
                f.tier,
                f.contract,
                f.kernel,
                f.gops,
                f.shape.torch_fbgemm_gops,
                f.ratio_to_torch_fbgemm
            ));
        }
        if let Some(peak) = self.peak_gops {
            let largest = self.int8.iter().find(|f| {
                f.shape.m == 1024 && f.tier == Isa::Avx512Vnni.name() && f.contract == "exact"
            });
            out.push_str(&format!(
                "avx512vnni peak {peak:.1} GOPS (register-only vpdpbusd loop on this host)"
            ));
            if let Some(f) = largest {
                out.push_str(&format!(
                    "; 1024x1024x1024 exact reaches {:.1}% of peak",
                    100.0 * f.gops / peak
                ));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "\nfp32 linear (matrixmultiply sgemm)\n{:<15} {:>9} {:>11} {:>7}\n",
            "shape", "GFLOPS", "torch fp32", "ratio"
        ));
        for f in &self.fp32 {
            out.push_str(&format!(
                "{:<15} {:>9.1} {:>11.0} {:>7.2}\n",
                shape(&f.shape),
                f.gflops,
                f.shape.torch_fp32_gflops,
                f.ratio_to_torch_fp32
            ));
        }
        out.push_str(&format!(
            "\nint8 conv2d (C×H×W → O, k×k; batch 1, stride 1, same padding)\n{:<22} {:<11} {:<17} {:>9} {:>13} {:>7}\n",
            "shape", "tier", "contract", "GOPS", "torch fbgemm", "ratio"
        ));
        // The columns the conv and depthwise tables share.
        let conv_row = |shape: String, tier: &str, contract: &str, gops: f64| {
            format!("{shape:<22} {tier:<11} {contract:<17} {gops:>9.1}")
        };
        for f in &self.conv {
            let s = &f.shape;
            let shape = format!(
                "{}x{}x{}->{} {}x{}",
                s.channels, s.height, s.width, s.out_channels, s.kernel, s.kernel
            );
            out.push_str(&format!(
                "{} {:>13.0} {:>7.2}\n",
                conv_row(shape, &f.tier, &f.contract, f.gops),
                s.torch_fbgemm_gops,
                f.ratio_to_torch_fbgemm
            ));
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and the JSON carry the same figures and ratios (nothing is timed here).
    #[test]
    fn render_and_json_carry_the_ratios() {
        let shape = ANCHORS[3];
        let report = Report {
            repetitions: 3,
            int8: vec![Int8Figure {
                shape,
                tier: "avx512vnni".into(),
                contract: "exact".into(),
                kernel: kernel_name(Isa::Avx512Vnni, false).into(),
                gops: 239.0,
                ratio_to_torch_fbgemm: 239.0 / shape.torch_fbgemm_gops,
            }],
            fp32: vec![Fp32Figure {
                shape,
                gflops: 68.0,
                ratio_to_torch_fp32: 0.5,
            }],
            conv: Vec::new(),
            depthwise: vec![DepthwiseFigure {
                shape: DEPTHWISE_SHAPES[1],
                tier: "avx2".into(),
                contract: "fbgemm".into(),
                gops: 21.5,
            }],
            peak_gops: Some(478.0),
            skipped: vec!["avxvnni: missing".into()],
        };
        let text = report.render();
        assert!(text.contains("1024x1024x1024"), "{text}");
        assert!(text.contains("239.0") && text.contains("0.50"), "{text}");
        assert!(text.contains("skipped avxvnni: missing"), "{text}");
        assert!(
            text.contains("96x112x112 3x3/2") && text.contains("21.5"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&report).expect("serializable");
        assert_eq!(json["int8"][0]["ratio_to_torch_fbgemm"], 0.5);
        assert_eq!(json["fp32"][0]["shape"]["torch_fp32_gflops"], 136.0);
        assert_eq!(json["depthwise"][0]["shape"]["stride"], 2);
        assert_eq!(json["depthwise"][0]["gops"], 21.5);
        assert!(
            text.contains("peak 478.0 GOPS") && text.contains("50.0% of peak"),
            "{text}"
        );
        assert_eq!(json["peak_gops"], 478.0);
    }
}
