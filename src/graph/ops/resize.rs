//! Spatial resizing of NCHW tensors as `F.interpolate` does it: nearest (floor of the scaled
//! index) and bilinear (half-pixel or align_corners source coordinates).

use crate::graph::{GraphError, ResizeMode};
use ndarray::{ArrayD, IxDyn};

/// Source coordinate scale of one axis: `in/out`, or `1/scale_factor` when a factor was given,
/// or `(in-1)/(out-1)` with align_corners.
fn axis_scale(input: usize, output: usize, factor: Option<f32>, align_corners: bool) -> f32 {
    if align_corners {
        if output > 1 {
            (input as f32 - 1.0) / (output as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        factor.map_or(input as f32 / output as f32, |f| 1.0 / f)
    }
}

/// Resizes the two trailing dims of `x` to `out_hw`; `factors` are the user's scale factors.
pub fn resize(
    node: &str,
    x: &ArrayD<f32>,
    out_hw: [usize; 2],
    factors: Option<[f32; 2]>,
    mode: ResizeMode,
    align_corners: bool,
) -> Result<ArrayD<f32>, GraphError> {
    if x.ndim() != 4 || out_hw.contains(&0) {
        return Err(GraphError::Shape {
            node: node.into(),
            detail: format!(
                "cannot resize {:?} to {out_hw:?} (NCHW input, non-empty output)",
                x.shape()
            ),
        });
    }
    let (n, c, ih, iw) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let [oh, ow] = out_hw;
    let sh = axis_scale(ih, oh, factors.map(|f| f[0]), align_corners);
    let sw = axis_scale(iw, ow, factors.map(|f| f[1]), align_corners);
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard");
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in xs.chunks(ih * iw).take(n * c) {
        for oy in 0..oh {
            for ox in 0..ow {
                let v = match mode {
                    ResizeMode::Nearest => {
                        let sy = ((oy as f32 * sh).floor() as usize).min(ih - 1);
                        let sx = ((ox as f32 * sw).floor() as usize).min(iw - 1);
                        plane[sy * iw + sx]
                    }
                    ResizeMode::Bilinear => {
                        let (y0, y1, ly) = taps(oy, sh, ih, align_corners);
                        let (x0, x1, lx) = taps(ox, sw, iw, align_corners);
                        let top = (1.0 - lx) * plane[y0 * iw + x0] + lx * plane[y0 * iw + x1];
                        let bottom = (1.0 - lx) * plane[y1 * iw + x0] + lx * plane[y1 * iw + x1];
                        (1.0 - ly) * top + ly * bottom
                    }
                };
                y.push(v);
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&[n, c, oh, ow]), y).expect("resize output shape"))
}

/// The two source indices and the weight of the second for output index `o`.
fn taps(o: usize, scale: f32, len: usize, align_corners: bool) -> (usize, usize, f32) {
    let src = if align_corners {
        scale * o as f32
    } else {
        (scale * (o as f32 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src as usize).min(len - 1);
    let i1 = if i0 < len - 1 { i0 + 1 } else { i0 };
    (i0, i1, src - i0 as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap()
    }

    #[test]
    fn nearest_doubles_pixels() {
        let y = resize(
            "r",
            &grid(),
            [4, 4],
            Some([2.0, 2.0]),
            ResizeMode::Nearest,
            false,
        )
        .unwrap();
        assert_eq!(
            y.as_slice().unwrap()[..8],
            [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
        );
    }

    #[test]
    fn bilinear_matches_pytorch_values() {
        // F.interpolate(t, size=(3,3), mode='bilinear', align_corners=True) on [[1,2],[3,4]].
        let y = resize("r", &grid(), [3, 3], None, ResizeMode::Bilinear, true).unwrap();
        assert_eq!(
            y.as_slice().unwrap(),
            &[1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0]
        );
        // align_corners=False, scale 2: first row is [1, 1.25, 1.75, 2].
        let y = resize(
            "r",
            &grid(),
            [4, 4],
            Some([2.0, 2.0]),
            ResizeMode::Bilinear,
            false,
        )
        .unwrap();
        assert_eq!(y.as_slice().unwrap()[..4], [1.0, 1.25, 1.75, 2.0]);
    }
}
