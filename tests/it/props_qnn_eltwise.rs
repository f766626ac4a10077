//! Properties of the quantized elementwise, pooling and resizing ops that hold for any data and
//! every engine: identities that the exact rounding rules must preserve.

use proptest::prelude::*;
use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::qnn::{
    AdaptiveAvgPool2d, AvgPool2d, Layout, MaxPool2d, ResizeMode, ResizeTarget, activation,
    functional, interpolate,
};
use qlab::tensor::{QDType, QParams, QStorage, QTensor};

/// A quint8 or qint8 `[N, C, H, W]` tensor with random integers and qparams.
fn qtensor() -> impl Strategy<Value = QTensor> {
    (
        any::<bool>(),
        1usize..3,
        1usize..4,
        1usize..6,
        1usize..6,
        1e-3f64..1.0,
        0i64..256,
    )
        .prop_flat_map(|(signed, n, c, h, w, scale, zp)| {
            let dtype = if signed {
                QDType::QInt8
            } else {
                QDType::QUInt8
            };
            let (lo, hi) = (dtype.qmin() as i32, dtype.qmax() as i32);
            let zero_point = zp + dtype.qmin();
            proptest::collection::vec(lo..=hi, n * c * h * w).prop_map(move |v| {
                QTensor::from_int_repr(
                    QStorage::from_i32(dtype, v),
                    &[n, c, h, w],
                    QParams::PerTensor { scale, zero_point },
                )
                .unwrap()
            })
        })
}

fn engines() -> impl Strategy<Value = Numerics> {
    prop::sample::select(Engine::ALL.to_vec()).prop_map(|e| Numerics::new(e, HostProfile::Vnni))
}

proptest! {
    #[test]
    fn unit_windows_and_same_size_resizes_are_identities(x in qtensor(), numerics in engines()) {
        let want = x.int_values();
        // QNNPACK (quint8 on qnnpack) rejects 1x1 pooling windows, as PyTorch does.
        let qnnpack_pool = numerics.engine == Engine::Qnnpack && x.dtype() == QDType::QUInt8;
        let max = MaxPool2d::new(1).forward(&x, numerics);
        prop_assert_eq!(max.is_err(), qnnpack_pool);
        if let Ok(max) = max {
            prop_assert_eq!(max.int_values(), want.clone());
        }
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let avg = AvgPool2d { layout, ..AvgPool2d::new(1) }.forward(&x, numerics);
            prop_assert_eq!(avg.is_err(), qnnpack_pool);
            if let Ok(avg) = avg {
                prop_assert_eq!(avg.int_values(), want.clone());
            }
            let (h, w) = (x.shape()[2], x.shape()[3]);
            let ada = AdaptiveAvgPool2d { output_size: [h, w], layout }.forward(&x, numerics);
            prop_assert_eq!(ada.unwrap().int_values(), want.clone());
        }
        let size = ResizeTarget::Size([x.shape()[2], x.shape()[3]]);
        for mode in [
            ResizeMode::Nearest,
            ResizeMode::Bilinear { align_corners: false },
            ResizeMode::Bilinear { align_corners: true },
        ] {
            prop_assert_eq!(interpolate(&x, size, mode).unwrap().int_values(), want.clone());
        }
    }

    #[test]
    fn clamps_stay_inside_their_bounds(x in qtensor(), lo in -3.0f32..0.0, hi in 0.0f32..3.0) {
        let z = x.q_zero_point().unwrap() as i32;
        let y = activation::hardtanh(&x, lo, hi).unwrap().int_values();
        let r = activation::relu(&x).unwrap().int_values();
        for ((&yi, &ri), &xi) in y.iter().zip(&r).zip(&x.int_values()) {
            prop_assert!(ri >= z && (ri == xi || ri == z));
            // hardtanh's bounds bracket z (lo <= 0 <= hi): a value either stays or moves toward z
            // without crossing it.
            let toward_z = (yi - z) * (xi - z) >= 0 && (yi - z).abs() < (xi - z).abs();
            prop_assert!(yi == xi || toward_z);
        }
    }

    #[test]
    fn cat_with_the_inputs_qparams_copies_integers(x in qtensor()) {
        let (s, z) = (x.q_scale().unwrap(), x.q_zero_point().unwrap());
        let y = functional::cat(&[&x, &x], 1, s, z).unwrap();
        let plane = x.shape()[1] * x.shape()[2] * x.shape()[3];
        let want: Vec<i32> = x.int_values().chunks(plane).flat_map(|c| c.iter().chain(c)).copied().collect();
        prop_assert_eq!(y.int_values(), want);
    }

    #[test]
    fn adding_the_zero_point_changes_nothing(x in qtensor(), numerics in engines()) {
        // b holds real zeros; with a's qparams as output, add is the identity on every engine
        // (the qnnpack ratio 1 and 1/2 are exact in fixed point).
        let (s, z) = (x.q_scale().unwrap(), x.q_zero_point().unwrap());
        let zeros = QTensor::from_int_repr(
            QStorage::from_i32(x.dtype(), vec![z as i32; x.numel()]),
            x.shape(),
            QParams::PerTensor { scale: s / 2.0, zero_point: z },
        )
        .unwrap();
        let y = functional::add(&x, &zeros, s, z, false, numerics).unwrap();
        prop_assert_eq!(y.int_values(), x.int_values());
    }
}
