//! Initializer bytes kept outside the model, in files beside it (ONNX "external data": the
//! tensor carries `location`, `offset`, `length` entries instead of `raw_data`).
//!
//! A model file is untrusted input, so its locations are confined to the model's folder: a
//! location must be a relative path of plain components, and its canonical path (symlinks
//! resolved) must stay inside the canonical folder. Only regular files are opened — a FIFO or
//! device would block or never end — and each file is read once per import, whole, then sliced
//! per tensor: exporters put every weight in one file, so one sequential read beats one seek and
//! read per tensor, and offset and length are checked against the bytes actually read.

use super::proto::TensorProto;
use crate::import::ImportError;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The external data files of one import.
pub struct ExternalData {
    /// The folder locations are relative to; `None` for a model held only in memory.
    folder: Option<PathBuf>,
    /// `folder` canonicalized, resolved on the first external tensor.
    root: Option<PathBuf>,
    /// Whole files by canonical path.
    files: HashMap<PathBuf, Vec<u8>>,
}

impl ExternalData {
    /// External data resolved against `folder` (the model file's folder), or refused when `None`.
    pub fn new(folder: Option<&Path>) -> ExternalData {
        ExternalData {
            folder: folder.map(Path::to_path_buf),
            root: None,
            files: HashMap::new(),
        }
    }

    /// The bytes of external tensor `name`, and a description of where they came from for
    /// errors about their size.
    pub fn bytes(&mut self, t: &TensorProto, name: &str) -> Result<(&[u8], String), ImportError> {
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key.as_deref() == Some(key))
                .and_then(|e| e.value.as_deref())
        };
        let location = entry("location").unwrap_or_default().to_string();
        let refuse = |detail: String| ImportError::ExternalData {
            tensor: name.to_string(),
            location: location.clone(),
            detail,
        };
        if location.is_empty() {
            return Err(refuse("no `location` entry".into()));
        }
        let number = |key: &str| -> Result<Option<usize>, ImportError> {
            entry(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| refuse(format!("`{key}` is not a byte count: '{v}'")))
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;

        let path = self.confine(&location).map_err(refuse)?;
        let file = match self.files.entry(path) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let bytes = read_regular(e.key()).map_err(refuse)?;
                e.insert(bytes)
            }
        };
        let length = length.unwrap_or(file.len().saturating_sub(offset));
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= file.len())
            .ok_or_else(|| {
                refuse(format!(
                    "offset {offset} + length {length} is past the end of the file ({} bytes)",
                    file.len()
                ))
            })?;
        Ok((
            &file[offset..end],
            format!("external data '{location}' (offset {offset}, length {length})"),
        ))
    }

    /// The canonical path of `location`, or why it is refused. Nothing is opened here.
    fn confine(&mut self, location: &str) -> Result<PathBuf, String> {
        let Some(folder) = &self.folder else {
            return Err(
                "the model was given as bytes, so it has no folder to read external data from"
                    .into(),
            );
        };
        let rel = Path::new(location);
        if rel.is_absolute() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(
                "the location must be a relative path inside the model's folder (no absolute \
                 path, `..` or `.`)"
                    .into(),
            );
        }
        let root = match &self.root {
            Some(r) => r.clone(),
            None => {
                let r = folder.canonicalize().map_err(|e| {
                    format!(
                        "cannot resolve the model's folder {}: {e}",
                        folder.display()
                    )
                })?;
                self.root = Some(r.clone());
                r
            }
        };
        let path = root
            .join(rel)
            .canonicalize()
            .map_err(|e| format!("cannot open: {e}"))?;
        if !path.starts_with(&root) {
            return Err(format!(
                "resolves to {}, outside the model's folder {}",
                path.display(),
                root.display()
            ));
        }
        Ok(path)
    }
}

/// Reads a whole regular file. The type is checked on the path before opening (opening a FIFO
/// blocks) and again on the open handle, which is opened without following a final symlink and,
/// on Unix, non-blocking, so a file swapped in after the check cannot hang or redirect the read.
fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    let not_regular = || "not a regular file".to_string();
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot open: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    let mut file: File = options
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    // The size only sizes the buffer; `take` bounds the read if the file grows meanwhile.
    let size = usize::try_from(meta.len()).map_err(|_| "too large to read".to_string())?;
    let mut bytes = Vec::with_capacity(size);
    (&mut file)
        .take(meta.len())
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}
