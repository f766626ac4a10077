//! Quantized max pooling, u8, single-threaded: the reference (qlab's original per-element max)
//! against `kernels::pool` on the scalar tier and on every SIMD tier the host has, for
//! ResNet's stem pool (3×3 s2 p1 on 64×112×112), GoogLeNet's first pool (3×3 s2 ceil_mode on
//! 192×56×56) and its last (3×3 s2 ceil_mode on 832×14×14, many small planes: the channels-last
//! path); plus the whole `qnn::pool::max_pool2d` op (which allocates its output) on the
//! process's tier; and the float graph's max pool (`graph::ops::pool::max_pool`, what the fp32
//! forward and calibration run) on the same shapes, one thread.
//!
//! `cargo bench --bench pool -- --measurement-time 2`

use criterion::{Criterion, Throughput};
use qlab::engine::Numerics;
use qlab::graph::PoolParams;
use qlab::graph::ops::max_pool;
use qlab::isa::{self, Isa};
use qlab::kernels::pool::{MaxPool, PoolAxis, max_pool2d_on};
use qlab::kernels::reference;
use qlab::qnn::pool::{MaxPool2d, max_pool2d};
use qlab::tensor::{QParams, QStorage, QTensor};
use std::hint::black_box;

/// (name, channels, side, padding, ceil_mode); all 3×3 stride 2.
const POOLS: [(&str, usize, usize, usize, bool); 3] = [
    ("resnet_stem_64x112x112_s2p1", 64, 112, 1, false),
    ("googlenet_192x56x56_s2_ceil", 192, 56, 0, true),
    ("googlenet_832x14x14_s2_ceil", 832, 14, 0, true),
];

fn geometry(channels: usize, side: usize, pad: usize, ceil: bool) -> MaxPool {
    let span = 3;
    let extra = if ceil { 1 } else { 0 };
    let mut out = (side + 2 * pad - span + extra) / 2 + 1;
    if ceil && (out - 1) * 2 >= side + pad {
        out -= 1;
    }
    let axis = PoolAxis {
        len: side,
        kernel: 3,
        stride: 2,
        pad,
        dilation: 1,
        out,
    };
    MaxPool {
        planes: channels,
        rows: axis,
        cols: axis,
    }
}

mod support;

fn bytes(n: usize) -> Vec<u8> {
    support::xorshift(n, 0).map(|s| (s >> 32) as u8).collect()
}

fn pools(c: &mut Criterion) {
    let tiers = support::available(&[Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::Neon]);
    for (name, channels, side, pad, ceil) in POOLS {
        let g = geometry(channels, side, pad, ceil);
        let x = bytes(g.in_len());
        let mut y = vec![0u8; g.out_len()];
        let mut group = c.benchmark_group(format!("max_pool_u8/{name}"));
        group.throughput(Throughput::Bytes(g.in_len() as u64));
        group.bench_function("old_reference", |b| {
            b.iter(|| reference::max_pool2d(&g, black_box(&x), &mut y))
        });
        for &tier in &tiers {
            group.bench_function(format!("new_{tier}"), |b| {
                b.iter(|| max_pool2d_on(tier, &g, black_box(&x), &mut y).unwrap())
            });
        }
        let t = QTensor::from_int_repr(
            QStorage::U8(x.clone()),
            &[1, channels, side, side],
            QParams::PerTensor {
                scale: 0.1,
                zero_point: 3,
            },
        )
        .unwrap();
        let p = MaxPool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [pad, pad],
            dilation: [1, 1],
            ceil_mode: ceil,
        };
        let numerics = Numerics::default();
        group.bench_function(format!("op_{}", isa::selected()), |b| {
            b.iter(|| max_pool2d(black_box(&t), &p, numerics).unwrap())
        });
        group.finish();
        let floats = ndarray::ArrayD::from_shape_vec(
            vec![1, channels, side, side],
            x.iter().map(|&v| v as f32 * 0.1 - 3.0).collect(),
        )
        .expect("sized");
        let fp = PoolParams {
            kernel: vec![3, 3],
            stride: vec![2, 2],
            pad_begin: vec![pad, pad],
            pad_end: vec![pad, pad],
            dilation: vec![1, 1],
            ceil_mode: ceil,
            count_include_pad: false,
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool");
        let mut group = c.benchmark_group(format!("max_pool_f32/{name}"));
        group.throughput(Throughput::Elements(g.in_len() as u64));
        group.bench_function(format!("op_{}", isa::selected()), |b| {
            b.iter(|| one.install(|| max_pool("bench", black_box(&floats), &fp).unwrap()))
        });
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    pools(&mut c);
    c.final_summary();
}
