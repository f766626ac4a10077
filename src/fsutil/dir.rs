//! Writing a whole directory (a native model) so that its path holds, at every instant, either
//! the complete old directory or the complete new one. The new directory is assembled and
//! synced beside the target, then swapped in: on Linux with one `renameat2(RENAME_EXCHANGE)`,
//! elsewhere (or on filesystems without it) by moving the old aside and the new in, which is
//! two renames with a window between them. An existing entry is replaced only if it is a
//! directory of regular files the writer names, that `is_ours` accepts (or an empty one).

use super::{Target, WriteError, io_at};
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

/// Writes `files` (name, bytes) as the directory `dir`, replacing an existing one atomically.
///
/// Refuses, leaving it untouched, anything at `dir` that is not a directory of regular files
/// named in `files` that `is_ours` accepts: `is_ours` returns why it is not the writer's own.
pub fn write_dir_atomic(
    dir: &Path,
    files: &[(&str, &[u8])],
    is_ours: &dyn Fn(&Path) -> Result<(), String>,
) -> Result<(), WriteError> {
    let names: Vec<&OsStr> = files.iter().map(|(n, _)| OsStr::new(*n)).collect();
    let target = Target::of(dir)?;
    let replacing = check_replaceable(dir, &names, is_ours)?;
    let (mut tmp, ()) = target.create_temp(|p| std::fs::create_dir(p))?;
    for (name, bytes) in files {
        let path = tmp.path.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .map_err(io_at(&path))?;
    }
    super::sync_dir(&tmp.path)?;
    if replacing {
        swap(&target, &tmp.path)?;
        // The temp now holds the old directory: check it is still what was approved before
        // the drop removes it (it could have been replaced since the first check).
        if let Err(e) = check_replaceable(&tmp.path, &names, is_ours) {
            if swap(&target, &tmp.path).is_err() {
                tmp.disarm(); // what sits at the temp is not ours to remove
            }
            return Err(e);
        }
    } else {
        move_in(&tmp.path, dir)?;
        tmp.disarm();
    }
    target.finish(&names)
}

/// Whether `dir` exists and may be replaced; an error names what would be destroyed.
fn check_replaceable(
    dir: &Path,
    names: &[&OsStr],
    is_ours: &dyn Fn(&Path) -> Result<(), String>,
) -> Result<bool, WriteError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        other => other.map_err(io_at(dir))?,
    };
    if meta.file_type().is_symlink() {
        return Err(WriteError::refused(
            dir,
            "is a symbolic link; refusing to replace it",
        ));
    }
    if !meta.is_dir() {
        return Err(WriteError::refused(
            dir,
            "is a file, not a qlab model directory; refusing to replace it",
        ));
    }
    let count = only_files_named(dir, names).map_err(|reason| {
        WriteError::refused(
            dir,
            format!("{reason}: not a qlab model directory; refusing to replace it"),
        )
    })?;
    if count > 0 {
        is_ours(dir).map_err(|reason| {
            WriteError::refused(
                dir,
                format!("{reason}: not a qlab model directory; refusing to replace it"),
            )
        })?;
    }
    Ok(true)
}

/// The number of entries in `dir`, if each is a regular file named in `names`; otherwise the
/// first that is not, described.
pub(super) fn only_files_named(dir: &Path, names: &[&OsStr]) -> Result<usize, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list it ({e})"))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list it ({e})"))?;
        let name = entry.file_name();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !names.contains(&name.as_os_str()) {
            return Err(format!("it holds '{}'", name.to_string_lossy()));
        }
        count += 1;
    }
    Ok(count)
}

/// Swaps the directory at `tmp` with the target directory.
fn swap(target: &Target, tmp: &Path) -> Result<(), WriteError> {
    #[cfg(target_os = "linux")]
    match renameat2(tmp, target.path, libc::RENAME_EXCHANGE) {
        Ok(()) => return Ok(()),
        Err(e) if !unsupported(&e) => return Err(io_at(target.path)(e)),
        Err(_) => {}
    }
    swap_by_two_renames(target, tmp)
}

/// The portable swap: the old directory moves onto a fresh empty temp (so nothing else can
/// be overwritten), the new one moves in; if that fails the old one moves back. A kill between
/// the renames leaves the old directory under its temp name, where the next write removes it.
pub(super) fn swap_by_two_renames(target: &Target, tmp: &Path) -> Result<(), WriteError> {
    let (mut aside, ()) = target.create_temp(|p| std::fs::create_dir(p))?;
    std::fs::rename(target.path, &aside.path).map_err(io_at(target.path))?;
    // From here the temp holds the old directory: never remove it on an error path.
    aside.disarm();
    if let Err(e) = std::fs::rename(tmp, target.path) {
        let _ = std::fs::rename(&aside.path, target.path);
        return Err(io_at(target.path)(e));
    }
    // The old directory moves to `tmp`'s name, so the caller's guard removes it.
    std::fs::rename(&aside.path, tmp).map_err(io_at(tmp))
}

/// Moves the fresh directory to `dir`, which must not exist (never replaces what appeared
/// there since the check).
fn move_in(tmp: &Path, dir: &Path) -> Result<(), WriteError> {
    #[cfg(target_os = "linux")]
    match renameat2(tmp, dir, libc::RENAME_NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(e) if !unsupported(&e) => return Err(io_at(dir)(e)),
        Err(_) => {}
    }
    std::fs::rename(tmp, dir).map_err(io_at(dir))
}

/// Errors meaning the kernel or filesystem lacks `renameat2` or the flag.
#[cfg(target_os = "linux")]
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

/// `renameat2(2)` through the raw syscall, which older C libraries do not wrap.
#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
