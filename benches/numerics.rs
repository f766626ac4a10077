//! Elementwise numerics per ISA tier over 4·2^20 floats: quantize_per_tensor (quint8, qint32),
//! dequantize (quint8), per-channel quantize/dequantize (a qint8 weight of 1024 channels) and
//! min_max, single-threaded, into preallocated buffers.
//!
//! `cargo bench --bench numerics` runs the criterion groups (throughput in elements/s), then
//! prints a dependency-free summary: the median of repeated runs per tier in G elements/s (no
//! PyTorch figures: those of another machine make no ratio), the same ops through
//! `QTensor` (which allocate their output, as PyTorch's do), and a plain copy as the
//! memory-bandwidth yardstick.

use criterion::{Criterion, Throughput};
use qlab::isa::Isa;
use qlab::tensor::simd::{self, ChannelLayout};
use qlab::tensor::{QDType, QTensor};
use std::hint::black_box;
use std::time::{Duration, Instant};

const N: usize = 4 << 20;
const SCALE: f64 = 0.05;
const ZERO_POINT: i32 = 128;
mod support;

const TIERS: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni];

/// Deterministic inputs in about [-6.4, 6.4] (a xorshift stream; no rand dependency).
fn inputs(n: usize) -> Vec<f32> {
    support::xorshift(n, 0)
        .map(|s| ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 12.8)
        .collect()
}

/// The tiers this host runs; the others are reported.
fn tiers() -> Vec<Isa> {
    support::available(&TIERS)
}

/// One benchmarked operation: a name, bytes moved per element, and the body for a tier.
struct Op {
    name: &'static str,
    bytes_per_element: usize,
    run: Box<dyn FnMut(Isa)>,
}

/// Per-channel qparams of a weight of 1024 output channels (axis 0), `n / 1024` inputs each.
fn weight_qparams(n: usize) -> (ChannelLayout, Vec<f64>, Vec<i64>) {
    let channels = 1024;
    let scales = (0..channels).map(|c| 0.01 + c as f64 * 1e-5).collect();
    let layout = ChannelLayout {
        channels,
        inner: n / channels,
    };
    (layout, scales, vec![0; channels])
}

fn make_ops(n: usize) -> Vec<Op> {
    let x = inputs(n);
    let mut q = vec![0u8; n];
    simd::quantize_per_tensor_u8(&x, &mut q, SCALE, ZERO_POINT);
    let (xq, xm) = (x.clone(), x.clone());
    let mut qout = vec![0u8; n];
    let mut fout = vec![0f32; n];
    let (x32, mut out32) = (x.clone(), vec![0i32; n]);
    let xc = x.clone();
    let (mut cout, mut qc, mut fcout) = (vec![0i8; n], vec![0i8; n], vec![0f32; n]);
    let (layout, scales, zps) = weight_qparams(n);
    simd::quantize_per_channel(&x, &mut qc, layout, &scales, &zps);
    vec![
        Op {
            name: "quantize_per_tensor_quint8",
            bytes_per_element: 5,
            run: Box::new(move |isa| {
                simd::quantize_per_tensor_on(isa, black_box(&xq), &mut qout, SCALE, ZERO_POINT)
                    .unwrap();
                black_box(&qout);
            }),
        },
        Op {
            name: "quantize_per_tensor_qint32",
            bytes_per_element: 8,
            run: Box::new(move |isa| {
                simd::quantize_per_tensor_on(isa, black_box(&x32), &mut out32, SCALE, ZERO_POINT)
                    .unwrap();
                black_box(&out32);
            }),
        },
        Op {
            name: "dequantize_quint8",
            bytes_per_element: 5,
            run: Box::new(move |isa| {
                simd::dequantize_per_tensor_on(isa, black_box(&q), &mut fout, SCALE, ZERO_POINT)
                    .unwrap();
                black_box(&fout);
            }),
        },
        Op {
            name: "quantize_per_channel_qint8",
            bytes_per_element: 5,
            run: Box::new(move |isa| {
                let (layout, scales, zps) = weight_qparams(n);
                simd::quantize_per_channel_on(
                    isa,
                    black_box(&xc),
                    &mut cout,
                    layout,
                    &scales,
                    &zps,
                )
                .unwrap();
                black_box(&cout);
            }),
        },
        Op {
            name: "dequantize_per_channel_qint8",
            bytes_per_element: 5,
            run: Box::new(move |isa| {
                let (layout, scales, zps) = weight_qparams(n);
                simd::dequantize_per_channel_on(
                    isa,
                    black_box(&qc),
                    &mut fcout,
                    layout,
                    &scales,
                    &zps,
                )
                .unwrap();
                black_box(&fcout);
            }),
        },
        Op {
            name: "min_max",
            bytes_per_element: 4,
            run: Box::new(move |isa| {
                black_box(simd::min_max_on(isa, black_box(&xm)).unwrap());
            }),
        },
    ]
}

