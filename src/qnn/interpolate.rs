//! Quantized 2-D resizing (`F.interpolate` on a quantized `[N, C, H, W]` or `[C, H, W]` tensor):
//! nearest and bilinear, with align_corners, to a size or by a scale factor. Output qparams are
//! the input's. Computed plane by plane in logical NCHW order (PyTorch's NCHW kernel; its
//! channels_last bilinear kernel can differ in the last ulp, NUMERICS §6.7).
//!
//! Rules (NUMERICS §6.7, all golden cases on every engine):
//! * per axis, in f32: `scale = (in - 1)/(out - 1)` with align_corners, else `1/scale_factor`
//!   when a factor was given, else `in/out`; the output length for a factor is
//!   `floor(in · factor)` in f64.
//! * nearest: `src = min(floor(dst · scale), in - 1)`, pure index selection.
//! * bilinear: `src = scale·dst` (align_corners) or `max(scale·(dst + 0.5) - 0.5, 0)`;
//!   `i0 = trunc(src)`, `i1 = i0 + (i0 < in - 1)`, `l1 = src - i0`, `l0 = 1 - l1`;
//!   `v = l0h·(l0w·q00 + l1w·q01) + l1h·(l0w·q10 + l1w·q11)` on the raw integers in f32, in that
//!   order; `y = clamp(RNE(v - z) + z)`.

use super::QnnError;
use super::pointwise::{Operand, output};
use crate::tensor::QTensor;

/// The interpolation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest,
    Bilinear { align_corners: bool },
}

/// The requested output: an explicit `[h, w]` size or per-axis scale factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeTarget {
    Size([usize; 2]),
    ScaleFactor([f64; 2]),
}

/// How one axis maps output positions to input positions.
#[derive(Debug, Clone, Copy)]
struct AxisMap {
    in_len: usize,
    out_len: usize,
    scale: f32,
}

impl AxisMap {
    fn new(
        op: &'static str,
        in_len: usize,
        target: ResizeTarget,
        i: usize,
        mode: ResizeMode,
    ) -> Result<Self, QnnError> {
        let (out_len, factor) = match target {
            ResizeTarget::Size(s) => (s[i], None),
            ResizeTarget::ScaleFactor(f) => {
                if !(f[i].is_finite() && f[i] > 0.0) {
                    return Err(QnnError::OutputSize {
                        op,
                        detail: format!("scale factor {} must be finite and > 0", f[i]),
                    });
                }
                ((in_len as f64 * f[i]).floor() as usize, Some(f[i]))
            }
        };
        if out_len == 0 {
            return Err(QnnError::OutputSize {
                op,
                detail: format!("axis {i} of length {in_len} resizes to 0"),
            });
        }
        let scale = match (mode, factor) {
            (
                ResizeMode::Bilinear {
                    align_corners: true,
                },
                _,
            ) => {
                if out_len > 1 {
                    (in_len - 1) as f32 / (out_len - 1) as f32
                } else {
                    0.0
                }
            }
            (_, Some(f)) => (1.0 / f) as f32,
            (_, None) => in_len as f32 / out_len as f32,
        };
        Ok(AxisMap {
            in_len,
            out_len,
            scale,
        })
    }

    fn nearest(&self, dst: usize) -> usize {
        ((dst as f32 * self.scale).floor() as usize).min(self.in_len - 1)
    }

    /// (first index, offset to the second, weight of the first, weight of the second).
    fn linear(&self, dst: usize, align_corners: bool) -> (usize, usize, f32, f32) {
        let src = if align_corners {
            self.scale * dst as f32
        } else {
            (self.scale * (dst as f32 + 0.5) - 0.5).max(0.0)
        };
        let i0 = src as usize;
        let l1 = src - i0 as f32;
        (i0, usize::from(i0 < self.in_len - 1), 1.0 - l1, l1)
    }
}

