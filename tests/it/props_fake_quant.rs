//! Properties of fake quantization (NUMERICS §3) and its typed errors: forward equals
//! dequantize(quantize(x)), stays within half a step inside the range, the straight-through mask
//! agrees with the clamp test, per-channel agrees with per-tensor channel by channel, and bad
//! arguments give typed errors instead of panics.

use proptest::prelude::*;
use qlab::fake_quant::{
    FakeQuantError, FakeQuantize, fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine, grad_mask, straight_through,
};
use qlab::qconfig::{Preset, preset};
use qlab::tensor::TensorError;
use qlab::tensor::quantize::{dequantize_val, inv_scale, quantize_val_8bit};

/// An 8-bit-style range `[qmin, qmax]` containing zero and a zero point inside it.
fn range_and_zp() -> impl Strategy<Value = (i64, i64, i64)> {
    (-128i64..=0, 1i64..=127).prop_flat_map(|(lo, hi)| (Just(lo), Just(hi), lo..=hi))
}

fn scale() -> impl Strategy<Value = f64> {
    (1e-4f64..10.0).prop_map(|s| s as f32 as f64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn forward_is_dequantize_of_quantize(
        (qmin, qmax, zp) in range_and_zp(),
        s in scale(),
        x in prop::collection::vec(-2000.0f32..2000.0, 1..64),
    ) {
        let out = fake_quantize_per_tensor_affine(&x, s, zp, qmin, qmax).unwrap();
        let inv = inv_scale(s);
        for (i, &v) in x.iter().enumerate() {
            let q = quantize_val_8bit(v, inv, zp as i32, qmin as i32, qmax as i32);
            let want = dequantize_val(q, zp as i32, s as f32);
            prop_assert_eq!(out.output[i].to_bits(), want.to_bits(), "x={}", v);
        }
    }

    #[test]
    fn within_half_a_step_inside_the_range_and_mask_matches_clamp(
        (qmin, qmax, zp) in range_and_zp(),
        s in scale(),
        x in prop::collection::vec(-2000.0f32..2000.0, 1..64),
    ) {
        let out = fake_quantize_per_tensor_affine(&x, s, zp, qmin, qmax).unwrap();
        let inv = inv_scale(s);
        for (i, &v) in x.iter().enumerate() {
            let r = (v * inv).round_ties_even() as i64 + zp;
            let inside = (qmin..=qmax).contains(&r);
            prop_assert_eq!(out.mask[i], inside, "x={}", v);
            if inside {
                let err = (out.output[i] - v).abs() as f64;
                prop_assert!(err <= s / 2.0 * (1.0 + 1e-5) + v.abs() as f64 * 1e-6, "x={} err={}", v, err);
            }
        }
    }

    #[test]
    fn gradient_passes_inside_and_keeps_the_sign_outside(
        (qmin, qmax, zp) in range_and_zp(),
        s in scale(),
        xg in prop::collection::vec((-2000.0f32..2000.0, -5.0f32..5.0), 1..64),
    ) {
        let (x, g): (Vec<f32>, Vec<f32>) = xg.into_iter().unzip();
        let out = fake_quantize_per_tensor_affine(&x, s, zp, qmin, qmax).unwrap();
        let grad = out.backward(&g).unwrap();
        let factors = grad_mask(&out.mask);
        for i in 0..x.len() {
            prop_assert_eq!((g[i] * factors[i]).to_bits(), grad[i].to_bits());
        }
        for i in 0..x.len() {
            if out.mask[i] {
                prop_assert_eq!(grad[i].to_bits(), g[i].to_bits());
            } else {
                prop_assert_eq!(grad[i], 0.0);
                prop_assert_eq!(grad[i].is_sign_negative(), g[i].is_sign_negative());
            }
        }
    }

    #[test]
    fn per_channel_is_per_tensor_channel_by_channel(
        (qmin, qmax) in (-128i64..=0, 1i64..=127),
        lanes in prop::collection::vec((1e-3f32..4.0, 0.0f64..1.0), 1..5),
        inner in 1usize..6,
        seed in prop::collection::vec(-500.0f32..500.0, 30),
    ) {
        let c = lanes.len();
        let shape = [2, c, inner];
        let x: Vec<f32> = (0..2 * c * inner).map(|i| seed[i % seed.len()] * (1.0 + i as f32 / 7.0)).collect();
        let scales: Vec<f32> = lanes.iter().map(|l| l.0).collect();
        let zps: Vec<i64> = lanes.iter().map(|l| qmin + ((qmax - qmin) as f64 * l.1) as i64).collect();
        let out = fake_quantize_per_channel_affine(&x, &shape, &scales, &zps, 1, qmin, qmax).unwrap();
        for (block, run) in x.chunks(inner).enumerate() {
            let ch = block % c;
            let pt = fake_quantize_per_tensor_affine(run, scales[ch] as f64, zps[ch], qmin, qmax).unwrap();
            let at = block * inner;
            prop_assert_eq!(&out.output[at..at + inner], &pt.output[..]);
            prop_assert_eq!(&out.mask[at..at + inner], &pt.mask[..]);
        }
    }

    #[test]
    fn modules_never_panic(
        which in 0usize..7,
        dims in prop::collection::vec(0usize..4, 0..4),
        seed in prop::collection::vec(prop_oneof![-100.0f32..100.0, Just(f32::NAN), Just(f32::INFINITY)], 1..8),
        flags in prop::collection::vec((any::<bool>(), any::<bool>()), 1..4),
    ) {
        let names = [
            "default_fake_quant", "default_weight_fake_quant", "default_per_channel_weight_fake_quant",
            "default_fused_act_fake_quant", "default_fused_wt_fake_quant",
            "default_fused_per_channel_wt_fake_quant", "default_histogram_fake_quant",
        ];
        let Ok(Preset::FakeQuantize(spec)) = preset(names[which]) else { panic!("preset") };
        let mut fq = FakeQuantize::new(&spec).unwrap();
        let n: usize = dims.iter().product();
        let x: Vec<f32> = (0..n).map(|i| seed[i % seed.len()]).collect();
        for (obs, fake) in flags {
            fq.set_observer_enabled(obs);
            fq.set_fake_quant_enabled(fake);
            if let Ok(y) = fq.forward(&x, &dims) {
                prop_assert_eq!(y.len(), x.len());
                prop_assert_eq!(fq.backward(&x).map(|g| g.len()).ok(), Some(x.len()));
            }
        }
    }
}

#[test]
fn bad_range_is_a_typed_error() {
    for (lo, hi) in [(5, 5), (10, 2), (i64::MIN, 0), (0, i64::MAX)] {
        assert!(matches!(
            fake_quantize_per_tensor_affine(&[1.0], 0.1, 0, lo, hi),
            Err(FakeQuantError::BadRange { .. })
        ));
    }
}

#[test]
fn zero_point_outside_the_range_is_a_typed_error() {
    assert!(matches!(
        fake_quantize_per_tensor_affine(&[1.0], 0.1, 300, 0, 255),
        Err(FakeQuantError::ZeroPointOutOfRange {
            zero_point: 300,
            ..
        })
    ));
    assert!(matches!(
        fake_quantize_per_channel_affine(&[1.0, 2.0], &[2], &[0.1, 0.1], &[0, -1], 0, 0, 255),
        Err(FakeQuantError::ZeroPointOutOfRange { channel: 1, .. })
    ));
}

#[test]
fn bad_scales_are_typed_errors() {
    for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e-45] {
        assert!(
            matches!(
                fake_quantize_per_tensor_affine(&[1.0], s, 0, 0, 255),
                Err(FakeQuantError::BadScale { .. })
            ),
            "scale {s}"
        );
    }
    assert!(matches!(
        fake_quantize_per_channel_affine(&[1.0, 2.0], &[2], &[0.1, f32::NAN], &[0, 0], 0, 0, 255),
        Err(FakeQuantError::BadScale { channel: 1, .. })
    ));
}

