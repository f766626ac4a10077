//! Quantized 2-D pooling: `max_pool2d` (dilation, ceil_mode), `avg_pool2d` (ceil_mode,
//! count_include_pad, divisor_override) and `adaptive_avg_pool2d`, with their modules.
//!
//! Internal layout: inputs are `[N, C, H, W]` (or `[C, H, W]`) read in logical row-major order
//! and pooled plane by plane. Where PyTorch's result depends on the input's memory format, that
//! format is the explicit `Layout` parameter (it selects a rounding rule, not our storage):
//! * `Layout::Nchw` (PyTorch's contiguous inputs, the default): `RNE(f32(S - z·n)·f32(1/div) + z)`
//!   in f32 — in effect `(S + z·(div - n)) / div` rounded half to even on the *raw* value.
//! * `Layout::Nhwc` (channels_last inputs): `z + RNE(f32(S - z·n)·f32(1/div))`, ties to even on
//!   the zero-point-relative value. The two differ on every exact .5 tie when `z` is odd.
//! * qnnpack engine, quint8, `ceil_mode = false` (either layout): QNNPACK's kernel, which always
//!   divides by the full window (ignoring count_include_pad=False and divisor_override):
//!   `z + RNE(f32(S - z·n) · f32(s / f32(s·kh·kw)))`; it refuses 1x1 windows and 3-D inputs.
//! * max_pool2d: integer max over the in-bounds taps on every engine (padding never wins), on
//!   the raw bytes by `kernels::pool`.
//!
//! Evidence (golden `qops_*`): `avg_pool2d_0_qint8` (z = 5, divisor 4) matches the NCHW rule on
//! all engines and mismatches the NHWC rule on 11 of 54 outputs; `avg_pool2d_2/6_quint8` match
//! the QNNPACK rule on qnnpack only; `adaptive_avg_pool2d_3x2_qint8` matches the NCHW rule on all
//! engines (4 of 36 differ under NHWC; its qint8 input keeps it off QNNPACK). The f32 details
//! (which reciprocal, where `z` is added) follow PyTorch's AveragePool2d.cpp /
//! AdaptiveAveragePooling.cpp and QNNPACK's average_pooling.c.

use super::QnnError;
use super::pointwise::{Operand, output};
use crate::engine::{Engine, Numerics};
use crate::kernels::pool::{MaxPool, PoolAxis, PoolInt, max_pool2d_on};
use crate::tensor::{QDType, QParams, QStorage, QTensor};

/// The memory format of PyTorch's input, which decides avg-pool tie rounding (module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Contiguous NCHW.
    #[default]
    Nchw,
    /// channels_last.
    Nhwc,
}

/// `nn.quantized.MaxPool2d` / `F.max_pool2d` parameters, `[h, w]` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// A square window with stride = kernel, no padding, dilation 1 (PyTorch's defaults).
    pub fn new(kernel: usize) -> Self {
        MaxPool2d {
            kernel: [kernel; 2],
            stride: [kernel; 2],
            padding: [0; 2],
            dilation: [1; 2],
            ceil_mode: false,
        }
    }

    pub fn forward(&self, x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
        max_pool2d(x, self, numerics)
    }
}

/// `nn.quantized.AvgPool2d` / `F.avg_pool2d` parameters, plus the input `Layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    pub divisor_override: Option<i64>,
    pub layout: Layout,
}

impl AvgPool2d {
    /// A square window with stride = kernel and PyTorch's defaults otherwise.
    pub fn new(kernel: usize) -> Self {
        AvgPool2d {
            kernel: [kernel; 2],
            stride: [kernel; 2],
            padding: [0; 2],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
            layout: Layout::Nchw,
        }
    }

    pub fn forward(&self, x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
        avg_pool2d(x, self, numerics)
    }
}

/// `nn.quantized.AdaptiveAvgPool2d` / `F.adaptive_avg_pool2d`, plus the input `Layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    pub output_size: [usize; 2],
    pub layout: Layout,
}