/// `F.interpolate(x, size | scale_factor, mode, align_corners)` on a quantized tensor.
pub fn interpolate(
    x: &QTensor,
    target: ResizeTarget,
    mode: ResizeMode,
) -> Result<QTensor, QnnError> {
    const OP: &str = "interpolate";
    let shape = x.shape();
    if !(3..=4).contains(&shape.len()) {
        return Err(QnnError::Shape {
            op: OP,
            detail: format!("expects [N, C, H, W] or [C, H, W], got {shape:?}"),
        });
    }
    let xo = Operand::of(OP, "input", x)?;
    let (lead, hw) = shape.split_at(shape.len() - 2);
    let (h, w) = (hw[0], hw[1]);
    let (mh, mw) = (
        AxisMap::new(OP, h, target, 0, mode)?,
        AxisMap::new(OP, w, target, 1, mode)?,
    );
    let (oh, ow) = (mh.out_len, mw.out_len);
    let q = x.int_values();
    let mut values = Vec::with_capacity(q.len() / (h * w) * oh * ow);
    for plane in q.chunks_exact(h * w) {
        let at = |r: usize, c: usize| plane[r * w + c] as f32;
        for i in 0..oh {
            for j in 0..ow {
                let y = match mode {
                    ResizeMode::Nearest => plane[mh.nearest(i) * w + mw.nearest(j)],
                    ResizeMode::Bilinear { align_corners } => {
                        let (r, dr, l0h, l1h) = mh.linear(i, align_corners);
                        let (c, dc, l0w, l1w) = mw.linear(j, align_corners);
                        let v = l0h * (l0w * at(r, c) + l1w * at(r, c + dc))
                            + l1h * (l0w * at(r + dr, c) + l1w * at(r + dr, c + dc));
                        let rel = (v - xo.zero_point as f32).round_ties_even() as i32;
                        (rel + xo.zero_point).clamp(xo.qmin(), xo.qmax())
                    }
                };
                values.push(y);
            }
        }
    }
    output(
        xo.dtype,
        values,
        &[lead, &[oh, ow]].concat(),
        xo.scale,
        xo.zero_point as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{QDType, QParams, QStorage};

    fn q(values: &[i32], shape: &[usize]) -> QTensor {
        QTensor::from_int_repr(
            QStorage::from_i32(QDType::QUInt8, values.iter().copied()),
            shape,
            QParams::PerTensor {
                scale: 0.1,
                zero_point: 3,
            },
        )
        .unwrap()
    }

    #[test]
    fn nearest_and_bilinear_by_hand() {
        let x = q(&[0, 10, 20, 30], &[1, 1, 2, 2]);
        let y = interpolate(
            &x,
            ResizeTarget::ScaleFactor([2.0, 1.0]),
            ResizeMode::Nearest,
        )
        .unwrap();
        assert_eq!(
            (y.shape().to_vec(), y.int_values()),
            (vec![1, 1, 4, 2], vec![0, 10, 0, 10, 20, 30, 20, 30])
        );
        // align_corners, 2 → 3: the middle output averages its neighbours: 0.5·0 + 0.5·10 = 5.
        let y = interpolate(
            &x,
            ResizeTarget::Size([1, 3]),
            ResizeMode::Bilinear {
                align_corners: true,
            },
        )
        .unwrap();
        assert_eq!(y.int_values(), vec![0, 5, 10]);
        // Half-pixel centres, width 2 → 4: src = 0.25 for dst 1: 0.75·0 + 0.25·10 = 2.5, and
        // 2.5 - 3 = -0.5 rounds to even (0): 3. dst 2: 7.5 - 3 = 4.5 → 4: 7. Ties are taken
        // relative to the zero point.
        let y = interpolate(
            &x,
            ResizeTarget::Size([2, 4]),
            ResizeMode::Bilinear {
                align_corners: false,
            },
        )
        .unwrap();
        assert_eq!(y.int_values(), vec![0, 3, 7, 10, 20, 23, 27, 30]);
    }

    #[test]
    fn invalid_output_sizes_are_typed() {
        let x = q(&[0, 10, 20, 30], &[1, 1, 2, 2]);
        let bad = [
            ResizeTarget::Size([0, 2]),
            ResizeTarget::ScaleFactor([0.4, 1.0]),
            ResizeTarget::ScaleFactor([f64::NAN, 1.0]),
        ];
        for t in bad {
            assert!(matches!(
                interpolate(&x, t, ResizeMode::Nearest),
                Err(QnnError::OutputSize { .. })
            ));
        }
        let e = q(&[], &[1, 0, 2, 2]);
        assert!(matches!(
            interpolate(&e, ResizeTarget::Size([2, 2]), ResizeMode::Nearest),
            Err(QnnError::EmptyInput { .. })
        ));
    }
}
