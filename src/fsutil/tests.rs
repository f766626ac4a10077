//! Every way a write could destroy data or leave debris: a directory or file that is not a
//! model at the path, paths naming no entry, replacement, a failure midway, temps of a killed
//! run, and unrelated files sitting at temp names.

use super::{WriteError, write_atomic, write_dir_atomic};
use std::path::{Path, PathBuf};

/// A fresh scratch directory under `target/` for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fsutil-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The test's stand-in for a model's format check.
fn marked(dir: &Path) -> Result<(), String> {
    match std::fs::read(dir.join("a")) {
        Ok(b) if b.starts_with(b"model") => Ok(()),
        _ => Err("'a' has no model marker".into()),
    }
}

fn save(dir: &Path, a: &[u8], b: &[u8]) -> Result<(), WriteError> {
    write_dir_atomic(dir, &[("a", a), ("b", b)], &marked)
}

/// The sorted entry names of `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_directory_that_is_not_a_model_is_refused_and_kept() {
    let root = scratch("foreign_dir");
    let dir = root.join("m.qlab");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let err = save(&dir, b"model 1", b"w").unwrap_err().to_string();
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(
        err.contains("notes.txt") && err.contains("refusing"),
        "{err}"
    );
    assert_eq!(read(&dir.join("notes.txt")), "mine");
    assert_eq!(listing(&root), ["m.qlab"]);

    // Only the writer's own file names, but failing the format check: also kept.
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    std::fs::write(dir.join("a"), "someone else's").unwrap();
    let err = save(&dir, b"model 1", b"w").unwrap_err().to_string();
    assert!(err.contains("no model marker"), "{err}");
    assert_eq!(read(&dir.join("a")), "someone else's");
    assert_eq!(listing(&root), ["m.qlab"]);
}

#[test]
fn a_file_at_the_path_is_refused_and_kept() {
    let root = scratch("file_at_path");
    let path = root.join("m.qlab");
    std::fs::write(&path, "precious").unwrap();
    let err = save(&path, b"model 1", b"w").unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains("is a file"));
    assert_eq!(read(&path), "precious");
    assert_eq!(listing(&root), ["m.qlab"]);
}

