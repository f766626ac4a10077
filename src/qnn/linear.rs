//! Quantized Linear (and LinearReLU): quint8 activations × qint8 weights → quint8 outputs.

use super::{PackedWeight, QnnError, RunStats};
use crate::engine::Numerics;
use crate::kernels::gemm::{gemm_on, gemm_u8_i8_u8_on};
use crate::kernels::requant::{FbgemmRequant, QnnpackRequant, Requant};
use crate::tensor::{QDType, QParams, QStorage, QTensor};
use std::borrow::Cow;

/// `nn.quantized.Linear` / `nn.intrinsic.quantized.LinearReLU`.
#[derive(Debug, Clone, PartialEq)]
pub struct QLinear {
    pub weight: PackedWeight,
    /// Float bias, as PyTorch keeps it.
    pub bias: Option<Vec<f32>>,
    pub out_scale: f64,
    pub out_zero_point: i64,
    pub relu: bool,
}

/// A module whose output is requantized from i32 accumulators (Conv, Linear): one place that
/// turns its weight scales, bias and output qparams into the engine's rule.
pub(crate) trait Requantized {
    /// The weight, the float bias, the output scale and zero point, and the fused ReLU.
    fn epilogue(&self) -> (&PackedWeight, Option<&[f32]>, f64, i64, bool);

    /// The requantization rule of `numerics` for inputs of scale `x_scale`.
    fn requant(&self, numerics: Numerics, x_scale: f64) -> Requant {
        let (w, bias, out_scale, out_zp, relu) = self.epilogue();
        let (zp, n) = (out_zp as i32, w.out);
        if numerics.engine.float_requant() {
            Requant::Fbgemm(FbgemmRequant::new(
                x_scale, &w.scales, bias, out_scale, zp, relu, n,
            ))
        } else {
            Requant::Qnnpack(QnnpackRequant::new(
                x_scale, &w.scales, bias, out_scale, zp, relu, n,
            ))
        }
    }
}

/// Conv and Linear hold their epilogue in fields of the same names.
macro_rules! requantized {
    ($($module:ty),*) => {$(
        impl Requantized for $module {
            fn epilogue(&self) -> (&PackedWeight, Option<&[f32]>, f64, i64, bool) {
                let bias = self.bias.as_deref();
                (&self.weight, bias, self.out_scale, self.out_zero_point, self.relu)
            }
        }
    )*};
}
requantized!(QLinear, super::conv::QConv);

/// A Conv / Linear result: the quint8 bytes as a per-tensor tensor of `shape` with the
/// module's output qparams, and the pairs its GEMM saturated.
pub(crate) fn quantized_output(
    bytes: Vec<u8>,
    shape: &[usize],
    scale: f64,
    zero_point: i64,
    saturated_pairs: u64,
) -> Result<(QTensor, RunStats), QnnError> {
    let params = QParams::PerTensor { scale, zero_point };
    let y = QTensor::from_int_repr(QStorage::U8(bytes), shape, params)?;
    Ok((y, RunStats { saturated_pairs }))
}

/// The stored bytes of an 8-bit `x` in logical order (qint8 as two's complement): borrowed
/// when contiguous, copied otherwise.
pub(crate) fn u8_values(x: &QTensor) -> Cow<'_, [u8]> {
    let range = x.storage_offset()..x.storage_offset() + x.numel();
    match (x.storage().as_ref(), x.is_contiguous()) {
        (QStorage::U8(v), true) => Cow::Borrowed(&v[range]),
        (QStorage::I8(v), true) => {
            let v = &v[range];
            // SAFETY: i8 and u8 have the same size, alignment and (every bit pattern) validity.
            Cow::Borrowed(unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len()) })
        }
        _ => Cow::Owned(x.int_values().into_iter().map(|v| v as u8).collect()),
    }
}

/// A Linear input's rows: their count, bytes and quantization parameters.
struct Rows<'x> {
    m: usize,
    bytes: Cow<'x, [u8]>,
    scale: f64,
    zero_point: i32,
}

