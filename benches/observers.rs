//! Observer throughput: MinMaxObserver and HistogramObserver forward over 4M floats, the histc
//! binning kernel alone per ISA tier, and HistogramObserver calculate_qparams over a realistic
//! 2048-bin histogram.
//!
//! Data are normal-ish (sum of four uniforms from a fixed xorshift), so runs are reproducible
//! without extra crates.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qlab::observer::{ObserverKind, ObserverSpec};
use std::hint::black_box;

const N: usize = 4 << 20;

/// Deterministic approximately normal data (Irwin-Hall of 4 uniforms, centred).
fn normalish(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| (uniform() + uniform() + uniform() + uniform() - 2.0) * 1.7)
        .collect()
}

fn observers(c: &mut Criterion) {
    let x = normalish(N, 0x9E37_79B9_7F4A_7C15);
    let shape = [N];
    let mut g = c.benchmark_group("observer_forward");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("minmax_4M", |b| {
        let mut obs = ObserverSpec::new(ObserverKind::MinMax).build().unwrap();
        b.iter(|| obs.forward(black_box(&x), &shape).unwrap())
    });
    g.bench_function("histogram_4M", |b| {
        let mut obs = ObserverSpec::new(ObserverKind::Histogram).build().unwrap();
        // The steady state: the range is already known, so each batch is binned and added.
        obs.forward(&x, &shape).unwrap();
        b.iter(|| obs.forward(black_box(&x), &shape).unwrap())
    });
    g.finish();

    // The binning kernel alone, per ISA tier the host has.
    let mut g = c.benchmark_group("histc_4M");
    g.throughput(Throughput::Elements(N as u64));
    for isa in qlab::isa::ALL.into_iter().filter(|t| t.is_available()) {
        g.bench_function(isa.name(), |b| {
            b.iter(|| {
                black_box(qlab::observer::histc_on(black_box(&x), 2048, -8.0, 8.0, isa).unwrap())
            })
        });
    }
    g.finish();

    let mut obs = ObserverSpec::new(ObserverKind::Histogram).build().unwrap();
    obs.forward(&x, &shape).unwrap();
    obs.forward(&normalish(N, 7), &shape).unwrap();
    let mut g = c.benchmark_group("observer_qparams");
    g.bench_function("histogram_2048_bins", |b| {
        b.iter(|| black_box(obs.calculate_qparams().unwrap()))
    });
    g.finish();
}

criterion_group!(benches, observers);
criterion_main!(benches);