#[test]
fn per_channel_shape_errors_are_typed() {
    let x = [1.0f32; 6];
    let e = |r: Result<_, FakeQuantError>| r.err().unwrap();
    assert!(matches!(
        e(fake_quantize_per_channel_affine(
            &x,
            &[2, 3],
            &[0.1; 3],
            &[0; 3],
            2,
            0,
            255
        )),
        FakeQuantError::Tensor(TensorError::AxisOutOfBounds { axis: 2, ndim: 2 })
    ));
    assert!(matches!(
        e(fake_quantize_per_channel_affine(
            &x,
            &[2, 3],
            &[0.1; 3],
            &[0; 3],
            -1,
            0,
            255
        )),
        FakeQuantError::Tensor(TensorError::AxisOutOfBounds { .. })
    ));
    assert!(matches!(
        e(fake_quantize_per_channel_affine(
            &x,
            &[2, 3],
            &[0.1; 3],
            &[0; 2],
            1,
            0,
            255
        )),
        FakeQuantError::Tensor(TensorError::ChannelCountMismatch { .. })
    ));
    assert!(matches!(
        e(fake_quantize_per_channel_affine(
            &x,
            &[2, 3],
            &[0.1; 2],
            &[0; 2],
            1,
            0,
            255
        )),
        FakeQuantError::Tensor(TensorError::ChannelCountMismatch { .. })
    ));
    assert!(matches!(
        e(fake_quantize_per_channel_affine(
            &x,
            &[4, 3],
            &[0.1; 3],
            &[0; 3],
            1,
            0,
            255
        )),
        FakeQuantError::Tensor(TensorError::ShapeMismatch { .. })
    ));
}

