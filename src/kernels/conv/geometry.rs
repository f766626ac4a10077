//! What a convolution is, independent of how it is computed: its geometry, its operands and the
//! pair model that fixes which int16 pairs saturate (see [`super::reference`] for the
//! semantics). Every conv kernel takes these, so they live apart from any one kernel.

/// Sizes of one convolution; all per-dim vectors have one entry per spatial dim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub input: Vec<usize>,
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    pub dilation: Vec<usize>,
    /// Output spatial sizes (`(in + 2p - d(k-1) - 1) / s + 1`).
    pub output: Vec<usize>,
}

/// How the raw u8×s8 products are summed before the exact zero-point corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairModel {
    /// Exact i32 sums (VNNI, qnnpack, the mathematical answer).
    Exact,
    /// fbgemm: saturating int16 pairs along the channels-last im2col row of each group.
    Im2colPairs,
    /// oneDNN AVX2: saturating int16 pairs of channels within each in-bounds tap.
    TapChannelPairs,
}

impl ConvGeometry {
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    pub fn out_positions(&self) -> usize {
        self.output.iter().product()
    }

    pub(super) fn in_positions(&self) -> usize {
        self.input.iter().product()
    }

    /// For every output position (row-major) and tap (row-major), the flat spatial input index
    /// it reads, or `None` when it falls in the padding. Built from per-dim tables with
    /// odometer counters: divisions per entry made this table cost more than a 3x3 conv's GEMM.
    pub(super) fn sources(&self) -> Vec<Option<usize>> {
        let dims = self.input.len();
        // Per dim, the input coordinate each (output coordinate, tap coordinate) reads.
        let along: Vec<Vec<Option<usize>>> = (0..dims)
            .map(|d| {
                (0..self.output[d])
                    .flat_map(|o| {
                        (0..self.kernel[d]).map(move |t| {
                            (o * self.stride[d] + t * self.dilation[d])
                                .checked_sub(self.padding[d])
                                .filter(|&i| i < self.input[d])
                        })
                    })
                    .collect()
            })
            .collect();
        let mut steps = vec![1usize; dims];
        for d in (0..dims.saturating_sub(1)).rev() {
            steps[d] = steps[d + 1] * self.input[d + 1];
        }
        let (positions, taps) = (self.out_positions(), self.taps());
        let mut out = Vec::with_capacity(positions * taps);
        let (mut o, mut t) = (vec![0usize; dims], vec![0usize; dims]);
        for _ in 0..positions {
            for _ in 0..taps {
                out.push((0..dims).try_fold(0usize, |flat, d| {
                    along[d][o[d] * self.kernel[d] + t[d]].map(|i| flat + i * steps[d])
                }));
                odometer(&mut t, &self.kernel);
            }
            odometer(&mut o, &self.output);
        }
        out
    }
}

/// Advances a row-major multi-index within `extent` (last dim fastest), wrapping to zero.
pub(super) fn odometer(index: &mut [usize], extent: &[usize]) {
    for d in (0..index.len()).rev() {
        index[d] += 1;
        if index[d] < extent[d] {
            return;
        }
        index[d] = 0;
    }
}

/// A convolution's operands as [`super::conv_u8_i8_i32`] takes them (the depthwise and
/// implicit-GEMM kernels take the same).
pub struct Operands<'a> {
    pub g: &'a ConvGeometry,
    pub x: &'a [u8],
    pub x_zp: i32,
    pub w: &'a [i8],
    pub w_zp: &'a [i32],
    pub model: PairModel,
}
