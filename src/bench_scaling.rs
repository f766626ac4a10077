//! Thread scaling, for `qlab bench` (the 1024³ int8 GEMM) and `qlab bench model` (a batch's
//! fp32 and int8 forward): the same work timed on a one-thread pool and on a pool of the
//! process's rayon thread count (`RAYON_NUM_THREADS`, else one per core), in the same sitting,
//! with the two runs' outputs compared bit for bit — every parallel split in qlab is fixed and
//! every sum is taken in one order, so more threads must never change a result.

use serde::Serialize;
use std::time::Instant;

/// One piece of work at one thread and at `threads`.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// What ran (`int8 linear 1024x1024x1024 avx512vnni`, `fp32 forward, batch 8`, ...).
    pub what: String,
    pub threads: usize,
    pub one_thread_ms: f64,
    pub threads_ms: f64,
    /// `one_thread_ms / threads_ms`.
    pub speedup: f64,
    /// Whether both runs gave the same output, bit for bit.
    pub identical: bool,
}

impl Scaling {
    /// The table line: `what: 1 thread X ms, N threads Y ms = Z.ZZx (outputs identical)`.
    pub fn line(&self) -> String {
        format!(
            "{}: 1 thread {:.2} ms, {} threads {:.2} ms = {:.2}x ({})",
            self.what,
            self.one_thread_ms,
            self.threads,
            self.threads_ms,
            self.speedup,
            if self.identical {
                "outputs bit-identical"
            } else {
                "OUTPUTS DIFFER"
            }
        )
    }
}

/// The thread count scaling is measured at: the global pool's, which `RAYON_NUM_THREADS` sets.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// `run` timed (median of `reps` after a warm-up) on one thread and on `threads` threads, and
/// the `bits` of its last outputs compared (taken outside the timing); `None` when `threads`
/// is 1 (nothing to scale to).
pub fn measure<T, B, E, F>(
    what: &str,
    threads: usize,
    reps: usize,
    mut run: F,
    bits: impl Fn(T) -> B,
) -> Result<Option<Scaling>, E>
where
    T: Send,
    B: PartialEq,
    E: Send,
    F: FnMut() -> Result<T, E> + Send,
{
    if threads < 2 {
        return Ok(None);
    }
    let mut on = |n: usize| -> Result<(f64, T), E> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a rayon pool");
        pool.install(|| {
            let mut out = run()?;
            let mut times = Vec::with_capacity(reps.max(1));
            for _ in 0..reps.max(1) {
                let t = Instant::now();
                out = run()?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            Ok((times[times.len() / 2], out))
        })
    };
    let (one_thread_ms, one) = on(1)?;
    let (threads_ms, many) = on(threads)?;
    Ok(Some(Scaling {
        what: what.into(),
        threads,
        one_thread_ms,
        threads_ms,
        speedup: one_thread_ms / threads_ms,
        identical: bits(one) == bits(many),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures are related as the line says, and outputs that differ are reported, not
    /// hidden (the work here returns the thread count it ran on).
    #[test]
    fn outputs_are_compared_and_the_line_says_so() {
        let sum = || Ok::<_, ()>((0..1000u64).sum::<u64>());
        let same = measure("sum", 2, 1, sum, |v| v).unwrap().unwrap();
        assert!(same.identical && same.threads == 2);
        assert!((same.speedup - same.one_thread_ms / same.threads_ms).abs() < 1e-12);
        assert!(same.line().contains("2 threads") && same.line().contains("bit-identical"));
        let threads = || Ok::<_, ()>(rayon::current_num_threads());
        let differ = measure("threads", 2, 1, threads, |v| v).unwrap().unwrap();
        assert!(!differ.identical && differ.line().contains("OUTPUTS DIFFER"));
        let zero = || Ok::<_, ()>(0);
        assert!(measure("one", 1, 1, zero, |v| v).unwrap().is_none());
    }
}
