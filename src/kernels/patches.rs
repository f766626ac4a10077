//! The im2col matrix of one convolution group, read without being built: row
//! `channel · kvol + tap` (the weight's own column order), column = output position. The float
//! convolution's FMA chains ([`crate::kernels::fchain`]) pack the rows they need, a few dozen
//! positions at a time, straight from the input; a whole im2col buffer (kvol copies of the input,
//! megabytes for a ResNet stage) would be written once and streamed back from memory.
//!
//! A padding tap reads `0.0`, exactly as an im2col buffer filled with zeros would.

/// A convolution window lifted to three spatial dims (unit dims for 1-d and 2-d).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub out: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dilation: [usize; 3],
}

/// One group's input (`channels` planes of `input` volume) seen through `window`.
#[derive(Debug, Clone, Copy)]
pub struct Patches<'a> {
    pub x: &'a [f32],
    pub channels: usize,
    pub window: Window,
}

impl Patches<'_> {
    /// Rows of the im2col matrix: one per (channel, tap).
    pub fn rows(&self) -> usize {
        self.channels * self.window.kernel.iter().product::<usize>()
    }

    /// Columns: one per output position.
    pub fn positions(&self) -> usize {
        self.window.out.iter().product()
    }

    /// Panics unless `x` holds every channel plane (what every read below relies on).
    pub fn check(&self) {
        let ivol: usize = self.window.input.iter().product();
        assert!(
            self.channels * ivol <= self.x.len(),
            "x holds every channel plane"
        );
    }

    /// The input offset (channel plane, tap) of row `k`.
    fn row(&self, k: usize) -> (&[f32], [usize; 3]) {
        let [_, kh, kw] = self.window.kernel;
        let kvol = self.window.kernel.iter().product::<usize>();
        let ivol: usize = self.window.input.iter().product();
        let (c, t) = (k / kvol, k % kvol);
        (
            &self.x[c * ivol..][..ivol],
            [t / (kh * kw), t / kw % kh, t % kw],
        )
    }

    /// Element (`k`, `p`): the definition [`Patches::pack`] reproduces.
    pub fn value(&self, k: usize, p: usize) -> f32 {
        let w = &self.window;
        let (plane, tap) = self.row(k);
        let [_, oh, ow] = w.out;
        let o = [p / (oh * ow), p / ow % oh, p % ow];
        let mut at = 0;
        for d in 0..3 {
            match tap_index(
                o[d],
                w.stride[d],
                tap[d],
                w.dilation[d],
                w.pad[d],
                w.input[d],
            ) {
                Some(i) => at = at * w.input[d] + i,
                None => return 0.0,
            }
        }
        plane[at]
    }

    /// Packs rows `ks` of positions `p0..p0 + width`: row `ks[i]` lands in
    /// `dst[i·stride..][..width]`, `dst[i·stride + j] = value(ks[i], p0 + j)`.
    ///
    /// Which input element a position reads depends only on the tap, not the channel, so the
    /// runs of each tap are worked out once ([`Patches::runs`]) and every row replays its tap's
    /// runs on its channel's plane.
    pub fn pack_rows(&self, ks: &[usize], p0: usize, width: usize, dst: &mut [f32], stride: usize) {
        let kvol = self.window.kernel.iter().product::<usize>();
        let ivol: usize = self.window.input.iter().product();
        let sx = self.window.stride[2];
        let runs: Vec<Vec<Run>> = (0..kvol).map(|t| self.runs(t, p0, width)).collect();
        for (i, &k) in ks.iter().enumerate() {
            let plane = &self.x[k / kvol * ivol..][..ivol];
            let row = &mut dst[i * stride..][..width];
            for run in &runs[k % kvol] {
                let out = &mut row[run.at..][..run.len];
                match run.from {
                    None => out.fill(0.0),
                    Some(from) if sx == 1 => out.copy_from_slice(&plane[from..][..run.len]),
                    Some(from) => {
                        for (d, &v) in out.iter_mut().zip(plane[from..].iter().step_by(sx)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }

    /// The runs tap `t` reads for positions `p0..p0 + width`, in order, covering them all:
    /// each either zeros (padding) or input elements from plane offset `from`, `stride[2]` apart.
    fn runs(&self, t: usize, p0: usize, width: usize) -> Vec<Run> {
        let w = &self.window;
        let [_, kh, kw] = w.kernel;
        let (a, b, e) = (t / (kh * kw), t / kw % kh, t % kw);
        let [id, ih, iw] = w.input;
        let [_, oh, ow] = w.out;
        let (sx, dx, px) = (w.stride[2], w.dilation[2], w.pad[2]);
        // The output columns whose tap `e` lands inside the input row.
        let inside = tap_range(ow, sx, dx, px, iw, e);
        let mut runs = Vec::new();
        let mut push = |at: usize, len: usize, from: Option<usize>| {
            if len > 0 {
                runs.push(Run { at, len, from });
            }
        };
        let mut p = p0;
        while p < p0 + width {
            let (r, x0) = (p / ow, p % ow);
            let len = (ow - x0).min(p0 + width - p);
            let at = p - p0;
            p += len;
            let z = tap_index(r / oh, w.stride[0], a, w.dilation[0], w.pad[0], id);
            let y = tap_index(r % oh, w.stride[1], b, w.dilation[1], w.pad[1], ih);
            let (Some(z), Some(y)) = (z, y) else {
                push(at, len, None);
                continue;
            };
            // This run covers columns x0..x0 + len; the inside ones read the input row.
            let lo = inside.start.clamp(x0, x0 + len) - x0;
            let hi = inside.end.clamp(x0 + lo, x0 + len) - x0;
            push(at, lo, None);
            let first = (x0 + lo) * sx + e * dx;
            push(
                at + lo,
                hi - lo,
                Some((z * ih + y) * iw + first.saturating_sub(px)),
            );
            push(at + hi, len - hi, None);
        }
        runs
    }
}

/// A stretch of one packed row: `len` positions from `at`, zeros or input from `from`.
#[derive(Debug, Clone, Copy)]
struct Run {
    at: usize,
    len: usize,
    from: Option<usize>,
}

/// The outputs `o < o_len` whose input index `o·stride + k·dil - pad` (through tap `k`) falls
/// inside `[0, len)`.
pub(crate) fn tap_range(
    o_len: usize,
    stride: usize,
    dil: usize,
    pad: usize,
    len: usize,
    k: usize,
) -> std::ops::Range<usize> {
    let lo = pad.saturating_sub(k * dil).div_ceil(stride).min(o_len);
    let hi = (len + pad)
        .saturating_sub(k * dil)
        .div_ceil(stride)
        .min(o_len);
    lo..hi.max(lo)
}

/// The input index `o·stride + k·dil - pad` that output `o` reads through tap `k`, when it lies
/// inside `[0, len)`.
#[inline(always)]
pub(crate) fn tap_index(
    o: usize,
    stride: usize,
    k: usize,
    dil: usize,
    pad: usize,
    len: usize,
) -> Option<usize> {
    (o * stride + k * dil).checked_sub(pad).filter(|&i| i < len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing any run of positions equals the definition, over strides, dilations,
    /// asymmetric padding, 3-d windows and runs that start and end mid-row.
    #[test]
    fn pack_matches_value() {
        let windows = [
            ([1, 9, 11], [1, 3, 3], [1, 1, 1], [0, 1, 1], [1, 1, 1]),
            ([1, 12, 10], [1, 3, 5], [1, 2, 3], [0, 2, 1], [1, 1, 2]),
            ([4, 5, 6], [2, 3, 2], [2, 1, 2], [1, 0, 1], [1, 2, 1]),
            ([1, 1, 17], [1, 1, 4], [1, 1, 3], [0, 0, 2], [1, 1, 1]),
        ];
        for (input, kernel, stride, pad, dilation) in windows {
            let out: [usize; 3] = std::array::from_fn(|d| {
                (input[d] + 2 * pad[d] - dilation[d] * (kernel[d] - 1) - 1) / stride[d] + 1
            });
            let channels = 2;
            let ivol: usize = input.iter().product();
            let x: Vec<f32> = (0..channels * ivol).map(|i| i as f32 + 1.0).collect();
            let patches = Patches {
                x: &x,
                channels,
                window: Window {
                    input,
                    kernel,
                    out,
                    stride,
                    pad,
                    dilation,
                },
            };
            patches.check();
            let n = patches.positions();
            for k in 0..patches.rows() {
                for (p0, len) in [(0, n), (3.min(n), n - 3.min(n)), (n / 2, n / 3)] {
                    let mut got = vec![f32::NAN; 2 * len + 1];
                    patches.pack_rows(&[k, 0], p0, len, &mut got, len + 1);
                    let want: Vec<f32> = (p0..p0 + len).map(|p| patches.value(k, p)).collect();
                    assert_eq!(got[..len], want, "{input:?} {kernel:?} row {k} from {p0}");
                    assert!(got[len].is_nan(), "the gap between rows is left alone");
                    let want: Vec<f32> = (p0..p0 + len).map(|p| patches.value(0, p)).collect();
                    assert_eq!(got[len + 1..], want, "{input:?} {kernel:?} row 0 from {p0}");
                }
            }
        }
    }
}