#[test]
fn gradient_length_and_order_errors_are_typed() {
    assert!(matches!(
        straight_through(&[true, false], &[1.0]),
        Err(FakeQuantError::GradLength {
            expected: 2,
            got: 1
        })
    ));
    let Ok(Preset::FakeQuantize(spec)) = preset("default_fake_quant") else {
        panic!("preset")
    };
    let fq = FakeQuantize::new(&spec).unwrap();
    assert_eq!(fq.backward(&[1.0]), Err(FakeQuantError::NoForward));
    assert_eq!(fq.mask(), None);
}

#[test]
fn disabled_observer_freezes_initial_qparams() {
    // NUMERICS §3.3: never-updated buffers mean s=1, z=0: [0.123, -0.5, 2.0] -> [0, 0, 2] on 0..127.
    let Ok(Preset::FakeQuantize(spec)) = preset("default_fake_quant") else {
        panic!("preset")
    };
    let mut fq = FakeQuantize::new(&spec).unwrap();
    fq.set_observer_enabled(false);
    assert_eq!(
        fq.forward(&[0.123, -0.5, 2.0], &[3]).unwrap(),
        vec![0.0, 0.0, 2.0]
    );
    assert_eq!((fq.scale(), fq.zero_point()), (&[1.0f32][..], &[0i64][..]));
}

#[test]
fn default_fake_quant_clamps_to_the_reduced_range() {
    // NUMERICS §3.3: on [-1, 3], scale 0.031496063, zp 32, output [-1.007874, 2.992126].
    let Ok(Preset::FakeQuantize(spec)) = preset("default_fake_quant") else {
        panic!("preset")
    };
    let mut fq = FakeQuantize::new(&spec).unwrap();
    let y = fq.forward(&[-1.0, 3.0], &[2]).unwrap();
    assert_eq!(fq.quant_range(), (0, 127));
    assert_eq!((fq.scale()[0], fq.zero_point()[0]), (0.031496063, 32));
    assert_eq!(y, vec![-1.007874, 2.992126]);
}
