//! The one float matrix product every op uses (matrixmultiply's SGEMM), behind a safe wrapper.

/// A read-only matrix operand: a slice read at (row, column) strides.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    pub(crate) fn new(data: &'a [f32], row_stride: usize, col_stride: usize) -> Self {
        Mat {
            data,
            row_stride,
            col_stride,
        }
    }

    /// True when every element of a `rows × cols` matrix lies inside the slice.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || self.data.len() > (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// `c[m×n] = a[m×k] · b[k×n]`, `c` written row-major and contiguous.
pub(crate) fn sgemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, c: &mut [f32]) {
    assert!(
        a.covers(m, k) && b.covers(k, n) && c.len() >= m * n,
        "sgemm operand sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `covers` shows every element addressed through the strides lies inside its
    // slice; `c` is exclusively borrowed and holds m·n elements.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