#[test]
fn paths_naming_no_entry_are_refused_without_temps() {
    let root = scratch("no_entry");
    let inner = root.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let bad = [
        PathBuf::from("."),
        PathBuf::from(".."),
        PathBuf::from("/"),
        inner.join("."),
        inner.join(".."),
        PathBuf::from(format!("{}/", inner.join("m.qlab").display())),
    ];
    for path in &bad {
        let err = save(path, b"model 1", b"w").unwrap_err();
        assert!(matches!(err, WriteError::Refused { .. }), "{path:?}: {err}");
        assert!(
            err.to_string()
                .contains("must end in a file or directory name")
        );
        let err = write_atomic(path, b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{path:?}");
    }
    assert_eq!(listing(&root), ["inner"]);
    assert!(listing(&inner).is_empty());
    let cwd = std::env::current_dir().unwrap();
    let stray = |d: &Path| listing(d).iter().any(|n| n.contains(".qlab-tmp-"));
    assert!(!stray(&cwd) && !stray(cwd.parent().unwrap_or(&cwd)));
}

#[test]
fn a_model_is_replaced_whole_and_no_temp_remains() {
    let root = scratch("replace");
    let dir = root.join("m.qlab");
    save(&dir, b"model 1", b"w1").unwrap();
    save(&dir, b"model 2", b"w2").unwrap();
    assert_eq!(
        (read(&dir.join("a")), read(&dir.join("b"))),
        ("model 2".into(), "w2".into())
    );
    assert_eq!(listing(&root), ["m.qlab"]);
    // An empty directory holds nothing to lose, so it may become a model.
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    save(&empty, b"model 3", b"w3").unwrap();
    assert_eq!(listing(&empty), ["a", "b"]);
    assert_eq!(listing(&root), ["empty", "m.qlab"]);
}

#[test]
fn a_failure_midway_keeps_the_old_model_and_removes_the_temp() {
    let root = scratch("midway");
    let dir = root.join("m.qlab");
    save(&dir, b"model 1", b"w1").unwrap();
    // The second file cannot be created (its directory does not exist in the temp).
    let files: [(&str, &[u8]); 3] = [("a", b"model 2"), ("b", b"w2"), ("no/such", b"")];
    let err = write_dir_atomic(&dir, &files, &marked).unwrap_err();
    assert!(matches!(err, WriteError::Io { .. }), "{err}");
    assert!(err.to_string().contains(".qlab-tmp-"), "{err}");
    assert_eq!(
        (read(&dir.join("a")), read(&dir.join("b"))),
        ("model 1".into(), "w1".into())
    );
    assert_eq!(listing(&root), ["m.qlab"]);
}

#[test]
fn temps_of_a_killed_run_are_removed_by_the_next_save() {
    let root = scratch("killed");
    let dir = root.join("m.qlab");
    // No process has this PID (above Linux's pid_max).
    let dead = root.join(".m.qlab.qlab-tmp-2147483000-0");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("a"), "half").unwrap();
    std::fs::write(root.join(".m.qlab.qlab-tmp-2147483000-1"), "half file").unwrap();
    // Lookalikes that are not qlab's debris stay: a live PID, a foreign file inside.
    let live = root.join(format!(".m.qlab.qlab-tmp-{}-9", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    let foreign = root.join(".m.qlab.qlab-tmp-2147483001-0");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    save(&dir, b"model 1", b"w1").unwrap();
    let mut expected = vec![
        ".m.qlab.qlab-tmp-2147483001-0".to_string(),
        live.file_name().unwrap().to_string_lossy().into_owned(),
        "m.qlab".into(),
    ];
    expected.sort();
    assert_eq!(listing(&root), expected);
    assert_eq!(read(&foreign.join("notes.txt")), "mine");
}

#[test]
fn files_at_temp_names_are_never_clobbered() {
    let root = scratch("temp_names");
    let pid = std::process::id();
    for target in ["out.npy", "m.qlab"] {
        for n in 0..2 {
            let taken = root.join(format!(".{target}.qlab-tmp-{pid}-{n}"));
            std::fs::write(&taken, format!("user file {n}")).unwrap();
        }
    }
    write_atomic(&root.join("out.npy"), b"new").unwrap();
    write_atomic(&root.join("out.npy"), b"newer").unwrap();
    save(&root.join("m.qlab"), b"model 1", b"w1").unwrap();
    save(&root.join("m.qlab"), b"model 2", b"w2").unwrap();
    assert_eq!(read(&root.join("out.npy")), "newer");
    assert_eq!(read(&root.join("m.qlab/a")), "model 2");
    for target in ["out.npy", "m.qlab"] {
        for n in 0..2 {
            let taken = root.join(format!(".{target}.qlab-tmp-{pid}-{n}"));
            assert_eq!(read(&taken), format!("user file {n}"));
        }
    }
    assert_eq!(listing(&root).len(), 6);
}

#[test]
fn write_atomic_replaces_a_file_and_creates_parents() {
    let root = scratch("file_write");
    let path = root.join("deep/er/report.json");
    write_atomic(&path, b"1").unwrap();
    write_atomic(&path, b"2").unwrap();
    assert_eq!(read(&path), "2");
    assert_eq!(listing(&root.join("deep/er")), ["report.json"]);
}

/// The fallback where `RENAME_EXCHANGE` is missing: the new directory takes the target's place
/// and the old one ends at the new one's temp name (which the writer then removes).
#[test]
fn the_portable_swap_exchanges_the_directories() {
    let root = scratch("portable_swap");
    let dir = root.join("m.qlab");
    save(&dir, b"model 1", b"w1").unwrap();
    let new = root.join("staged");
    std::fs::create_dir(&new).unwrap();
    std::fs::write(new.join("a"), "model 2").unwrap();
    let target = super::Target::of(&dir).unwrap();
    super::dir::swap_by_two_renames(&target, &new).unwrap();
    assert_eq!(read(&dir.join("a")), "model 2");
    assert_eq!(read(&new.join("a")), "model 1");
    assert_eq!(listing(&root), ["m.qlab", "staged"]);
}
