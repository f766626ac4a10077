//! `nn.quantized.Quantize` and `nn.quantized.DeQuantize`: what QuantStub and DeQuantStub become
//! after convert — the boundaries between float and quantized parts of a model.

use super::QnnError;
use crate::tensor::{QDType, QParams, QTensor};
use ndarray::{ArrayD, IxDyn};

/// Quantizes float activations with fixed qparams recorded by the stub's observer.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantize {
    pub scale: f64,
    pub zero_point: i64,
    pub dtype: QDType,
}

impl Quantize {
    /// Checks the qparams up front so `forward` can only fail on its input.
    pub fn new(scale: f64, zero_point: i64, dtype: QDType) -> Result<Quantize, QnnError> {
        QParams::PerTensor { scale, zero_point }.validate(dtype, &[])?;
        Ok(Quantize {
            scale,
            zero_point,
            dtype,
        })
    }

    pub fn forward(&self, x: &ArrayD<f32>) -> Result<QTensor, QnnError> {
        let x = x.as_standard_layout();
        let data = x.as_slice().expect("standard layout");
        Ok(QTensor::quantize_per_tensor(
            data,
            x.shape(),
            self.scale,
            self.zero_point,
            self.dtype,
        )?)
    }
}

/// Turns a quantized tensor back into floats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeQuantize;

impl DeQuantize {
    pub fn forward(&self, q: &QTensor) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(q.shape()), q.dequantize())
            .expect("dequantize keeps the shape")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_the_stubs() {
        let q = Quantize::new(0.5, 10, QDType::QUInt8).unwrap();
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.0, 1.25, -5.0, 200.0]).unwrap();
        let y = q.forward(&x).unwrap();
        assert_eq!(y.int_values(), vec![10, 12, 0, 255]);
        assert_eq!(
            DeQuantize.forward(&y).as_slice().unwrap(),
            &[0.0, 1.0, -5.0, 122.5]
        );
        assert!(Quantize::new(0.5, 300, QDType::QUInt8).is_err());
    }
}
