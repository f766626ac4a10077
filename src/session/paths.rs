//! Where a session's paths point. A script's relative paths are relative to the script's own
//! directory (its *base*), so a session replays from any working directory; the REPL's base is
//! the working directory. Messages keep a path as it was written; only file access resolves it.
//! `save session` rewrites every recorded path relative to the directory of the file it writes.

use super::{Command, Workbench};
use std::path::{Component, Path, PathBuf};

impl Workbench {
    /// Resolves the relative paths of later commands against `dir` (the directory of the
    /// script being replayed) instead of the working directory.
    pub fn set_base_dir(&mut self, dir: impl Into<PathBuf>) {
        self.base_dir = Some(dir.into());
    }

    /// Where `path`, as a command wrote it, is on disk.
    pub(super) fn at(&self, path: &str) -> PathBuf {
        match &self.base_dir {
            Some(base) if Path::new(path).is_relative() => base.join(path),
            _ => PathBuf::from(path),
        }
    }

    /// The recorded commands as a script to be stored at `file`: every path rewritten relative
    /// to `file`'s directory, so the script replays wherever it is run from.
    pub(super) fn session_text_for(&self, file: &Path) -> String {
        let dir = file.parent().unwrap_or(Path::new(""));
        let dir = absolute(dir);
        super::workbench::script(self.log().iter().map(|cmd| {
            let mut cmd: Command = cmd.clone();
            for p in cmd.paths_mut() {
                *p = relative_to(&absolute(&self.at(p)), &dir)
                    .to_string_lossy()
                    .into_owned();
            }
            cmd
        }))
    }
}

/// `path` made absolute against the working directory, with `.` and `..` removed lexically
/// (the files need not exist yet: a session can name outputs it has not written).
fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `path` relative to `dir` (both absolute and normalised), with `..` where it leaves `dir`;
/// `path` itself when they share no root (another drive).
fn relative_to(path: &Path, dir: &Path) -> PathBuf {
    let (p, d): (Vec<_>, Vec<_>) = (path.components().collect(), dir.components().collect());
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut out: PathBuf = d[common..].iter().map(|_| Component::ParentDir).collect();
    out.extend(&p[common..]);
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_rewritten_relative_to_the_session_file() {
        let rel = |p: &str, d: &str| relative_to(Path::new(p), Path::new(d));
        assert_eq!(rel("/a/b/m.onnx", "/a/s"), Path::new("../b/m.onnx"));
        assert_eq!(rel("/a/s/m.onnx", "/a/s"), Path::new("m.onnx"));
        assert_eq!(rel("/a/s", "/a/s"), Path::new("."));
        assert_eq!(rel("/x/m.onnx", "/a/s/t"), Path::new("../../../x/m.onnx"));
        assert_eq!(absolute(Path::new("/a/./b/../c")), Path::new("/a/c"));
        let mut wb = Workbench::new();
        assert_eq!(wb.at("m.onnx"), Path::new("m.onnx"));
        wb.set_base_dir("/scripts");
        assert_eq!(wb.at("m.onnx"), Path::new("/scripts/m.onnx"));
        assert_eq!(wb.at("/abs/m.onnx"), Path::new("/abs/m.onnx"));
    }
}
