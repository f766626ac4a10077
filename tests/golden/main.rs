//! The golden harness: runs every case of every golden file recorded from PyTorch.
//!
//! By default it reads `tests/fixtures/golden/`; `QLAB_GOLDEN_DIR=/other/dir` runs that
//! directory's files instead (same format), and `QLAB_GOLDEN_FILTER=text` keeps only cases whose
//! name or kind contains `text`. Per file it prints how many cases passed, failed, or belong to a
//! kind qlab does not implement yet, and the test fails on any mismatch.

mod dynamic;
mod fake_quant;
mod fusion;
mod json;
mod observers;
mod qops;
mod qops_eltwise;
mod quantize;
mod tensor_ops;
mod workflows;

use json::Case;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A check for one kind of case: `Ok` when every compared value matches.
type Check = fn(&Case) -> Result<(), String>;

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

#[test]
fn golden_files() {
    let dir = golden_dir();
    let filter = std::env::var("QLAB_GOLDEN_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read golden dir {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
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
        let mut uncovered: BTreeMap<String, usize> = BTreeMap::new();
        for case in cases
            .iter()
            .filter(|c| filter.is_empty() || c.name.contains(&filter) || c.kind.contains(&filter))
        {
            let Some(check) = check_for(&case.kind) else {
                *uncovered.entry(case.kind.clone()).or_default() += 1;
                continue;
            };
            let result = std::panic::catch_unwind(|| check(case))
                .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&p))));
            match result {
                Ok(()) => passed += 1,
                Err(msg) => {
                    failed += 1;
                    failures.push(format!("{file} / {} ({}): {msg}", case.name, case.kind));
                }
            }
        }
        total_passed += passed;
        let not_yet: Vec<String> = uncovered.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        println!(
            "golden {file}: {passed} passed, {failed} failed{}",
            if not_yet.is_empty() {
                String::new()
            } else {
                format!(", not yet implemented: {}", not_yet.join(" "))
            }
        );
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