fn criterion_groups(c: &mut Criterion, ops: &mut [Op], tiers: &[Isa]) {
    for op in ops.iter_mut() {
        let mut group = c.benchmark_group(op.name);
        group.throughput(Throughput::Elements(N as u64));
        group
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for &isa in tiers {
            group.bench_function(isa.name(), |b| b.iter(|| (op.run)(isa)));
        }
        group.finish();
    }
}

/// Median wall time of `reps` calls after two warm-up calls.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

/// One summary row: throughput of `n` elements in `secs`, and bytes moved.
fn line(what: &str, tier: &str, n: usize, secs: f64, bytes_per_element: usize) {
    let g = n as f64 / secs / 1e9;
    println!(
        "{what:<28} {tier:<11} {n:>8} {g:6.2} G elements/s {:6.1} GB/s",
        g * bytes_per_element as f64
    );
}

/// Median of 31 runs per op and tier at `n` elements; `reps` calls per run for small `n`.
fn op_rows(ops: &mut [Op], tiers: &[Isa], n: usize, reps: usize) {
    for op in ops.iter_mut() {
        for &isa in tiers {
            let secs = median_secs(31, || (0..reps).for_each(|_| (op.run)(isa))) / reps as f64;
            line(op.name, isa.name(), n, secs, op.bytes_per_element);
        }
    }
}

fn summary(ops: &mut [Op], tiers: &[Isa]) {
    println!(
        "\nsummary: single thread, median of 31 runs (op, tier, elements, throughput, bytes moved)"
    );
    op_rows(ops, tiers, N, 1);
    // The QTensor entry points allocate their output, as torch.quantize_per_tensor does.
    let x = inputs(N);
    let shape = [N];
    let tier = qlab::isa::selected().name();
    let secs = median_secs(31, || {
        let q = QTensor::quantize_per_tensor(
            black_box(&x),
            &shape,
            SCALE,
            ZERO_POINT as i64,
            QDType::QUInt8,
        );
        black_box(q.unwrap());
    });
    line("QTensor::quantize_per_tensor", tier, N, secs, 5);
    let q =
        QTensor::quantize_per_tensor(&x, &shape, SCALE, ZERO_POINT as i64, QDType::QUInt8).unwrap();
    let secs = median_secs(31, || {
        black_box(black_box(&q).dequantize());
    });
    line("QTensor::dequantize", tier, N, secs, 5);
    // Yardsticks for the memory-bound question: a plain f32 copy (8 bytes per element) at the
    // same size, and the kernels on a buffer that stays in L2.
    let mut y = vec![0f32; N];
    let secs = median_secs(31, || {
        y.copy_from_slice(black_box(&x));
        black_box(&y);
    });
    line("copy f32 (yardstick)", "-", N, secs, 8);
    let small = 1 << 16;
    op_rows(&mut make_ops(small), tiers, small, 64);
}

fn main() {
    let tiers = tiers();
    let mut ops = make_ops(N);
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &mut ops, &tiers);
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not and only smoke-runs the groups.
    if std::env::args().any(|a| a == "--bench") {
        summary(&mut ops, &tiers);
    }
}
