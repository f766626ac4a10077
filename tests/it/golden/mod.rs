//! The golden harness: runs every case of every golden file recorded from PyTorch.
//!
//! By default it reads `tests/fixtures/golden/`; `QLAB_GOLDEN_DIR=/other/dir` runs that
//! directory's files instead (same format), and `QLAB_GOLDEN_FILTER=text` keeps only cases whose
//! name or kind contains `text`. Per file it notes how many cases passed and failed (on stderr,
//! visible without `--nocapture`); the test
//! fails on any mismatch, on a kind without a check and on a key the harness does not read
//! (`fields`). A case whose `expected` holds `raises` (PyTorch raised) passes only when qlab
//! returns a typed error for it; the recorded keys it reaches before that are still compared.
//!
//! `tests/fixtures/golden_extra/` holds small hand-derived cases for paths the recorded files do
//! not exercise (`extra` proves they run and that each can fail).

mod dynamic;
mod extra;
mod fake_quant;
mod fields;
mod fusion;
mod json;
mod observers;
mod qops;
mod qops_eltwise;
mod quantize;
mod tensor_ops;
mod workflows;

use json::{Case, CaseError, Outcome};
use std::path::PathBuf;

/// A check for one kind of case: `Ok` when every compared value matches.
type Check = fn(&Case) -> Outcome;

/// The kinds qlab implements, each with its check.
fn check_for(kind: &str) -> Option<Check> {
    quantize::check_for(kind)
        .or_else(|| observers::check_for(kind))
        .or_else(|| fake_quant::check_for(kind))
        .or_else(|| tensor_ops::check_for(kind))
        .or_else(|| qops::check_for(kind))
        .or_else(|| qops_eltwise::check_for(kind))
        .or_else(|| dynamic::check_for(kind))
        .or_else(|| workflows::check_for(kind))
        .or_else(|| fusion::check_for(kind))
}

pub fn golden_dir() -> PathBuf {
    match std::env::var_os("QLAB_GOLDEN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden"),
    }
}

/// Runs one case: `Ok` when it passes, else why not.
pub fn run_case(case: &Case) -> Result<(), String> {
    fields::check_known(case)?;
    let check = check_for(&case.kind).ok_or(format!("no check for kind '{}'", case.kind))?;
    let result = std::panic::catch_unwind(|| check(case))
        .unwrap_or_else(|p| Err(CaseError::Mismatch(format!("panicked: {}", panic_text(&p)))));
    match (case.expected.get("raises"), result) {
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(e.to_string()),
        (Some(_), Err(CaseError::Qlab(_))) => Ok(()),
        (Some(r), Ok(())) => Err(format!("PyTorch raised {r}, qlab returned no error")),
        (Some(r), Err(CaseError::Mismatch(m))) => Err(format!(
            "PyTorch raised {r}, qlab gave no typed error before: {m}"
        )),
    }
}

/// Every `.json` file of `dir`, sorted.
pub fn json_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read golden dir {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_files() {
    let dir = golden_dir();
    let filter = std::env::var("QLAB_GOLDEN_FILTER").unwrap_or_default();
    let files = json_files(&dir);
    assert!(
        !files.is_empty(),
        "no golden .json files in {}",
        dir.display()
    );

    let mut failures = Vec::new();
    let mut total_passed = 0usize;
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let cases = json::load_cases(path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (mut passed, mut failed) = (0usize, 0usize);
        for case in cases
            .iter()
            .filter(|c| filter.is_empty() || c.name.contains(&filter) || c.kind.contains(&filter))
        {
            match run_case(case) {
                Ok(()) => passed += 1,
                Err(msg) => {
                    failed += 1;
                    failures.push(format!("{file} / {} ({}): {msg}", case.name, case.kind));
                }
            }
        }
        total_passed += passed;
        crate::support::note(format_args!(
            "golden {file}: {passed} passed, {failed} failed"
        ));
    }
    if !failures.is_empty() {
        for f in failures.iter().take(40) {
            println!("MISMATCH {f}");
        }
        panic!(
            "{} golden case(s) failed ({} passed)",
            failures.len(),
            total_passed
        );
    }
    assert!(
        total_passed > 0 || !filter.is_empty(),
        "no golden case was checked"
    );
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
