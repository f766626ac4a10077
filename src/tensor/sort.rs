//! `sort` and `topk` on quantized tensors.
//!
//! PyTorch sorts a quantized tensor by sorting `int_repr()` and rewrapping the values with the
//! input's scale and zero point (per-tensor only). Ordering integers is the same as ordering the
//! dequantized values because the scale is positive, so no float is involved. Ties keep their
//! input order in both directions (`stable=True`); qlab always sorts stably, which is one of the
//! orders PyTorch allows when `stable=False`, and `topk` inherits the same tie order.

use super::qparams::resolve_axis;
use super::reduce::{Lanes, require_per_tensor};
use super::{QTensor, TensorError};

impl QTensor {
    /// `torch.sort(x, dim, descending, stable)`: sorted values and their indices along `dim`.
    pub fn sort(&self, dim: i64, descending: bool) -> Result<(QTensor, Vec<i64>), TensorError> {
        require_per_tensor(self, "sort")?;
        let d = resolve_axis(dim, self.ndim())?;
        let len = self.shape().get(d).copied().unwrap_or(1);
        Ok(self.ranked(d, len, descending))
    }

    /// `torch.topk(x, k, dim, largest, sorted)`: the `k` largest (or smallest) along `dim`,
    /// always returned in sorted order (a valid result for `sorted=False` as well).
    pub fn topk(
        &self,
        k: usize,
        dim: i64,
        largest: bool,
    ) -> Result<(QTensor, Vec<i64>), TensorError> {
        require_per_tensor(self, "topk")?;
        let d = resolve_axis(dim, self.ndim())?;
        let len = self.shape().get(d).copied().unwrap_or(1);
        if k > len {
            return Err(TensorError::IndexOutOfRange {
                what: "topk k",
                index: k as i64,
                dim: d,
                size: len,
            });
        }
        Ok(self.ranked(d, k, largest))
    }

    /// The first `take` elements of every lane along `d` after a stable sort.
    fn ranked(&self, d: usize, take: usize, descending: bool) -> (QTensor, Vec<i64>) {
        let lanes = Lanes::new(self.shape(), d);
        let values = self.int_values();
        let mut out = vec![0i32; lanes.outer * take * lanes.inner];
        let mut idx = vec![0i64; out.len()];
        let mut order: Vec<usize> = Vec::with_capacity(lanes.len);
        for (o, i) in lanes.iter() {
            order.clear();
            order.extend(0..lanes.len);
            let key = |k: &usize| values[lanes.at(o, i, *k)];
            // Stable sorts: equal integers keep their input order in either direction.
            if descending {
                order.sort_by_key(|k| std::cmp::Reverse(key(k)));
            } else {
                order.sort_by_key(key);
            }
            for (j, &k) in order.iter().take(take).enumerate() {
                let dst = (o * take + j) * lanes.inner + i;
                out[dst] = key(&k);
                idx[dst] = k as i64;
            }
        }
        let mut shape = self.shape().to_vec();
        if let Some(s) = shape.get_mut(d) {
            *s = take;
        }
        (self.with_values(out, shape, self.qparams().clone()), idx)
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::{QDType, QTensor, TensorError};

    fn qt(values: &[i32], shape: &[usize]) -> QTensor {
        crate::tensor::test_tensor(QDType::QInt8, values, shape, 0.1, 3)
    }

    proptest::proptest! {
        /// Every lane comes out ordered, each value is the input at its index, and equal values
        /// keep increasing indices (stability).
        #[test]
        fn sort_orders_lanes_stably(values in proptest::collection::vec(-4i32..4, 12), dim in 0i64..2, descending: bool) {
            let t = qt(&values, &[3, 4]);
            let (v, idx) = t.sort(dim, descending).unwrap();
            let got = v.int_values();
            let (lanes, len, step) = if dim == 0 { (4, 3, 4) } else { (3, 4, 1) };
            for lane in 0..lanes {
                let base = if dim == 0 { lane } else { lane * 4 };
                for k in 0..len {
                    let at = base + k * step;
                    let src = if dim == 0 { idx[at] as usize * 4 + lane } else { base + idx[at] as usize };
                    proptest::prop_assert_eq!(got[at], values[src]);
                    if k > 0 {
                        let (prev, cur) = (got[at - step], got[at]);
                        let ordered = if descending { prev >= cur } else { prev <= cur };
                        proptest::prop_assert!(ordered);
                        if prev == cur {
                            proptest::prop_assert!(idx[at - step] < idx[at]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sort_is_stable_in_both_directions() {
        let t = qt(&[2, -1, 2, 5, -1], &[5]);
        let (v, i) = t.sort(0, false).unwrap();
        assert_eq!(
            (v.int_values(), i),
            (vec![-1, -1, 2, 2, 5], vec![1, 4, 0, 2, 3])
        );
        let (v, i) = t.sort(-1, true).unwrap();
        assert_eq!(
            (v.int_values(), i),
            (vec![5, 2, 2, -1, -1], vec![3, 0, 2, 1, 4])
        );
        assert_eq!(v.q_zero_point().unwrap(), 3);
    }

    #[test]
    fn topk_along_dim0_and_errors() {
        let t = qt(&[1, 9, 4, 3, 7, 0], &[3, 2]);
        let (v, i) = t.topk(2, 0, true).unwrap();
        assert_eq!(
            (v.shape().to_vec(), v.int_values(), i),
            (vec![2, 2], vec![7, 9, 4, 3], vec![2, 0, 1, 1])
        );
        let (v, i) = t.topk(1, 1, false).unwrap();
        assert_eq!((v.int_values(), i), (vec![1, 3, 0], vec![0, 1, 1]));
        assert!(matches!(
            t.topk(4, 0, true),
            Err(TensorError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            t.sort(2, false),
            Err(TensorError::AxisOutOfBounds { .. })
        ));
    }
}
