//! Writes that never leave a half-written result and never destroy what qlab did not write.
//! Every writer assembles its output under a fresh sibling temp name `.NAME.qlab-tmp-PID-N`
//! (created exclusively, so an existing file at that name is never clobbered), syncs it, then
//! moves it into place with one rename; every error path removes the temp. Temps left by a
//! killed run (a dead PID, and holding only what qlab writes there) are removed by the next
//! successful write of the same path. Files go through [`write_atomic`], directories (native
//! models) through [`write_dir_atomic`]. Inputs are read through [`read_bounded`].

mod dir;
mod read;
#[cfg(test)]
mod tests;

pub use dir::write_dir_atomic;
pub use read::{read_bounded, read_text_bounded};

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a write was refused or failed; the path is the one the user named or the temp beside it.
#[derive(Debug, Error)]
pub enum WriteError {
    /// Writing would destroy something qlab did not write, or the path names no entry.
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
    /// The filesystem refused an operation.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl WriteError {
    fn refused(path: &Path, reason: impl Into<String>) -> Self {
        WriteError::Refused {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// As a plain `io::Error` for callers whose own errors already name the path.
    fn into_io(self) -> std::io::Error {
        match self {
            WriteError::Io { source, .. } => source,
            WriteError::Refused { reason, .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)
            }
        }
    }
}

/// The `io::Error` → [`WriteError::Io`] mapping for `path`.
fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically, creating parent directories as needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file(path, bytes).map_err(WriteError::into_io)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let target = Target::of(path)?;
    let (mut tmp, mut file) = target.create_temp(|p| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_at(&tmp.path))?;
    drop(file);
    std::fs::rename(&tmp.path, path).map_err(io_at(path))?;
    tmp.disarm();
    target.finish(&[])
}

/// A path to write, split into the directory it lives in and its final name.
struct Target<'a> {
    path: &'a Path,
    parent: PathBuf,
    name: &'a OsStr,
}

impl<'a> Target<'a> {
    /// Refuses paths whose final component names no entry of its own (`.`, `..`, `/`, a
    /// trailing `/`): writing beside them would put temps outside the target. Creates the
    /// parent directories.
    fn of(path: &'a Path) -> Result<Self, WriteError> {
        let bytes = path.as_os_str().as_encoded_bytes();
        let last = bytes
            .rsplit(|&b| std::path::is_separator(b as char))
            .next()
            .unwrap_or_default();
        let name = path
            .file_name()
            .filter(|_| !matches!(last, b"" | b"." | b".."));
        let Some(name) = name else {
            return Err(WriteError::refused(
                path,
                "the path must end in a file or directory name (not '.', '..', '/' or a trailing '/')",
            ));
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io_at(&parent))?;
        Ok(Target { path, parent, name })
    }

    /// `.NAME.qlab-tmp-`: the start of every temp name for this target.
    fn temp_prefix(&self) -> OsString {
        let mut s = OsString::from(".");
        s.push(self.name);
        s.push(".qlab-tmp-");
        s
    }

    /// Creates a fresh temp beside the target with `make`, which must fail with
    /// `AlreadyExists` rather than reuse an existing entry; taken names are skipped.
    fn create_temp<T>(
        &self,
        make: impl Fn(&Path) -> std::io::Result<T>,
    ) -> Result<(Temp, T), WriteError> {
        const ATTEMPTS: u32 = 64;
        let pid = std::process::id();
        let mut last = None;
        for n in 0..ATTEMPTS {
            let mut name = self.temp_prefix();
            name.push(format!("{pid}-{n}"));
            let path = self.parent.join(name);
            match make(&path) {
                Ok(made) => return Ok((Temp { path, armed: true }, made)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        let source = last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into());
        Err(io_at(self.path)(source))
    }

    /// After the result is in place: syncs the parent so the rename survives a crash, and
    /// removes temps of killed runs. Only regular files named in `files` count as qlab's
    /// inside a stray temp directory; anything else there is left alone.
    fn finish(&self, files: &[&OsStr]) -> Result<(), WriteError> {
        sync_dir(&self.parent)?;
        let prefix = self.temp_prefix();
        let Ok(entries) = std::fs::read_dir(&self.parent) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = stray_pid(&name, &prefix) else {
                continue;
            };
            if process_alive(pid) {
                continue;
            }
            let path = entry.path();
            // Best effort: a stray that cannot be removed now is retried by the next write.
            let _ = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => std::fs::remove_file(&path),
                Ok(m) if m.is_dir() && dir::only_files_named(&path, files).is_ok() => {
                    std::fs::remove_dir_all(&path)
                }
                _ => Ok(()),
            };
        }
        Ok(())
    }
}

/// The PID in a temp name `PREFIX PID-N`, if `name` is one.
fn stray_pid(name: &OsStr, prefix: &OsStr) -> Option<u32> {
    let rest = name
        .as_encoded_bytes()
        .strip_prefix(prefix.as_encoded_bytes())?;
    let rest = std::str::from_utf8(rest).ok()?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Whether a process `pid` exists (a temp of a live process may still be in use).
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
        Ok(pid) if pid > 0 => {
            let found = unsafe { libc::kill(pid, 0) } == 0;
            found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
        _ => true,
    }
}

/// Without a way to ask, every temp counts as in use and is left alone.
#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A temp file or directory this process created; removed on drop unless disarmed.
struct Temp {
    path: PathBuf,
    armed: bool,
}

impl Temp {
    /// Keeps the entry: it has been renamed into place.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Best effort on an error path; a leftover is a stray the next write removes.
        let _ = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&self.path),
            Ok(_) => std::fs::remove_file(&self.path),
            Err(_) => Ok(()),
        };
    }
}
