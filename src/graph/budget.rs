//! The memory budget: the largest single tensor qlab will build, and the most memory import may
//! hold in folded constants.
//!
//! A model file is a few hundred bytes, but its attributes and shape operands can ask for any
//! size (a ConstantOfShape of 10¹², a pad of 2⁶²). Every kernel that can output more than it
//! reads (shape ops, broadcasting, Resize, Conv and pool padding) and every import-time
//! allocation computes the byte count with checked arithmetic and asks [`check`] first, so an
//! oversized request is a [`GraphError::OverBudget`] naming the node instead of an abort.
//!
//! The budget is `QLAB_MAX_MEMORY` (bytes) when set, otherwise half the smaller of physical
//! memory and the process's address-space limit, or 4 GiB when neither can be read.

use super::GraphError;
use std::sync::OnceLock;

/// The budget when the machine's memory cannot be read.
const FALLBACK: u64 = 4 << 30;

/// The memory budget in bytes, read once per process.
pub fn max_bytes() -> u64 {
    static BUDGET: OnceLock<u64> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var("QLAB_MAX_MEMORY")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&b| b > 0)
            .unwrap_or_else(|| {
                [mem_total(), address_space_limit()]
                    .into_iter()
                    .flatten()
                    .min()
                    .map_or(FALLBACK, |m| m / 2)
            })
    })
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The soft `RLIMIT_AS` (ulimit -v), when one is set: half of physical memory may still be
/// more than the process may map.
fn address_space_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Bytes of a tensor of `shape` with `elem` bytes per element, or `None` on overflow.
pub fn bytes_of(shape: &[usize], elem: usize) -> Option<u64> {
    shape
        .iter()
        .try_fold(elem as u64, |n, &d| n.checked_mul(d as u64))
}

/// Refuses a tensor of `shape` (`elem` bytes per element) that node `node` is about to build
/// when it exceeds the budget; returns its byte count.
pub fn check(node: &str, shape: &[usize], elem: usize) -> Result<u64, GraphError> {
    check_bytes(node, &format!("{shape:?}"), bytes_of(shape, elem))
}

/// Refuses `bytes` (`None`: more than `u64` counts) asked for by `node` for `what`.
pub fn check_bytes(node: &str, what: &str, bytes: Option<u64>) -> Result<u64, GraphError> {
    let budget = max_bytes();
    match bytes {
        Some(b) if b <= budget => Ok(b),
        _ => Err(GraphError::OverBudget {
            node: node.into(),
            what: what.into(),
            bytes: bytes.map_or_else(|| "more than 2^64".into(), |b| b.to_string()),
            budget,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_and_oversize_are_refused() {
        assert_eq!(bytes_of(&[2, 3], 4), Some(24));
        assert_eq!(bytes_of(&[1 << 40, 1 << 40], 4), None);
        let err = check("n", &[1 << 40, 1 << 40], 4).unwrap_err();
        assert!(err.to_string().contains("more than 2^64"), "{err}");
        assert!(check("n", &[max_bytes() as usize], 4).is_err());
        assert_eq!(check("n", &[4], 4), Ok(16));
    }
}
