//! int8 GEMM per ISA tier on `qlab bench`'s linear shapes (`qlab::bench::ANCHORS`): the raw
//! kernel (`gemm_on` with cached panels, i32 accumulators only) and the whole `QLinear::forward`
//! (with requantization), whose GOPS `qlab bench` prints beside the tier's measured peak. Throughput is reported as 2·M·N·K elements, i.e.
//! G elements/s reads as GOPS. Single-threaded.
//!
//! `cargo bench --bench int8_gemm` (add `-- --quick` for a short run).

use criterion::{Criterion, Throughput};
use qlab::bench::ANCHORS;
use qlab::isa::Isa;
use qlab::kernels::gemm::{GemmWeights, PackCache, gemm_on};
use std::hint::black_box;

fn raw_gemm(c: &mut Criterion) {
    for tier in [Isa::Avx2, Isa::Avx512Vnni] {
        if let Err(e) = tier.check() {
            println!("skipped {tier}: {e}");
            continue;
        }
        for saturate in [false, true] {
            let mut group = c.benchmark_group(format!(
                "int8_gemm/{tier}/{}",
                if saturate {
                    "pairs-saturating"
                } else {
                    "exact"
                }
            ));
            group.sample_size(10);
            for s in &ANCHORS {
                let a: Vec<u8> = (0..s.m * s.k).map(|i| (i * 7 % 251) as u8).collect();
                let w: Vec<i8> = (0..s.n * s.k).map(|i| (i * 13 % 255) as i8).collect();
                let cache = PackCache::default();
                let weights = GemmWeights {
                    data: &w,
                    n: s.n,
                    k: s.k,
                    zero_points: &[3],
                    cache: Some(&cache),
                };
                let mut acc = vec![0i32; s.m * s.n];
                group.throughput(Throughput::Elements(2 * (s.m * s.n * s.k) as u64));
                group.bench_function(format!("{}x{}x{}", s.m, s.k, s.n), |b| {
                    b.iter(|| {
                        gemm_on(tier, s.m, black_box(&a), 128, &weights, saturate, &mut acc)
                            .expect("tier checked")
                    })
                });
            }
            group.finish();
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    raw_gemm(&mut c);
    c.final_summary();
    print!("{}", qlab::bench::run(3).expect("tiers restore").render());
}