pub(crate) fn activation_qparams(op: &'static str, x: &QTensor) -> Result<(f64, i32), QnnError> {
    match (x.dtype(), x.qparams()) {
        (QDType::QUInt8, QParams::PerTensor { scale, zero_point }) => {
            Ok((*scale, *zero_point as i32))
        }
        (d, q) => Err(QnnError::Operand {
            op,
            operand: "input",
            expected: "a per-tensor quint8 tensor",
            got: format!("{d} {}", q.qscheme()),
        }),
    }
}

impl QLinear {
    /// Builds the module from a qint8 weight `[out, in]`, an optional float bias and output qparams.
    pub fn new(
        weight: &QTensor,
        bias: Option<Vec<f32>>,
        out_scale: f64,
        out_zero_point: i64,
        relu: bool,
    ) -> Result<QLinear, QnnError> {
        let weight = PackedWeight::new("linear", weight)?;
        if weight.shape.len() != 2 {
            return Err(QnnError::Shape {
                op: "linear",
                detail: format!("weight must be [out, in], got {:?}", weight.shape),
            });
        }
        if let Some(b) = &bias
            && b.len() != weight.out
        {
            return Err(QnnError::Shape {
                op: "linear",
                detail: format!("bias has {} values for {} outputs", b.len(), weight.out),
            });
        }
        crate::tensor::QParams::PerTensor {
            scale: out_scale,
            zero_point: out_zero_point,
        }
        .validate(QDType::QUInt8, &[])?;
        Ok(QLinear {
            weight,
            bias,
            out_scale,
            out_zero_point,
            relu,
        })
    }

    /// The i32 accumulators `[rows, out]` (bias excluded) that `forward` requantizes, for `x` of
    /// shape `[..., in]`.
    pub fn accumulate(
        &self,
        x: &QTensor,
        numerics: Numerics,
    ) -> Result<(Vec<i32>, RunStats), QnnError> {
        let mut acc = Vec::new();
        let stats = self.accumulate_into(x, numerics, &mut acc)?;
        Ok((acc, stats))
    }

    /// [`Self::accumulate`] into `acc`, resized to `[rows, out]`.
    fn accumulate_into(
        &self,
        x: &QTensor,
        numerics: Numerics,
        acc: &mut Vec<i32>,
    ) -> Result<RunStats, QnnError> {
        let Rows {
            m,
            bytes: a,
            zero_point: zx,
            ..
        } = self.rows(x)?;
        acc.clear();
        acc.resize(m * self.weight.out, 0);
        let w = self.weight.gemm_weights();
        let saturate = numerics.gemm_pairs_saturate();
        let saturated = gemm_on(numerics.isa(), m, &a, zx, &w, saturate, acc)
            .expect("a Numerics tier is one the host has");
        Ok(RunStats {
            saturated_pairs: saturated,
        })
    }

    /// `x`'s rows (`[..., in]` flattened).
    fn rows<'x>(&self, x: &'x QTensor) -> Result<Rows<'x>, QnnError> {
        let (sx, zx) = activation_qparams("linear", x)?;
        let k = self.weight.k;
        if x.shape().last() != Some(&k) {
            return Err(QnnError::Shape {
                op: "linear",
                detail: format!("input {:?} does not end in in_features={k}", x.shape()),
            });
        }
        Ok(Rows {
            m: x.numel() / k.max(1),
            bytes: u8_values(x),
            scale: sx,
            zero_point: zx,
        })
    }

    /// Runs on `x` of shape `[..., in]`: the GEMM requantizes each tile as it finishes, so no
    /// i32 accumulator matrix is stored.
    pub fn forward(
        &self,
        x: &QTensor,
        numerics: Numerics,
    ) -> Result<(QTensor, RunStats), QnnError> {
        let Rows {
            m,
            bytes: a,
            scale: sx,
            zero_point: zx,
        } = self.rows(x)?;
        let n = self.weight.out;
        let rq = self.requant(numerics, sx);
        let mut out = vec![0u8; m * n];
        let w = self.weight.gemm_weights();
        let saturate = numerics.gemm_pairs_saturate();
        let saturated = gemm_u8_i8_u8_on(numerics.isa(), m, &a, zx, &w, saturate, &rq, &mut out)
            .expect("a Numerics tier is one the host has");
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = n;
        quantized_output(out, &shape, self.out_scale, self.out_zero_point, saturated)
    }
}
