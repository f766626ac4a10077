//! Bad input to the tensor layer yields the typed error that names the field, never a panic.

use qlab::tensor::{QDType, QParams, QStorage, QTensor, TensorError, choose_quantization_params};

#[test]
fn zero_point_outside_dtype_is_rejected() {
    let err = QTensor::quantize_per_tensor(&[1.0], &[1], 0.1, 256, QDType::QUInt8).unwrap_err();
    assert_eq!(
        err,
        TensorError::ZeroPointOutOfRange {
            zero_point: 256,
            dtype: "quint8",
            qmin: 0,
            qmax: 255
        }
    );
    let err = QTensor::quantize_per_tensor(&[1.0], &[1], 0.1, -129, QDType::QInt8).unwrap_err();
    assert!(matches!(
        err,
        TensorError::ZeroPointOutOfRange {
            zero_point: -129,
            dtype: "qint8",
            ..
        }
    ));
    let err =
        QTensor::quantize_per_channel(&[1.0, 2.0], &[2], &[0.1, 0.1], &[0, 300], 0, QDType::QUInt8)
            .unwrap_err();
    assert!(matches!(
        err,
        TensorError::ZeroPointOutOfRange {
            zero_point: 300,
            ..
        }
    ));
}

#[test]
fn unusable_scales_are_rejected() {
    for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = QTensor::quantize_per_tensor(&[1.0], &[1], scale, 0, QDType::QInt8).unwrap_err();
        assert!(
            matches!(err, TensorError::BadScale { .. }),
            "scale {scale}: {err:?}"
        );
    }
}

#[test]
fn per_channel_axis_out_of_bounds() {
    let x = [0.0f32; 6];
    let err = QTensor::quantize_per_channel(&x, &[2, 3], &[1.0; 3], &[0; 3], 2, QDType::QInt8)
        .unwrap_err();
    assert_eq!(err, TensorError::AxisOutOfBounds { axis: 2, ndim: 2 });
    let err = QTensor::quantize_per_channel(&x, &[2, 3], &[1.0; 3], &[0; 3], -3, QDType::QInt8)
        .unwrap_err();
    assert_eq!(err, TensorError::AxisOutOfBounds { axis: -3, ndim: 2 });
    // -1 is the last axis, as in PyTorch.
    let q =
        QTensor::quantize_per_channel(&x, &[2, 3], &[1.0; 3], &[0; 3], -1, QDType::QInt8).unwrap();
    assert_eq!(q.q_per_channel_axis().unwrap(), 1);
}

#[test]
fn mismatched_scale_and_zero_point_lengths() {
    let x = [0.0f32; 6];
    let err = QTensor::quantize_per_channel(&x, &[2, 3], &[1.0; 3], &[0; 2], 1, QDType::QInt8)
        .unwrap_err();
    assert_eq!(
        err,
        TensorError::ChannelCountMismatch {
            scales: 3,
            zero_points: 2,
            axis_len: 3
        }
    );
    let err = QTensor::quantize_per_channel(&x, &[2, 3], &[1.0; 2], &[0; 2], 1, QDType::QInt8)
        .unwrap_err();
    assert_eq!(
        err,
        TensorError::ChannelCountMismatch {
            scales: 2,
            zero_points: 2,
            axis_len: 3
        }
    );
}

#[test]
fn data_and_shape_must_agree() {
    let err =
        QTensor::quantize_per_tensor(&[1.0, 2.0, 3.0], &[2, 2], 0.1, 0, QDType::QInt8).unwrap_err();
    assert_eq!(
        err,
        TensorError::ShapeMismatch {
            shape: vec![2, 2],
            expected: 4,
            got: 3
        }
    );
    let storage = QStorage::U8(vec![1, 2, 3]);
    let err = QTensor::from_int_repr(
        storage,
        &[4],
        QParams::PerTensor {
            scale: 1.0,
            zero_point: 0,
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        TensorError::ShapeMismatch {
            expected: 4,
            got: 3,
            ..
        }
    ));
}

#[test]
fn per_tensor_accessors_on_per_channel_tensor_are_errors() {
    let q =
        QTensor::quantize_per_channel(&[1.0, 2.0], &[2], &[0.5, 0.25], &[0, 1], 0, QDType::QInt8)
            .unwrap();
    assert!(matches!(
        q.q_scale(),
        Err(TensorError::Unsupported { op: "q_scale", .. })
    ));
    assert!(matches!(
        q.q_zero_point(),
        Err(TensorError::Unsupported {
            op: "q_zero_point",
            ..
        })
    ));
    let p = QTensor::quantize_per_tensor(&[1.0], &[1], 0.5, 0, QDType::QInt8).unwrap();
    assert!(matches!(
        p.q_per_channel_scales(),
        Err(TensorError::Unsupported { .. })
    ));
    assert!(matches!(
        p.q_per_channel_axis(),
        Err(TensorError::Unsupported { .. })
    ));
}

#[test]
fn chooser_rejects_inverted_ranges() {
    let err = choose_quantization_params(1.0, -1.0, 0, 255, false, false).unwrap_err();
    assert_eq!(
        err,
        TensorError::MinGreaterThanMax {
            min: 1.0,
            max: -1.0
        }
    );
    let err = choose_quantization_params(-1.0, 1.0, 5, 5, false, false).unwrap_err();
    assert!(matches!(
        err,
        TensorError::BadRange {
            quant_min: 5,
            quant_max: 5,
            ..
        }
    ));
}
