//! What the test modules share: the repository root, scratch directories, notes that stay
//! visible in `cargo test`'s output, the SIMD tier list with its one-time report, and a cheap
//! stream of random operand bytes. `onnx` builds ONNX models in code.

pub mod onnx;

use qlab::isa::{ALL, Isa};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The repository root (tests read `sample-models/`, `tests/fixtures/` and write `target/`).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory `target/test-scratch/NAME` for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes one line straight to the process's stderr. libtest captures `print!`/`eprint!` of a
/// passing test and shows nothing; a skip or a per-file count must be seen without
/// `--nocapture`, so it bypasses the capture by writing to the handle itself.
pub fn note(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Reports that `what` did not run and why (a visible line in `cargo test`'s output).
pub fn skip(what: impl std::fmt::Display, reason: impl std::fmt::Display) {
    note(format_args!("SKIPPED {what}: {reason}"));
}

/// The shared zoo beside the checkout (`../shared/zoo`), or `None` after noting that `what` is
/// skipped.
pub fn shared_zoo(what: &str) -> Option<PathBuf> {
    let dir = root().join("../shared/zoo");
    if dir.join("manifest.json").is_file() {
        Some(dir)
    } else {
        skip(
            what,
            "the shared zoo (../shared/zoo) is not beside this checkout",
        );
        None
    }
}

/// A zoo file: the small text model's files ship in `tests/fixtures/zoo`, the image networks
/// are read from the shared zoo when it is there.
pub fn zoo_file(file: &str) -> Option<PathBuf> {
    [
        root().join("tests/fixtures/zoo"),
        root().join("../shared/zoo"),
    ]
    .into_iter()
    .map(|d| d.join(file))
    .find(|p| p.exists())
}

/// The tiers the host has. The first call in the process notes `testing <tier>: <what(tier)>`
/// for each of them and `skipped <tier>: <reason>` for the others.
pub fn tiers(what: impl Fn(Isa) -> String) -> Vec<Isa> {
    static REPORT: Once = Once::new();
    REPORT.call_once(|| {
        for isa in ALL {
            match isa.check() {
                Ok(_) => note(format_args!("testing {isa}: {}", what(isa))),
                Err(e) => skip(isa, e),
            }
        }
    });
    ALL.into_iter().filter(|t| t.is_available()).collect()
}

/// A xorshift stream: values are drawn in bulk from a seed, which keeps cases cheap.
pub struct Stream(pub u64);

impl Stream {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A byte that is an extreme (`lo` or `hi`) with probability `extreme`/8, else uniform.
    pub fn byte(&mut self, extreme: u64, lo: u8, hi: u8) -> u8 {
        let r = self.next();
        match r % 8 {
            v if v < extreme => [lo, hi][(r >> 8) as usize % 2],
            _ => (r >> 16) as u8,
        }
    }
}

/// A depthwise conv geometry: `channels` groups of one input channel and `multiplier` outputs,
/// one `(kernel, stride, padding, dilation, input)` per spatial dim (always a valid one).
pub fn depthwise_geometry(
    batch: usize,
    channels: usize,
    multiplier: usize,
    dims: &[(usize, usize, usize, usize, usize)],
) -> qlab::kernels::conv_ref::ConvGeometry {
    qlab::kernels::conv_ref::ConvGeometry {
        batch,
        in_channels: channels,
        out_channels: channels * multiplier,
        groups: channels,
        input: dims.iter().map(|d| d.4).collect(),
        kernel: dims.iter().map(|d| d.0).collect(),
        stride: dims.iter().map(|d| d.1).collect(),
        padding: dims.iter().map(|d| d.2).collect(),
        dilation: dims.iter().map(|d| d.3).collect(),
        output: dims
            .iter()
            .map(|&(k, s, p, d, i)| (i + 2 * p - d * (k - 1) - 1) / s + 1)
            .collect(),
    }
}