impl AdaptiveAvgPool2d {
    pub fn new(output_size: [usize; 2]) -> Self {
        AdaptiveAvgPool2d {
            output_size,
            layout: Layout::Nchw,
        }
    }

    pub fn forward(&self, x: &QTensor, numerics: Numerics) -> Result<QTensor, QnnError> {
        adaptive_avg_pool2d(x, self, numerics)
    }
}

/// The planes of a 3-D or 4-D input: (operand, planes, H, W, leading dims of the output shape).
fn planes(
    op: &'static str,
    x: &QTensor,
) -> Result<(Operand, usize, usize, usize, Vec<usize>), QnnError> {
    let shape = x.shape();
    if !(3..=4).contains(&shape.len()) {
        return Err(QnnError::Shape {
            op,
            detail: format!("expects [N, C, H, W] or [C, H, W], got {shape:?}"),
        });
    }
    let xo = Operand::of(op, "input", x)?;
    let (lead, hw) = shape.split_at(shape.len() - 2);
    Ok((xo, lead.iter().product(), hw[0], hw[1], lead.to_vec()))
}

/// One axis of a sliding window: input length, kernel, stride, padding, dilation.
#[derive(Debug, Clone, Copy)]
struct Axis {
    len: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
}

impl Axis {
    /// PyTorch's `pooling_output_shape`, after its argument checks.
    fn output_len(&self, op: &'static str, ceil_mode: bool) -> Result<usize, QnnError> {
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 {
            return Err(QnnError::InvalidParam {
                op,
                detail: "kernel, stride and dilation must be positive".into(),
            });
        }
        if self.pad > self.kernel / 2 {
            return Err(QnnError::InvalidParam {
                op,
                detail: format!(
                    "padding {} exceeds half the kernel size {}",
                    self.pad, self.kernel
                ),
            });
        }
        let span = self.dilation * (self.kernel - 1) + 1;
        let padded = self.len + 2 * self.pad;
        if span > padded {
            return Err(QnnError::WindowTooLarge {
                op,
                kernel: span,
                padded,
            });
        }
        let extra = if ceil_mode { self.stride - 1 } else { 0 };
        let mut out = (padded - span + extra) / self.stride + 1;
        // With ceil_mode the last window must start inside the input or its left padding.
        if ceil_mode && (out - 1) * self.stride >= self.len + self.pad {
            out -= 1;
        }
        Ok(out)
    }

    /// Window `o`: (padded start, padded end clipped to `len + pad`), as signed positions.
    fn window(&self, o: usize) -> (i64, i64) {
        let start = (o * self.stride) as i64 - self.pad as i64;
        (
            start,
            (start + self.kernel as i64).min((self.len + self.pad) as i64),
        )
    }

    /// The in-bounds part of a window.
    fn clip(&self, (start, end): (i64, i64)) -> (usize, usize) {
        (start.max(0) as usize, end.min(self.len as i64) as usize)
    }
}

/// `quantized::max_pool2d`: integer max over the (dilated) window; padding never wins.
pub fn max_pool2d(x: &QTensor, p: &MaxPool2d, numerics: Numerics) -> Result<QTensor, QnnError> {
    const OP: &str = "max_pool2d";
    let (xo, planes, h, w, lead) = planes(OP, x)?;
    // QNNPACK's max is PyTorch's max; only its refusals differ.
    qnnpack_pool_route(OP, numerics, x, p.ceil_mode, p.kernel[0] * p.kernel[1])?;
    let axis = |i: usize, len| Axis {
        len,
        kernel: p.kernel[i],
        stride: p.stride[i],
        pad: p.padding[i],
        dilation: p.dilation[i],
    };
    let (ah, aw) = (axis(0, h), axis(1, w));
    let (oh, ow) = (
        ah.output_len(OP, p.ceil_mode)?,
        aw.output_len(OP, p.ceil_mode)?,
    );
    let pool_axis = |a: Axis, out| PoolAxis {
        len: a.len,
        kernel: a.kernel,
        stride: a.stride,
        pad: a.pad,
        dilation: a.dilation,
        out,
    };
    let g = MaxPool {
        planes,
        rows: pool_axis(ah, oh),
        cols: pool_axis(aw, ow),
    };
    // The kernel reads the raw bytes of a contiguous tensor (a strided one is copied once).
    let x = x.contiguous();
    let storage = match x.storage().as_ref() {
        QStorage::U8(v) => QStorage::U8(pooled(numerics, &g, v)),
        QStorage::I8(v) => QStorage::I8(pooled(numerics, &g, v)),
        QStorage::I32(_) => unreachable!("Operand::of refuses qint32"),
    };
    Ok(QTensor::from_int_repr(
        storage,
        &[lead, vec![oh, ow]].concat(),
        QParams::PerTensor {
            scale: xo.scale,
            zero_point: xo.zero_point as i64,
        },
    )?)
}

