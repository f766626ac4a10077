//! Float convolution, single-threaded: the FMA-chain kernel (`kernels::fchain`, the inner loop
//! of the float conv in PyTorch's summation order) on the scalar tier and on every SIMD tier the
//! host has, over one 16-channel reduction block of a 3×3 conv on 64×56×56 (ResNet's stage 1);
//! and the whole `conv_forward` (patches packed from the input, every block, bias) on ResNet and MobileNet shapes on
//! the process's tier. Throughput is counted in FLOPs (2 per multiply-add).
//!
//! `cargo bench --bench float_conv -- --measurement-time 2`

use criterion::{Criterion, Throughput};
use qlab::graph::ConvParams;
use qlab::graph::ops::conv_forward;
use qlab::isa::{self, Isa};
use qlab::kernels::fchain::{Chains, Finish, Source, Start, chain_on};
use std::hint::black_box;

mod support;

/// `n` floats in [-0.5, 0.5).
fn floats(n: usize, seed: u64) -> Vec<f32> {
    support::xorshift(n, seed)
        .map(|s| (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect()
}

fn chains(c: &mut Criterion) {
    let tiers = support::available(&[Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::Neon]);
    // One reduction block of a 3×3 conv, 64 → 64 channels at 56×56: 16 channels × 9 taps.
    let (rows, n, channels, taps) = (64, 56 * 56, 64, 9);
    let w = floats(rows * channels * taps, 3);
    let x = floats(channels * taps * n, 5);
    let ks: Vec<usize> = (0..taps)
        .flat_map(|t| (0..16).map(move |ch| ch * taps + t))
        .collect();
    let chains = Chains {
        n,
        p0: 0,
        start: Start::Zero,
        finish: Finish::Store,
        w: &w,
        w_stride: channels * taps,
        x: Source::Rows { x: &x, len: n },
        ks: &ks,
    };
    let mut out = vec![0.0; rows * n];
    let mut group = c.benchmark_group("fchain/3x3_block_64x56x56");
    group.throughput(Throughput::Elements((2 * rows * n * ks.len()) as u64));
    for &tier in &tiers {
        group.bench_function(tier.name(), |b| {
            b.iter(|| chain_on(tier, &mut out, black_box(&chains)).unwrap())
        });
    }
    group.finish();
}

/// (name, channels, side, out channels, kernel, stride, groups)
const CONVS: [(&str, usize, usize, usize, usize, usize, usize); 5] = [
    ("resnet_stem_3x224_7x7s2", 3, 224, 64, 7, 2, 1),
    ("resnet_64x56_3x3", 64, 56, 64, 3, 1, 1),
    ("resnet_256x14_3x3", 256, 14, 256, 3, 1, 1),
    ("mobilenet_32x112_1x1", 32, 112, 16, 1, 1, 1),
    ("mobilenet_dw_144x56_3x3", 144, 56, 144, 3, 1, 144),
];

fn convs(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let mut group = c.benchmark_group(format!("conv_forward_{}", isa::selected()));
    for (name, ch, side, out, k, stride, groups) in CONVS {
        let weight = ndarray::ArrayD::from_shape_vec(
            vec![out, ch / groups, k, k],
            floats(out * ch / groups * k * k, 7),
        )
        .expect("sized");
        let p = ConvParams {
            weight,
            bias: Some(ndarray::Array1::from_elem(out, 0.25)),
            stride: vec![stride; 2],
            pad_begin: vec![k / 2; 2],
            pad_end: vec![k / 2; 2],
            dilation: vec![1; 2],
            groups,
        };
        let x =
            ndarray::ArrayD::from_shape_vec(vec![1, ch, side, side], floats(ch * side * side, 11))
                .expect("sized");
        let o = (side + 2 * (k / 2) - k) / stride + 1;
        group.throughput(Throughput::Elements(
            (2 * out * (ch / groups) * k * k * o * o) as u64,
        ));
        group.bench_function(name, |b| {
            b.iter(|| pool.install(|| conv_forward("bench", black_box(&x), &p).unwrap()))
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    chains(&mut c);
    convs(&mut c);
    c.final_summary();
}
