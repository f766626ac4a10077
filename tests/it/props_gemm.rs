//! Every GEMM tier the host has against the scalar reference: accumulators and saturated-pair
//! counts identical, for exact and pair-saturating semantics, and the bytes of the fused
//! requantizing form identical to the element rule's.
//!
//! Shapes cross every tile edge (M = 1, rows past the 4- and 8-row tiles and the 192-row block,
//! N off the 8- and 32-column panels, K off the groups of 4, K odd, K past 4096 as in a deep
//! layer, whose panels are large enough for the driver to prefetch the next one). Values are
//! drawn towards the extremes (0 / 255 activations, −128 / 127 weights) so pairs saturate often;
//! a third of the cases have 7-bit activations (fbgemm's `reduce_range`), where no pair can
//! saturate and AVX2 runs its bounded-pair tile. Tiers the host lacks are reported as
//! `skipped <tier>: <reason>`, the others as
//! `testing <tier>: <exact kernel> / <bounded kernel> / <saturating kernel>` (on aarch64: NEON
//! and dotprod beside the reference).

use crate::support::{self, Stream};
use proptest::prelude::*;
use qlab::isa::{ALL, Isa};
use qlab::kernels::gemm::{
    GemmWeights, KMajorU8, PackCache, PairSums, flip_weights, gemm_on, gemm_u8_i8_u8_on,
    gemm_weights_kmajor_on, kernel_name, pair_sums,
};
use qlab::kernels::reference;
use qlab::kernels::requant::{FbgemmRequant, QnnpackRequant, Requant};

fn tiers() -> Vec<Isa> {
    support::tiers(|isa| {
        let [exact, bounded, saturating] =
            [PairSums::Exact, PairSums::Bounded, PairSums::Saturating].map(|s| kernel_name(isa, s));
        format!("{exact} / {bounded} / {saturating}")
    })
}

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    a_zp: i32,
    per_channel: bool,
    w_zp: i32,
    seed: u64,
    extreme: u64,
    /// Activations at most 127: no pair can reach an int16 bound.
    seven_bit: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let small = (1usize..=20, 1usize..=70, 1usize..=70);
    // Tall cases cross the driver's 192-row block boundary.
    let tall = (180usize..=200, 1usize..=40, 1usize..=12);
    // Deep cases: over 40 columns their 32-column panels pass 256 KiB, and past 12 rows the
    // AVX-512 tiles prefetch the next panel.
    let deep = (1usize..=14, 1usize..=40, 4090usize..=4200);
    (
        prop_oneof![8 => small, 2 => tall, 1 => deep],
        prop::sample::select(vec![0, 128, 255]),
        any::<bool>(),
        prop_oneof![Just(0), -128i32..=127],
        any::<u64>(),
        0u64..=8,
        prop::bool::weighted(0.35),
    )
        .prop_map(
            |((m, n, k), a_zp, per_channel, w_zp, seed, extreme, seven_bit)| Case {
                m,
                n,
                k,
                a_zp,
                per_channel,
                w_zp,
                seed: seed | 1,
                extreme,
                seven_bit,
            },
        )
}

struct Operands {
    a: Vec<u8>,
    w: Vec<i8>,
    zps: Vec<i32>,
}

fn operands(c: &Case) -> Operands {
    let mut s = Stream(c.seed);
    let mask = if c.seven_bit { 0x7f } else { 0xff };
    let a = (0..c.m * c.k)
        .map(|_| s.byte(c.extreme, 0, 255) & mask)
        .collect();
    let w = (0..c.n * c.k)
        .map(|_| s.byte(c.extreme, 0x80, 0x7f) as i8)
        .collect();
    let zps = if c.per_channel {
        (0..c.n)
            .map(|i| {
                if i % 3 == 0 {
                    c.w_zp
                } else {
                    (s.next() % 256) as i32 - 128
                }
            })
            .collect()
    } else {
        vec![c.w_zp]
    };
    Operands { a, w, zps }
}

fn check(c: &Case, saturate: bool) -> Result<(), TestCaseError> {
    let ops = operands(c);
    let mut want = vec![0i32; c.m * c.n];
    let want_sat = reference::gemm_u8_i8_i32(
        c.m, c.n, c.k, &ops.a, c.a_zp, &ops.w, &ops.zps, saturate, &mut want,
    );
    let cache = PackCache::default();
    for tier in tiers() {
        // Once packing per call, twice through the cache (the second reuses the panels).
        for cached in [None, Some(&cache), Some(&cache)] {
            let w = GemmWeights {
                data: &ops.w,
                n: c.n,
                k: c.k,
                zero_points: &ops.zps,
                cache: cached,
            };
            let mut got = vec![i32::MIN; c.m * c.n];
            let sat = gemm_on(tier, c.m, &ops.a, c.a_zp, &w, saturate, &mut got).unwrap();
            prop_assert_eq!(
                &got,
                &want,
                "{} saturate={} cached={}",
                tier,
                saturate,
                cached.is_some()
            );
            prop_assert_eq!(sat, want_sat, "{} saturate={} count", tier, saturate);
            // The fused form: each tile row requantized in the epilogue, column c as channel c.
            for rq in requants(c) {
                let want_u8: Vec<u8> = want
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| rq.apply(v, i % c.n))
                    .collect();
                let mut got_u8 = vec![0u8; c.m * c.n];
                let sat =
                    gemm_u8_i8_u8_on(tier, c.m, &ops.a, c.a_zp, &w, saturate, &rq, &mut got_u8)
                        .unwrap();
                prop_assert_eq!(
                    &got_u8,
                    &want_u8,
                    "{} saturate={} requantized",
                    tier,
                    saturate
                );
                prop_assert_eq!(sat, want_sat);
            }
        }
    }
    Ok(())
}

