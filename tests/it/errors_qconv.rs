//! Bad input to the quantized conv module yields a typed `QnnError`, never a panic.

use qlab::engine::{Engine, HostProfile, Numerics};
use qlab::qnn::{ConvParams, QConv, QnnError};
use qlab::tensor::{QDType, QParams, QStorage, QTensor};

fn per_tensor(scale: f64, zero_point: i64) -> QParams {
    QParams::PerTensor { scale, zero_point }
}

/// A qtensor of `dtype` and `shape` filled with a small repeating pattern.
fn filled(dtype: QDType, shape: &[usize], qparams: QParams) -> QTensor {
    let n: usize = shape.iter().product();
    let values = (0..n).map(|i| (i % 7) as i32);
    QTensor::from_int_repr(QStorage::from_i32(dtype, values), shape, qparams).unwrap()
}

/// A 2-D conv with `[4, 2, 3, 3]` weights and 2 groups (4 input channels).
fn conv2d() -> QConv {
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    let params = ConvParams {
        groups: 2,
        ..ConvParams::unit(2)
    };
    QConv::new(&w, None, params, 0.5, 10, false).unwrap()
}

fn input(shape: &[usize]) -> QTensor {
    filled(QDType::QUInt8, shape, per_tensor(0.02, 128))
}

fn run(m: &QConv, x: &QTensor) -> QnnError {
    m.forward(x, Numerics::new(Engine::Fbgemm, HostProfile::Vnni))
        .unwrap_err()
}

fn shape_detail(e: QnnError) -> String {
    match e {
        QnnError::Shape { op: "conv", detail } => detail,
        other => panic!("expected a conv shape error, got {other:?}"),
    }
}

#[test]
fn valid_input_runs() {
    let (y, stats) = conv2d()
        .forward(
            &input(&[1, 4, 5, 5]),
            Numerics::new(Engine::Fbgemm, HostProfile::Vnni),
        )
        .unwrap();
    assert_eq!(y.shape(), &[1, 4, 3, 3]);
    assert_eq!(stats.saturated_pairs, 0);
}

#[test]
fn input_must_be_per_tensor_quint8() {
    let m = conv2d();
    let x = filled(QDType::QInt8, &[1, 4, 5, 5], per_tensor(0.02, 0));
    assert!(matches!(
        run(&m, &x),
        QnnError::Operand {
            operand: "input",
            ..
        }
    ));
    let pc = QParams::PerChannel {
        scales: vec![0.1; 4],
        zero_points: vec![0; 4],
        axis: 1,
    };
    let x = filled(QDType::QUInt8, &[1, 4, 5, 5], pc);
    assert!(matches!(
        run(&m, &x),
        QnnError::Operand {
            operand: "input",
            ..
        }
    ));
}

#[test]
fn channel_count_must_match_weight_times_groups() {
    let detail = shape_detail(run(&conv2d(), &input(&[1, 3, 5, 5])));
    assert!(detail.contains("3 channels"), "{detail}");
}

#[test]
fn groups_must_divide_channels() {
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    for groups in [0, 3] {
        let params = ConvParams {
            groups,
            ..ConvParams::unit(2)
        };
        let e = QConv::new(&w, None, params, 0.5, 10, false).unwrap_err();
        assert!(shape_detail(e).contains("does not divide"));
    }
}

#[test]
fn kernel_larger_than_padded_input() {
    let detail = shape_detail(run(&conv2d(), &input(&[1, 4, 2, 5])));
    assert!(detail.contains("exceeds the padded input"), "{detail}");
    // Padding makes room: a 3x3 kernel fits a 1x1 input padded by 1.
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    let params = ConvParams {
        groups: 2,
        padding: vec![1, 1],
        ..ConvParams::unit(2)
    };
    let m = QConv::new(&w, None, params, 0.5, 10, false).unwrap();
    let (y, _) = m
        .forward(
            &input(&[1, 4, 1, 1]),
            Numerics::new(Engine::Qnnpack, HostProfile::Exact),
        )
        .unwrap();
    assert_eq!(y.shape(), &[1, 4, 1, 1]);
}

#[test]
fn zero_size_tensors_are_rejected() {
    let detail = shape_detail(run(&conv2d(), &input(&[0, 4, 5, 5])));
    assert!(detail.contains("zero-size input"), "{detail}");
    let w = filled(QDType::QInt8, &[0, 2, 3, 3], per_tensor(0.1, 0));
    let e = QConv::new(&w, None, ConvParams::unit(2), 0.5, 10, false).unwrap_err();
    assert!(shape_detail(e).contains("zero-size weight"));
}

#[test]
fn input_rank_must_match_the_weight() {
    let detail = shape_detail(run(&conv2d(), &input(&[4, 5, 5])));
    assert!(detail.contains("2 spatial dims"), "{detail}");
}

#[test]
fn weight_must_be_qint8() {
    let w = filled(QDType::QUInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    let e = QConv::new(&w, None, ConvParams::unit(2), 0.5, 10, false).unwrap_err();
    assert!(matches!(
        e,
        QnnError::Operand {
            operand: "weight",
            expected: "qint8",
            ..
        }
    ));
}

#[test]
fn per_channel_weight_must_use_axis_0() {
    let pc = QParams::PerChannel {
        scales: vec![0.1; 2],
        zero_points: vec![0; 2],
        axis: 1,
    };
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], pc);
    let e = QConv::new(&w, None, ConvParams::unit(2), 0.5, 10, false).unwrap_err();
    assert!(matches!(
        e,
        QnnError::Operand {
            operand: "weight",
            ..
        }
    ));
}

#[test]
fn bias_length_must_match_output_channels() {
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    let e = QConv::new(&w, Some(vec![0.0; 3]), ConvParams::unit(2), 0.5, 10, false).unwrap_err();
    assert!(shape_detail(e).contains("bias has 3 values"));
}

#[test]
fn geometry_lists_must_fit_the_weight() {
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    let e = QConv::new(&w, None, ConvParams::unit(1), 0.5, 10, false).unwrap_err();
    assert!(shape_detail(e).contains("stride has 1 entries"));
    let params = ConvParams {
        stride: vec![1, 0],
        ..ConvParams::unit(2)
    };
    let e = QConv::new(&w, None, params, 0.5, 10, false).unwrap_err();
    assert!(shape_detail(e).contains("at least 1"));
    let w = filled(QDType::QInt8, &[4, 2], per_tensor(0.1, 0));
    let e = QConv::new(&w, None, ConvParams::unit(0), 0.5, 10, false).unwrap_err();
    assert!(shape_detail(e).contains("spatial dims"));
}

#[test]
fn output_zero_point_must_fit_quint8() {
    let w = filled(QDType::QInt8, &[4, 2, 3, 3], per_tensor(0.1, 0));
    let e = QConv::new(&w, None, ConvParams::unit(2), 0.5, 300, false).unwrap_err();
    assert!(matches!(e, QnnError::Tensor(_)));
}