/// The max pooling `g` of the contiguous values `x` on `numerics`' tier.
fn pooled<T: PoolInt>(numerics: Numerics, g: &MaxPool, x: &[T]) -> Vec<T> {
    let mut y = vec![T::MIN; g.out_len()];
    max_pool2d_on(numerics.isa(), g, x, &mut y).expect("Numerics holds a tier the host has");
    y
}

/// The generic kernels' average of a window sum `sum` of `n` real elements over `div`, in f32
/// as PyTorch computes it: `m = f32(1 / div)` (formed in f64), `r = f32(S - z·n)`;
/// NCHW: `RNE(f32(r·m) + z)`; NHWC: `z + RNE(r·m)`.
fn generic_average(layout: Layout, sum: i64, n: i64, div: i64, z: i64) -> i64 {
    let multiplier = (1.0 / div as f64) as f32;
    let scaled = ((sum - z * n) as f32) * multiplier;
    match layout {
        Layout::Nchw => (scaled + z as f32).round_ties_even() as i64,
        Layout::Nhwc => z + scaled.round_ties_even() as i64,
    }
}

/// Whether PyTorch hands a pooling to QNNPACK (quint8 on the qnnpack engine, no ceil_mode),
/// with QNNPACK's refusals on that route: anything but `[N, C, H, W]`, and a 1x1 window
/// ("1x1 pooling is meaningless"), on which PyTorch raises.
fn qnnpack_pool_route(
    op: &'static str,
    numerics: Numerics,
    x: &QTensor,
    ceil_mode: bool,
    window: usize,
) -> Result<bool, QnnError> {
    let route = numerics.engine == Engine::Qnnpack && x.dtype() == QDType::QUInt8 && !ceil_mode;
    if route && x.ndim() != 4 {
        return Err(QnnError::Shape {
            op,
            detail: format!("qnnpack's pooling needs a 4-D input, got {:?}", x.shape()),
        });
    }
    if route && window == 1 {
        return Err(QnnError::InvalidParam {
            op,
            detail: "qnnpack's pooling rejects a 1x1 window".into(),
        });
    }
    Ok(route)
}

/// QNNPACK's requant scale for a window of `window` taps: `s_in / (s_out · window)` in f32
/// (the output keeps the input's scale).
fn qnnpack_scale(scale: f64, window: usize) -> f32 {
    let s = scale as f32;
    s / (s * window as f32)
}

/// QNNPACK's average: `z + RNE(f32(S - z·n) · scale)`; padded taps hold `z` and cancel out.
fn qnnpack_average(sum: i64, n: i64, z: i64, scale: f32) -> i64 {
    z + (((sum - z * n) as f32) * scale).round_ties_even() as i64
}

