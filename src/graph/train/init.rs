//! Training from scratch: a small seeded PRNG (SplitMix64, so no dependency) and PyTorch's
//! default `reset_parameters` for Conv / Linear / BatchNorm.

use crate::graph::{Graph, Op};
use ndarray::ArrayViewMutD;

/// SplitMix64: tiny, fast, and the same stream on every platform for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[0, n)`; 0 when n is 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Fills `a` uniformly from `[-bound, bound)`.
    pub fn fill_uniform(&mut self, mut a: ArrayViewMutD<'_, f32>, bound: f32) {
        a.iter_mut()
            .for_each(|v| *v = -bound + 2.0 * bound * self.next_f32());
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// PyTorch's default initialisation: Conv / Linear weights kaiming-uniform with a = √5, which
/// is uniform in ±1/√fan_in, biases uniform in ±1/√fan_in (fan_in = in_features, or
/// in_channels/groups × kernel volume); BatchNorm γ = 1, β = 0, running mean 0, running var 1.
/// Nodes are visited in order, weight before bias.
pub fn reset_parameters(graph: &mut Graph, rng: &mut Rng) {
    for node in &mut graph.nodes {
        match &mut node.op {
            Op::Conv(p) => {
                let fan_in: usize = p.weight.shape().iter().skip(1).product();
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                rng.fill_uniform(p.weight.view_mut(), bound);
                if let Some(b) = &mut p.bias {
                    rng.fill_uniform(b.view_mut().into_dyn(), bound);
                }
            }
            Op::Linear(p) => {
                let bound = 1.0 / (p.weight.ncols().max(1) as f32).sqrt();
                rng.fill_uniform(p.weight.view_mut().into_dyn(), bound);
                if let Some(b) = &mut p.bias {
                    rng.fill_uniform(b.view_mut().into_dyn(), bound);
                }
            }
            Op::BatchNorm(p) => {
                p.weight.fill(1.0);
                p.bias.fill(0.0);
                p.running_mean.fill(0.0);
                p.running_var.fill(1.0);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_shuffle_is_a_permutation() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(43).next_u64(), xs[0]);
        assert!((0..1000).all(|_| (0.0..1.0).contains(&a.next_f32())));
        let mut v: Vec<usize> = (0..50).collect();
        a.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