/// Both engines' rules with a different multiplier and bias per channel, scaled so the
/// accumulators land around the output range; ReLU on half the cases.
fn requants(c: &Case) -> [Requant; 2] {
    let scales: Vec<f64> = (0..c.n).map(|i| 1e-4 * (1 + i % 11) as f64).collect();
    let bias: Vec<f32> = (0..c.n).map(|i| i as f32 * 0.7 - 20.0).collect();
    let relu = c.seed % 4 < 2;
    let (s, b) = (&scales[..], Some(&bias[..]));
    [
        Requant::Fbgemm(FbgemmRequant::new(0.5, s, b, 0.05, 100, relu, c.n)),
        Requant::Qnnpack(QnnpackRequant::new(0.5, s, b, 0.05, 100, relu, c.n)),
    ]
}

/// The weights-as-rows GEMM (an NCHW conv's form) on every tier: `w` (`n × k`, one zero point)
/// times the k-major transpose of `a` must be the transpose of the reference's result.
fn check_kmajor(c: &Case) -> Result<(), TestCaseError> {
    let ops = operands(c);
    let zps = [ops.zps[0]];
    let mut want = vec![0i32; c.m * c.n];
    reference::gemm_u8_i8_i32(
        c.m, c.n, c.k, &ops.a, c.a_zp, &ops.w, &zps, false, &mut want,
    );
    let kmajor: Vec<u8> = (0..c.k)
        .flat_map(|kk| (0..c.m).map(move |i| (i, kk)))
        .map(|(i, kk)| ops.a[i * c.k + kk])
        .collect();
    let b = KMajorU8 {
        data: &kmajor,
        n: c.m,
        k: c.k,
        zero_point: c.a_zp,
    };
    let flipped = flip_weights(&ops.w);
    for tier in tiers() {
        let mut got = vec![i32::MIN; c.m * c.n];
        gemm_weights_kmajor_on(tier, c.n, &flipped, zps[0], &b, &mut got).unwrap();
        for (o, row) in got.chunks_exact(c.m).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                prop_assert_eq!(v, want[i * c.n + o], "{} row {} position {}", tier, o, i);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn weights_as_rows_tiers_equal_reference(c in case()) {
        check_kmajor(&c)?;
    }

    #[test]
    fn exact_tiers_equal_reference(c in case()) {
        check(&c, false)?;
    }

    #[test]
    fn pair_saturating_tiers_equal_reference(c in case()) {
        check(&c, true)?;
    }
}

/// All-extreme operands saturate every pair: the count must be exact and exact mode must not
/// saturate at all on any tier.
#[test]
fn saturation_is_counted_and_never_leaks_into_exact_mode() {
    let (m, n, k) = (3, 37, 33);
    let a = vec![255u8; m * k];
    // Even columns all 127, odd ones all -128: every full pair saturates one way or the other.
    let w: Vec<i8> = (0..n * k)
        .map(|i| if (i / k) % 2 == 0 { 127 } else { -128 })
        .collect();
    let zps = [0];
    let weights = GemmWeights {
        data: &w,
        n,
        k,
        zero_points: &zps,
        cache: None,
    };
    for saturate in [false, true] {
        let mut want = vec![0i32; m * n];
        let want_sat = reference::gemm_u8_i8_i32(m, n, k, &a, 0, &w, &zps, saturate, &mut want);
        assert_eq!(want_sat > 0, saturate);
        for tier in tiers() {
            let mut got = vec![0i32; m * n];
            let sat = gemm_on(tier, m, &a, 0, &weights, saturate, &mut got).unwrap();
            assert_eq!(
                (got, sat),
                (want.clone(), want_sat),
                "{tier} saturate={saturate}"
            );
        }
    }
}

#[test]
fn unavailable_tier_is_an_error() {
    let w = GemmWeights {
        data: &[1],
        n: 1,
        k: 1,
        zero_points: &[0],
        cache: None,
    };
    for tier in ALL.into_iter().filter(|t| !t.is_available()) {
        assert!(gemm_on(tier, 1, &[1], 0, &w, false, &mut [0]).is_err());
    }
}

/// Empty M, N or K: zero-sized outputs, or all-zero-point accumulators when K = 0.
#[test]
fn empty_dimensions_equal_reference() {
    for (m, n, k) in [(0, 3, 5), (2, 0, 5), (2, 3, 0), (0, 0, 0)] {
        let (a, w) = (vec![7u8; m * k], vec![-3i8; n * k]);
        let zps = [5];
        let weights = GemmWeights {
            data: &w,
            n,
            k,
            zero_points: &zps,
            cache: None,
        };
        for saturate in [false, true] {
            let mut want = vec![1i32; m * n];
            reference::gemm_u8_i8_i32(m, n, k, &a, 128, &w, &zps, saturate, &mut want);
            for tier in tiers() {
                let mut got = vec![1i32; m * n];
                let sat = gemm_on(tier, m, &a, 128, &weights, saturate, &mut got).unwrap();
                assert_eq!((got, sat), (want.clone(), 0), "{tier} {m}x{n}x{k}");
            }
        }
    }
}

/// Large enough to be split into parallel tasks: every tier gives the reference's integers on a
/// one-thread and a three-thread pool alike (the split is fixed and the sums exact).
#[test]
fn results_do_not_depend_on_the_thread_count() {
    for mask in [0xff, 0x7f] {
        thread_count_case(mask);
    }
}

/// [`results_do_not_depend_on_the_thread_count`] on activations `& mask` (0x7f: the bounded
/// tile on AVX2).
fn thread_count_case(mask: u8) {
    let (m, n, k) = (400, 300, 72);
    let mut s = Stream(0x9e37_79b9_7f4a_7c15);
    let a: Vec<u8> = (0..m * k).map(|_| s.byte(2, 0, 255) & mask).collect();
    let w: Vec<i8> = (0..n * k).map(|_| s.byte(2, 0x80, 0x7f) as i8).collect();
    every_tier_on_pools(m, n, k, (&a, 128), (&w, &[3]), &format!("mask {mask:#x}"));
}

/// A deep layer's GEMM (ResNet18's 512-channel 3×3 conv on 7×7: 49 rows, K = 4608), with three
/// 32-column panels of 147 KiB: past the size from which the driver has each row tile
/// prefetch part of the next panel, and with several row tiles per panel, so the prefetching
/// tiles run (on AVX-512 VNNI hosts) on one and three threads; every tier gives the
/// reference's integers.
#[test]
fn deep_layer_with_prefetched_panels_equals_reference() {
    let (m, n, k) = (49, 80, 4608);
    let mut s = Stream(0x2545_f491_4f6c_dd1d);
    let a: Vec<u8> = (0..m * k).map(|_| s.byte(2, 0, 255)).collect();
    let w: Vec<i8> = (0..n * k).map(|_| s.byte(2, 0x80, 0x7f) as i8).collect();
    every_tier_on_pools(m, n, k, (&a, 7), (&w, &[0]), "deep layer");
}

/// The exact GEMM of `a` (with its zero point) and `w` (with its zero points) on every tier,
/// in a one-thread and a three-thread pool, equals the reference's integers.
fn every_tier_on_pools(
    m: usize,
    n: usize,
    k: usize,
    (a, a_zp): (&[u8], i32),
    (w, zps): (&[i8], &[i32]),
    label: &str,
) {
    let weights = GemmWeights {
        data: w,
        n,
        k,
        zero_points: zps,
        cache: None,
    };
    let mut want = vec![0i32; m * n];
    reference::gemm_u8_i8_i32(m, n, k, a, a_zp, w, zps, false, &mut want);
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for tier in tiers() {
            let mut got = vec![0i32; m * n];
            pool.install(|| gemm_on(tier, m, a, a_zp, &weights, false, &mut got))
                .unwrap();
            assert_eq!(got, want, "{tier} on {threads} thread(s), {label}");
        }
    }
}

/// A request is bounded exactly when its largest activation byte times the weight's pair bound
/// stays inside int16, whichever sums it asks for; exact requests are only classified where
/// that changes the kernel (AVX2).
#[test]
fn pair_sums_follow_the_int16_bound() {
    let w = [127i8, 127, -3, 1];
    let weights = GemmWeights {
        data: &w,
        n: 1,
        k: 4,
        zero_points: &[0],
        cache: None,
    };
    // 129·254 = 32766 fits; 130·254 = 33020 does not.
    for (x_max, saturate, want) in [
        (129u8, true, PairSums::Bounded),
        (130, true, PairSums::Saturating),
        (129, false, PairSums::Bounded),
        (130, false, PairSums::Exact),
    ] {
        let x = [0, x_max, 7, 1];
        assert_eq!(
            pair_sums(Isa::Avx2, saturate, &x, &weights),
            want,
            "x max {x_max}, saturate {saturate}"
        );
    }
    assert_eq!(
        pair_sums(Isa::Avx512Vnni, false, &[1], &weights),
        PairSums::Exact
    );
}