/// `quantized::avg_pool2d` on `numerics`' engine (rules in the module docs).
pub fn avg_pool2d(x: &QTensor, p: &AvgPool2d, numerics: Numerics) -> Result<QTensor, QnnError> {
    const OP: &str = "avg_pool2d";
    let (xo, planes, h, w, lead) = planes(OP, x)?;
    if let Some(d) = p.divisor_override
        && d <= 0
    {
        return Err(QnnError::InvalidParam {
            op: OP,
            detail: format!("divisor_override {d} must be positive"),
        });
    }
    let axis = |i: usize, len| Axis {
        len,
        kernel: p.kernel[i],
        stride: p.stride[i],
        pad: p.padding[i],
        dilation: 1,
    };
    let (ah, aw) = (axis(0, h), axis(1, w));
    let (oh, ow) = (
        ah.output_len(OP, p.ceil_mode)?,
        aw.output_len(OP, p.ceil_mode)?,
    );
    let qnnpack = qnnpack_pool_route(OP, numerics, x, p.ceil_mode, p.kernel[0] * p.kernel[1])?;
    let qnnpack_scale = qnnpack_scale(xo.scale, p.kernel[0] * p.kernel[1]);
    let z = xo.zero_point as i64;
    let q = x.int_values();
    let mut values = Vec::with_capacity(planes * oh * ow);
    for plane in q.chunks_exact(h * w) {
        for i in 0..oh {
            let wh = ah.window(i);
            let (r0, r1) = ah.clip(wh);
            for j in 0..ow {
                let ww = aw.window(j);
                let (c0, c1) = aw.clip(ww);
                let sum: i64 = (r0..r1)
                    .flat_map(|r| &plane[r * w + c0..r * w + c1])
                    .map(|&v| v as i64)
                    .sum();
                let n = ((r1 - r0) * (c1 - c0)) as i64;
                let y = if qnnpack {
                    qnnpack_average(sum, n, z, qnnpack_scale)
                } else {
                    let div = p.divisor_override.unwrap_or(if p.count_include_pad {
                        (wh.1 - wh.0) * (ww.1 - ww.0)
                    } else {
                        n
                    });
                    generic_average(p.layout, sum, n, div, z)
                };
                values.push(y.clamp(xo.qmin() as i64, xo.qmax() as i64) as i32);
            }
        }
    }
    output(
        xo.dtype,
        values,
        &[lead, vec![oh, ow]].concat(),
        xo.scale,
        z,
    )
}

/// `quantized::adaptive_avg_pool2d`: window `[floor(o·L/O), ceil((o+1)·L/O))` of `kh × kw`
/// elements. NCHW: `RNE(f32(S) · f32(f32(1/kh)/kw))` on the raw sum (ties to even raw value);
/// NHWC: the generic zero-point-relative rule. On qnnpack, quint8 inputs whose sizes are whole multiples of the
/// output (and not equal to it) go to QNNPACK's average pool with kernel = stride = L/O, as
/// PyTorch's `enable_qnnpack_for_ada_avgpool` routes them.
pub fn adaptive_avg_pool2d(
    x: &QTensor,
    p: &AdaptiveAvgPool2d,
    numerics: Numerics,
) -> Result<QTensor, QnnError> {
    const OP: &str = "adaptive_avg_pool2d";
    let (xo, planes, h, w, lead) = planes(OP, x)?;
    let [oh, ow] = p.output_size;
    if oh == 0 || ow == 0 {
        return Err(QnnError::OutputSize {
            op: OP,
            detail: format!("{:?} has a zero dimension", p.output_size),
        });
    }
    let bounds = |o: usize, len: usize, out: usize| (o * len / out, ((o + 1) * len).div_ceil(out));
    let window = (h / oh) * (w / ow);
    let whole_multiple = (h, w) != (oh, ow) && h % oh == 0 && w % ow == 0;
    let qnnpack = whole_multiple && qnnpack_pool_route(OP, numerics, x, false, window)?;
    let qnnpack_scale = qnnpack_scale(xo.scale, window);
    let z = xo.zero_point as i64;
    let q = x.int_values();
    let mut values = Vec::with_capacity(planes * oh * ow);
    for plane in q.chunks_exact(h * w) {
        for i in 0..oh {
            let (r0, r1) = bounds(i, h, oh);
            for j in 0..ow {
                let (c0, c1) = bounds(j, w, ow);
                let sum: i64 = (r0..r1)
                    .flat_map(|r| &plane[r * w + c0..r * w + c1])
                    .map(|&v| v as i64)
                    .sum();
                let n = ((r1 - r0) * (c1 - c0)) as i64;
                let y = match (qnnpack, p.layout) {
                    (true, _) => qnnpack_average(sum, n, z, qnnpack_scale),
                    // PyTorch's NCHW adaptive kernel scales the raw sum by f32(f32(1/kh)/kw).
                    (false, Layout::Nchw) => {
                        let recip = (1.0f32 / (r1 - r0) as f32) / (c1 - c0) as f32;
                        ((sum as f32) * recip).round_ties_even() as i64
                    }
                    (false, Layout::Nhwc) => generic_average(Layout::Nhwc, sum, n, n, z),
                };
                values.push(y.clamp(xo.qmin() as i64, xo.qmax() as i64) as i32);
            }
        }
    }
    output(
        xo.dtype,
        values,
        &[lead, vec![oh, ow]].concat(),
        xo.scale,
        z,
    )
}

