//! The layering rule as a test: each top-level module sits on a layer and may import
//! (`crate::…`) only modules on lower layers. Front ends (the REPL and the TUI) sit on the top
//! layer and import neither each other nor anything above `session`; nothing imports them. The
//! table is the one definition of the layers; `docs/ARCHITECTURE.md` explains each.

/// Top-level modules by layer, lowest first. A module may import modules of lower rows only.
const LAYERS: &[&[&str]] = &[
    &["isa", "cancel"],
    &["engine"],
    &["tensor"],
    &["observer"],
    &["fake_quant", "kernels"],
    &["qconfig"],
    &["qnn", "graph"],
    &["fsutil"],
    &["workflow"],
    &["import"],
    &["bench_against", "bench_scaling", "export"],
    &["analysis", "bench"],
    &["report", "bench_model"],
    &["session"],
    &["repl", "tui"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The top-level modules a source file refers to as `crate::NAME`, outside comments.
fn imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("a file name");
        // The crate root and the binary see everything; this file names every module.
        if ["lib", "main", "layering"].contains(&top.as_str()) {
            continue;
        }
        let own = layer_of(&top).unwrap_or_else(|| panic!("module '{top}' has no layer in LAYERS"));
        let text = std::fs::read_to_string(&file).expect("source is readable");
        for name in imports(&text) {
            if name == top || name.is_empty() {
                continue;
            }
            match layer_of(&name) {
                Some(l) if l < own => {}
                Some(_) => violations.push(format!("{}: {top} imports {name}", rel.display())),
                None => violations.push(format!("{}: '{name}' has no layer", rel.display())),
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn imports_skip_comments() {
    let text =
        "use crate::tensor::X; // crate::session\n//! see crate::tui\nlet a = crate::isa::f();";
    assert_eq!(imports(text), ["tensor", "isa"]);
}