/// `torch.mean(x, dims, keepdim)` on a quantized tensor (PyTorch's ReduceOps.cpp); `axes` are
/// normalized to `0..ndim`. The output keeps the input's qparams. Three routes, as PyTorch picks:
/// * qnnpack engine, quint8, 4-D, `dims == (2, 3)`: QNNPACK's global average pooling,
///   `z + RNE(f32(S - z·n) · f32(s / f32(s·n)))` (the average-pool rule with `n = H·W`);
/// * the reduced dims are the innermost ones: `qmean_inner_dim_kernel`, `RNE(f32(S) / f32(n))` on
///   the raw integers (the zero point carries through the average);
/// * otherwise dequantize, float mean (summed in f64 here: PyTorch's float reduction order is
///   not reproduced on this rare route), quantize with the input's qparams.
pub fn mean(
    x: &QTensor,
    axes: &[usize],
    keepdim: bool,
    numerics: Numerics,
) -> Result<QTensor, QnnError> {
    const OP: &str = "mean";
    let xo = Operand::of(OP, "input", x)?;
    let shape = x.shape();
    let mut axes = axes.to_vec();
    axes.sort_unstable();
    axes.dedup();
    if axes.iter().any(|&a| a >= shape.len()) {
        return Err(QnnError::Shape {
            op: OP,
            detail: format!("axes {axes:?} outside a {}-D input", shape.len()),
        });
    }
    let out_shape: Vec<usize> = (0..shape.len())
        .filter_map(|d| match (axes.contains(&d), keepdim) {
            (false, _) => Some(shape[d]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let n: usize = axes.iter().map(|&a| shape[a]).product();
    let z = xo.zero_point as i64;
    let q = x.int_values();
    let inner = axes.is_empty()
        || (axes[axes.len() - 1] == shape.len() - 1 && axes.windows(2).all(|w| w[1] == w[0] + 1));
    let qnnpack = numerics.engine == Engine::Qnnpack
        && x.dtype() == QDType::QUInt8
        && shape.len() == 4
        && axes == [2, 3];
    let (lo, hi) = (xo.qmin() as i64, xo.qmax() as i64);
    let values: Vec<i32> = if qnnpack || inner {
        // The reduced dims are contiguous innermost blocks of `n` values.
        let scale = qnnpack_scale(xo.scale, n);
        q.chunks(n.max(1))
            .map(|block| {
                let sum: i64 = block.iter().map(|&v| v as i64).sum();
                let y = if qnnpack {
                    qnnpack_average(sum, n as i64, z, scale)
                } else {
                    ((sum as f32) / n as f32).round_ties_even() as i64
                };
                y.clamp(lo, hi) as i32
            })
            .collect()
    } else {
        let xs = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(shape),
            q.iter()
                .map(|&v| ((v as i64 - z) as f32 * xo.scale as f32) as f64)
                .collect(),
        )
        .expect("shape of the input");
        let mut acc = xs;
        for &a in axes.iter().rev() {
            acc = acc.sum_axis(ndarray::Axis(a));
        }
        let inv = 1.0f32 / xo.scale as f32;
        acc.iter()
            .map(|&s| {
                let m = (s / n as f64) as f32;
                (z + (m * inv).round_ties_even() as i64).clamp(lo, hi) as i32
            })
            .collect()
    };
    output(xo.dtype, values, &out_shape, xo.scale, z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::HostProfile;
    use crate::tensor::{QParams, QStorage};

    fn q(dtype: QDType, values: &[i32], shape: &[usize], zero_point: i64) -> QTensor {
        QTensor::from_int_repr(
            QStorage::from_i32(dtype, values.iter().copied()),
            shape,
            QParams::PerTensor {
                scale: 0.5,
                zero_point,
            },
        )
        .unwrap()
    }

    fn n(e: Engine) -> Numerics {
        Numerics::new(e, HostProfile::Vnni)
    }

    #[test]
    fn nchw_and_nhwc_ties_differ_with_odd_zero_point() {
        // z = 5, window [6, 7, 8, 8] (sum 29, divisor 4): 29/4 = 7.25 → 7 in both rules.
        // window [6, 7, 7, 8] (sum 28) → 7 in both. Window [6, 6, 6, 8] (sum 26):
        // NCHW: 26/4 = 6.5 → 6 (even raw); NHWC: 5 + (26-20)/4 = 5 + 1.5 → 5 + 2 = 7.
        let x = q(QDType::QUInt8, &[6, 6, 6, 8], &[1, 1, 2, 2], 5);
        let mut p = AvgPool2d::new(2);
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Fbgemm)).unwrap().int_values(),
            vec![6]
        );
        p.layout = Layout::Nhwc;
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Fbgemm)).unwrap().int_values(),
            vec![7]
        );
        // qnnpack: zero-point-relative like NHWC, whatever the layout.
        p.layout = Layout::Nchw;
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Qnnpack)).unwrap().int_values(),
            vec![7]
        );
        let a = AdaptiveAvgPool2d::new([1, 1]);
        let ada = |a: &AdaptiveAvgPool2d, e| adaptive_avg_pool2d(&x, a, n(e)).unwrap().int_values();
        assert_eq!(ada(&a, Engine::Fbgemm), vec![6]);
        // qnnpack takes 2x2 → 1x1 (a whole multiple) to QNNPACK's kernel.
        assert_eq!(ada(&a, Engine::Qnnpack), vec![7]);
        let a = AdaptiveAvgPool2d {
            layout: Layout::Nhwc,
            ..a
        };
        assert_eq!(ada(&a, Engine::Fbgemm), vec![7]);
    }

    #[test]
    fn nchw_average_follows_pytorchs_f32_arithmetic() {
        // 2x7 window of -122 and -123 (z = 5): S - z·n = -1785, exactly -127.5 per element, so
        // the exact raw average -122.5 would round to -122; f32(-1785 · f32(1/14)) + 5 lands just
        // below the tie and PyTorch gives -123.
        let v: Vec<i32> = (0..14)
            .map(|i| if i % 2 == 0 { -122 } else { -123 })
            .collect();
        let x = q(QDType::QInt8, &v, &[1, 1, 2, 7], 5);
        let p = AvgPool2d {
            kernel: [2, 7],
            stride: [2, 7],
            ..AvgPool2d::new(1)
        };
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Fbgemm)).unwrap().int_values(),
            vec![-123]
        );
    }

    #[test]
    fn qnnpack_ignores_count_include_pad_false() {
        // 2x2 input, kernel 3, pad 1, stride 2: one window holding all 4 real values.
        let x = q(QDType::QUInt8, &[10, 10, 10, 10], &[1, 1, 2, 2], 0);
        let p = AvgPool2d {
            padding: [1, 1],
            stride: [2, 2],
            count_include_pad: false,
            ..AvgPool2d::new(3)
        };
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Fbgemm)).unwrap().int_values(),
            vec![10]
        );
        // QNNPACK divides by 9: 40/9 = 4.44 → 4.
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Qnnpack)).unwrap().int_values(),
            vec![4]
        );
        // With ceil_mode the generic kernel is used on qnnpack too (a second, partial window appears).
        let p = AvgPool2d {
            ceil_mode: true,
            ..p
        };
        assert_eq!(
            avg_pool2d(&x, &p, n(Engine::Qnnpack)).unwrap().int_values(),
            vec![10; 4]
        );
    }

    #[test]
    fn max_pool_dilation_and_ceil_mode() {
        let x = q(
            QDType::QInt8,
            &(0..25).map(|v| (v * 7) % 23 - 10).collect::<Vec<_>>(),
            &[1, 5, 5],
            0,
        );
        let p = MaxPool2d {
            dilation: [2, 2],
            stride: [1, 1],
            ..MaxPool2d::new(2)
        };
        let y = max_pool2d(&x, &p, n(Engine::Fbgemm)).unwrap();
        assert_eq!(y.shape(), &[1, 3, 3]);
        let v = x.int_values();
        assert_eq!(
            y.int_values()[0],
            [v[0], v[2], v[10], v[12]].into_iter().max().unwrap()
        );
        let p = MaxPool2d {
            ceil_mode: true,
            ..MaxPool2d::new(2)
        };
        let y = max_pool2d(&x, &p, n(Engine::Fbgemm)).unwrap();
        assert_eq!(y.shape(), &[1, 3, 3]);
        assert_eq!(y.int_values()[8], v[24]);
    }

    #[test]
    fn pool_errors_are_typed() {
        let x = q(QDType::QUInt8, &[1; 4], &[1, 1, 2, 2], 0);
        // qnnpack's kernel takes 4-D inputs only; the generic one also takes [C, H, W].
        let chw = q(QDType::QUInt8, &[1; 4], &[1, 2, 2], 0);
        let r = avg_pool2d(&chw, &AvgPool2d::new(2), n(Engine::Qnnpack));
        assert!(matches!(r, Err(QnnError::Shape { .. })));
        assert!(avg_pool2d(&chw, &AvgPool2d::new(2), n(Engine::Fbgemm)).is_ok());
        let r = avg_pool2d(&x, &AvgPool2d::new(1), n(Engine::Qnnpack));
        assert!(matches!(r, Err(QnnError::InvalidParam { .. })));
        let r = max_pool2d(&x, &MaxPool2d::new(1), n(Engine::Qnnpack));
        assert!(matches!(r, Err(QnnError::InvalidParam { .. })));
        let r = max_pool2d(&chw, &MaxPool2d::new(2), n(Engine::Qnnpack));
        assert!(matches!(r, Err(QnnError::Shape { .. })));
        assert!(matches!(
            max_pool2d(&x, &MaxPool2d::new(3), n(Engine::Fbgemm)),
            Err(QnnError::WindowTooLarge { .. })
        ));
        let p = AvgPool2d {
            padding: [2, 2],
            ..AvgPool2d::new(3)
        };
        assert!(matches!(
            avg_pool2d(&x, &p, n(Engine::Fbgemm)),
            Err(QnnError::InvalidParam { .. })
        ));
        let p = AvgPool2d {
            divisor_override: Some(0),
            ..AvgPool2d::new(1)
        };
        assert!(matches!(
            avg_pool2d(&x, &p, n(Engine::Fbgemm)),
            Err(QnnError::InvalidParam { .. })
        ));
        let e = q(QDType::QUInt8, &[], &[1, 0, 2, 2], 0);
        assert!(matches!(
            max_pool2d(&e, &MaxPool2d::new(1), n(Engine::Fbgemm)),
            Err(QnnError::EmptyInput { .. })
        ));
        assert!(matches!(
            adaptive_avg_pool2d(&x, &AdaptiveAvgPool2d::new([0, 1]), n(Engine::X86)),
            Err(QnnError::OutputSize { .. })
        ));
        let flat = q(QDType::QUInt8, &[1; 4], &[4], 0);
        assert!(matches!(
            max_pool2d(&flat, &MaxPool2d::new(1), n(Engine::Fbgemm)),
            Err(QnnError::Shape { .. })
        ));
    }
}
